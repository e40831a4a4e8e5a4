"""``paddle:DIR`` (or ``file.pdmodel`` / ``paddle:file.json``): a Paddle inference model.

A folder holds one model: ``NAME.json`` (PIR program, PaddlePaddle ≥ 3) or ``NAME.pdmodel`` (the
older protobuf program) beside ``NAME.pdiparams``, as ``paddle.jit.save`` and
``paddle.static.save_inference_model`` write them. Neither file is a pickle (the training-time
``.pdparams`` is, and is refused). The program is converted to ONNX with paddle2onnx (cached by
content hash); Paddle Inference runs the original for the reference outputs.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from shipyard.errors import SourceError
from shipyard.sources.base import FrameworkReference, Source, hash_files
from shipyard.sources.conversion import (
    captured_output,
    converted_dir,
    finish_onnx,
    log_tail,
    onnx_file_signature,
    publish,
    work_dir,
)
from shipyard.sources.torch_factory import guess_task

PROGRAM_SUFFIXES = (".json", ".pdmodel")
OPSET = 17


def load_paddle_source(path: Path) -> Source:
    """A Source for the Paddle inference model at ``path`` (folder or program file)."""
    model_file, params_file = find_model_files(path)
    versions = _versions()
    content_hash = hash_files(model_file, params_file, extra="paddle")
    onnx_file = _convert(model_file, params_file, content_hash, versions["paddle2onnx"])
    signature = onnx_file_signature(onnx_file)
    reference = FrameworkReference(
        "paddle", f"Paddle Inference {versions['paddlepaddle']}", (model_file, params_file)
    )
    name = model_file.parent.name if model_file.stem in ("model", "inference") else model_file.stem
    return Source(
        name=name,
        kind="onnx",
        signature=signature,
        content_hash=content_hash,
        task=guess_task(signature),
        path=onnx_file,
        reference=reference,
        notes=[
            f"converted from Paddle with paddle2onnx {versions['paddle2onnx']} (opset {OPSET}); "
            f"verified against Paddle Inference {versions['paddlepaddle']}"
        ],
    )


def find_model_files(path: Path) -> tuple[Path, Path]:
    """The program and parameter files of the one model at ``path``."""
    if path.is_file():
        if path.suffix not in PROGRAM_SUFFIXES:
            raise SourceError(
                f"{path} is not a Paddle inference program; expected NAME.json or NAME.pdmodel "
                f"beside NAME.pdiparams"
            )
        return path, _params_beside(path)
    if not path.is_dir():
        raise SourceError(
            f"paddle:{path} does not exist; expected a folder with NAME.json (or NAME.pdmodel) "
            f"and NAME.pdiparams"
        )
    programs = sorted(
        p
        for p in path.iterdir()
        if p.suffix in PROGRAM_SUFFIXES and p.with_suffix(".pdiparams").is_file()
    )
    if len(programs) != 1:
        found = sorted(
            p.name
            for p in path.iterdir()
            if p.suffix in (*PROGRAM_SUFFIXES, ".pdiparams", ".pdparams")
        )
        raise SourceError(
            f"paddle:{path} holds {len(programs)} inference models (files: {found or 'none'}); "
            f"expected exactly one NAME.json or NAME.pdmodel beside NAME.pdiparams "
            "(a training checkpoint .pdparams is not an inference model: save with "
            "paddle.jit.save)"
        )
    return programs[0], programs[0].with_suffix(".pdiparams")


def _params_beside(program: Path) -> Path:
    params = program.with_suffix(".pdiparams")
    if not params.is_file():
        raise SourceError(
            f"{program} has no parameters file {params.name} beside it; expected the pair "
            f"paddle.jit.save writes"
        )
    return params


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("paddlepaddle", "paddle2onnx"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError as exc:
            raise SourceError(
                f"paddle: models need {package}: pip install 'shipyard[paddle]' "
                f"&& pip install --no-deps 'paddle2onnx==2.1.0'"
            ) from exc
    return versions


def _convert(model_file: Path, params_file: Path, content_hash: str, converter: str) -> Path:
    folder, done = converted_dir("paddle", content_hash, f"p2o{converter}-opset{OPSET}")
    if done:
        return folder / "model.onnx"
    work = work_dir(folder)
    target = work / "model.onnx"
    import paddle2onnx

    with captured_output() as log:
        try:
            # optimize_tool "None": the build runs its own optimisers as candidates; paddle2onnx's
            # would
            # need onnxoptimizer/polygraphy, which pin an older onnx
            paddle2onnx.export(
                str(model_file),
                str(params_file),
                str(target),
                opset_version=OPSET,
                enable_onnx_checker=True,
                optimize_tool="None",
            )
            error = None
        except Exception as exc:  # paddle2onnx raises bare Exceptions and asserts
            error = exc
    if error is not None or not target.is_file():
        detail = log_tail(log, keep=("not supported", "Oops", "Error", "error"))
        raise SourceError(
            f"paddle2onnx cannot convert {model_file}: "
            f"{type(error).__name__ + ': ' + str(error)[:200] if error else 'no ONNX written'}"
            f"{'; ' + detail if detail else ''}"
        ) from error
    finish_onnx(target)
    return publish(work, folder) / "model.onnx"
