"""Small real packages for the security tests, written in milliseconds: tiny ONNX graphs run by ONNX
Runtime or OpenVINO, a real tokenizer, real image processing graphs, sealed by the real writer's
code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shipyard.package.trust import seal


def _save(graph, path: Path) -> None:
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def _spec(name: str, dtype: str, dims: list) -> dict:
    from shipyard.records import TensorSpec

    return TensorSpec(name, dtype, tuple(dims)).to_json()


def _manifest(
    name: str, backend: str, fmt: str, model_file: str, inputs: list, outputs: list, **extra
) -> dict:
    return {
        "format_version": 1,
        "name": name,
        "version": 1,
        "backend": backend,
        "artifact_format": fmt,
        "model_file": model_file,
        "files": [model_file],
        "inputs": inputs,
        "outputs": outputs,
        "model_signature": {"inputs": inputs, "outputs": outputs},
        "threads": 1,
        **extra,
    }


def linear_onnx(path: Path, features: int = 3, flatten: bool = False, mixing: bool = False) -> None:
    """y = 2x + 1 per sample ([batch, features]); ``flatten`` adds ``Reshape(y, [-1])``: no batch
    axis; ``mixing`` adds the sum of the batch's x to every row: each row depends on the other
    samples (as a BatchNorm left in training mode does)."""
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Mul", ["x", "two"], ["m"]),
        helper.make_node("Add", ["m", "one"], ["z"]),
    ]
    init = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
    ]
    out_shape: list = ["batch", features]
    if mixing:
        nodes[1] = helper.make_node("Add", ["m", "one"], ["lone"])
        nodes += [
            helper.make_node("ReduceSum", ["x", "batch_axis"], ["total"], keepdims=1),
            helper.make_node("Add", ["lone", "total"], ["z"]),
        ]
        init.append(helper.make_tensor("batch_axis", TensorProto.INT64, [1], [0]))
    if flatten:
        nodes.append(helper.make_node("Reshape", ["z", "flat"], ["y"]))
        init.append(helper.make_tensor("flat", TensorProto.INT64, [1], [-1]))
        out_shape = ["batch"]
    else:
        nodes.append(helper.make_node("Identity", ["z"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        init,
    )
    _save(graph, path)


def linear_package(
    folder: Path, name: str = "linear", flatten: bool = False, mixing: bool = False
) -> Path:
    """An ONNX Runtime package of :func:`linear_onnx`; with ``flatten`` its output has no batch
    axis, though its signature claims one (as an ONNX ``Reshape(x, [-1])`` does); with ``mixing``
    its rows depend on the batch's other samples."""
    linear_onnx(folder / "model" / "model.onnx", flatten=flatten, mixing=mixing)
    outputs = [_spec("y", "float32", ["batch"] if flatten else ["batch", 3])]
    seal(
        folder,
        _manifest(
            name,
            "onnxruntime",
            "onnx",
            "model/model.onnx",
            [_spec("x", "float32", ["batch", 3])],
            outputs,
        ),
    )
    return folder


def openvino_package(folder: Path, name: str = "linear-ov") -> Path:
    """:func:`linear_onnx` converted to OpenVINO IR and served by OpenVINO."""
    import openvino as ov

    onnx_path = folder.parent / f"{name}.onnx"
    linear_onnx(onnx_path)
    (folder / "model").mkdir(parents=True, exist_ok=True)
    ov.save_model(ov.convert_model(str(onnx_path)), str(folder / "model" / "model.xml"))
    manifest = _manifest(
        name,
        "openvino",
        "openvino",
        "model/model.xml",
        [_spec("x", "float32", ["batch", 3])],
        [_spec("y", "float32", ["batch", 3])],
    )
    manifest["files"] = ["model/model.xml", "model/model.bin"]
    seal(folder, manifest)
    return folder


def text_package(folder: Path, name: str = "words") -> Path:
    """A text package run by ONNX Runtime: a word-level tokenizer, then the sum of the kept token
    ids."""
    from onnx import TensorProto, helper

    from shipyard.backends.fake import _write_word_tokenizer

    ids = ["batch", "sequence"]
    nodes = [
        helper.make_node("Mul", ["input_ids", "attention_mask"], ["kept"]),
        helper.make_node("Cast", ["kept"], ["kept_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["kept_f", "axis"], ["y"], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "sum_ids",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ids),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ids),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("axis", TensorProto.INT64, [1], [1])],
    )
    _save(graph, folder / "model" / "model.onnx")
    _write_word_tokenizer(folder / "tokenizer.json")
    model_inputs = [_spec("input_ids", "int64", ids), _spec("attention_mask", "int64", ids)]
    outputs = [_spec("y", "float32", ["batch", 1])]
    manifest = _manifest(
        name,
        "onnxruntime",
        "onnx",
        "model/model.onnx",
        [_spec("text", "bytes", ["batch"])],
        outputs,
        text={
            "tokenizer": "tokenizer.json",
            "max_length": 8,
            "input_names": ["input_ids", "attention_mask"],
        },
    )
    manifest["model_signature"] = {"inputs": model_inputs, "outputs": outputs}
    manifest["files"] += ["tokenizer.json"]
    seal(folder, manifest)
    return folder


def image_package(folder: Path, name: str = "pictures") -> Path:
    """An image package: JPEG/PNG bytes in, top-2 labels out, with the real processing graphs
    (decode → resize 16 → crop 16 → normalise) around a mean-colour classifier run by ONNX
    Runtime."""
    from onnx import TensorProto, helper

    from shipyard.processing.package import add_to_manifest, attach_processing
    from shipyard.records import Signature, TensorSpec

    nodes = [helper.make_node("ReduceMean", ["image"], ["logits"], axes=[2, 3], keepdims=0)]
    graph = helper.make_graph(
        nodes,
        "mean_colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
        [],
    )
    _save(graph, folder / "model" / "model.onnx")
    signature = Signature(
        (TensorSpec("image", "float32", ("batch", 3, 16, 16)),),
        (TensorSpec("logits", "float32", ("batch", 3)),),
    )
    config = folder.parent / f"{name}-pre.json"
    config.write_text(
        json.dumps(
            {
                "image": {"resize": 16, "crop": 16},
                "postprocess": {"kind": "classify", "top_k": 2, "labels": ["red", "green", "blue"]},
            }
        )
    )
    manifest = _manifest(
        name,
        "onnxruntime",
        "onnx",
        "model/model.onnx",
        [s.to_json() for s in signature.inputs],
        [s.to_json() for s in signature.outputs],
    )
    add_to_manifest(manifest, attach_processing(config, signature, folder))
    seal(folder, manifest)
    return folder


def png(width: int, height: int, colour=(200, 30, 30)) -> bytes:
    """A PNG of one colour: a few kilobytes even at tens of megapixels."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def rows(seed: int, count: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 3)).astype(np.float32)
