"""Putting the processing into a package, and reading it back.

The build writes ``processing/pre.onnx`` and ``processing/post.onnx`` beside the model and a
``processing`` entry in ``manifest.json``; the package's public signature becomes BYTES images
in, answers (labels and scores, boxes, unit embeddings) out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.errors import UsageError
from shipyard.processing.config import ProcessingConfig, config_from_json, load_config
from shipyard.records import Signature, TensorSpec

FOLDER = "processing"
IMAGE_INPUT = "image"


def attach_processing(
    config_path: Path | None, model: Signature, staging: Path
) -> dict[str, Any] | None:
    """Write the processing graphs for ``model`` into ``staging``; returns the manifest entries."""
    if config_path is None:
        return None
    config = load_config(config_path)
    folder = staging / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict[str, Any] = {
        "config": config.to_json(),
        "model_input": _model_input(config, model),
        "model_output": _model_output(config, model),
    }
    if config.image is not None:
        from shipyard.processing.image_graph import image_graph

        _save(image_graph(config.image, entry["model_input"]), folder / "pre.onnx")
        entry["pre"] = f"{FOLDER}/pre.onnx"
    if config.post is not None:
        entry["post"] = f"{FOLDER}/post.onnx"
        _save(_post_graph(config, model, entry["model_output"]), staging / entry["post"])
    signature = public_signature(model, config, entry)
    files = [entry[k] for k in ("pre", "post") if k in entry]
    return {
        "processing": entry,
        "inputs": [s.to_json() for s in signature.inputs],
        "outputs": [s.to_json() for s in signature.outputs],
        "processing_files": files,
    }


def add_to_manifest(manifest: dict[str, Any], entries: dict[str, Any] | None) -> dict[str, Any]:
    """Merge ``attach_processing``'s entries into a package manifest (a no-op without
    processing)."""
    if entries:
        manifest.update({k: v for k, v in entries.items() if k != "processing_files"})
        manifest["files"] = list(manifest.get("files", [])) + entries["processing_files"]
    return manifest


def public_signature(
    model: Signature, config: ProcessingConfig, entry: dict[str, Any]
) -> Signature:
    """What a client sends and receives when the package carries this processing."""
    inputs = model.inputs
    if config.image is not None:
        inputs = (TensorSpec(IMAGE_INPUT, "bytes", ("batch",)),)
    outputs = model.outputs
    post = config.post
    if post is not None and post.kind == "classify":
        k = min(post.top_k, _width(model, entry["model_output"]))
        outputs = (
            TensorSpec("labels", "bytes", ("batch", k)),
            TensorSpec("scores", "float32", ("batch", k)),
            TensorSpec("indices", "int64", ("batch", k)),
        )
    elif post is not None and post.kind == "embed":
        outputs = (
            TensorSpec("embedding", "float32", ("batch", _width(model, entry["model_output"]))),
        )
    elif post is not None and post.kind == "detect":
        from shipyard.processing.detect import detection_outputs

        outputs = detection_outputs(post)
    return Signature(inputs, outputs)


def signature_from_manifest(model: Signature, entry: dict[str, Any]) -> Signature:
    return public_signature(model, config_from_json(config_json_of(entry)), entry)


def config_json_of(entry: dict[str, Any]) -> dict[str, Any]:
    """The config as ``config_from_json`` reads it, from a manifest's ``processing`` entry."""
    data = dict(entry["config"])
    if data.get("postprocess"):
        post = dict(data["postprocess"])
        post.update(post.pop("options", {}) or {})
        data["postprocess"] = post
    return data


def _model_input(config: ProcessingConfig, model: Signature) -> str:
    wanted = config.image.input if config.image and config.image.input else model.input_names[0]
    if wanted not in model.input_names:
        raise UsageError(
            f"image.input {wanted!r} is not an input of the model; expected one of "
            f"{model.input_names}"
        )
    if config.image is not None and len(model.inputs) != 1:
        raise UsageError(
            f"image pre-processing feeds one input, but the model takes {model.input_names}"
        )
    return wanted


def _model_output(config: ProcessingConfig, model: Signature) -> str:
    wanted = config.post.output if config.post and config.post.output else model.output_names[0]
    if wanted not in model.output_names:
        raise UsageError(
            f"postprocess.output {wanted!r} is not an output of the model; "
            f"expected one of {model.output_names}"
        )
    return wanted


def _width(model: Signature, output: str) -> int:
    spec = next(s for s in model.outputs if s.name == output)
    if len(spec.shape) != 2 or not isinstance(spec.shape[1], int):
        raise UsageError(
            f"output {output!r} has shape {spec.kserve_shape}; classify and embed expect [batch, N]"
        )
    return spec.shape[1]


def _post_graph(config: ProcessingConfig, model: Signature, output: str):
    post = config.post
    if post.kind == "classify":
        from shipyard.processing.post_graph import classify_graph

        width = _width(model, output)
        if post.labels and len(post.labels) != width:
            raise UsageError(
                f"postprocess.labels has {len(post.labels)} names; the model gives {width} classes"
            )
        return classify_graph(post, output, width)
    if post.kind == "embed":
        from shipyard.processing.post_graph import embed_graph

        return embed_graph(output, _width(model, output))
    from shipyard.processing.detect import detect_graph

    return detect_graph(post, model, config.image)


def _save(model: Any, path: Path) -> None:
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, str(path))
