"""Sources: load what the user handed us, safely, with its signature and a content hash.

example:NAME          a built-in example (no download)
hf:DIR                a Hugging Face / sentence-transformers folder
file.onnx             an ONNX model
file.pt / file.ts     a TorchScript archive
file.py:function      a factory returning an nn.Module (weights from --weights)
paddle:DIR            a Paddle inference model (also file.pdmodel, paddle:file.json)
tf:DIR                a TensorFlow SavedModel (also file.keras)
caffe:NET:WEIGHTS     a Caffe net.prototxt and its weights.caffemodel
"""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import SourceError
from shipyard.sources.base import Source, TextFrontend
from shipyard.sources.torch_module import InputHint

TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".jit")


def load_source(
    spec: str,
    weights: Path | None = None,
    hints: list[InputHint] | None = None,
    output_names: list[str] | None = None,
) -> Source:
    """Load the model named by ``spec`` (see the module docstring for the forms)."""
    hints = hints or []
    if weights is not None and ".py:" not in spec:
        raise SourceError(f"--weights goes with a file.py:function factory, not with {spec}")
    if spec.startswith("example:"):
        return _load_example(spec.split(":", 1)[1])
    if spec.startswith("hf:"):
        from shipyard.sources.huggingface import load_hf_source

        return load_hf_source(Path(spec[3:]))
    framework = _load_framework(spec)
    if framework is not None:
        return framework
    if spec.endswith(".onnx"):
        from shipyard.sources.onnx_file import load_onnx_source

        return load_onnx_source(Path(spec))
    if ".py:" in spec:
        from shipyard.sources.torch_factory import load_factory_source

        return load_factory_source(spec, weights, hints, output_names)
    if spec.endswith(TORCHSCRIPT_SUFFIXES):
        from shipyard.sources.torchscript_file import load_torchscript_source

        return load_torchscript_source(Path(spec), hints, output_names)
    raise SourceError(
        f"cannot tell what model {spec!r} is; expected file.onnx, file.py:function, "
        f"file.pt (TorchScript), hf:DIR, paddle:DIR, tf:DIR, file.keras, "
        f"caffe:NET.prototxt:WEIGHTS.caffemodel or example:NAME"
    )


def _load_framework(spec: str) -> Source | None:
    """Models from Paddle, TensorFlow and Caffe (converted to ONNX), or None for other forms."""
    if spec.startswith("paddle:") or spec.endswith(".pdmodel"):
        from shipyard.sources.paddle import load_paddle_source

        return load_paddle_source(Path(spec.removeprefix("paddle:")))
    if spec.startswith("tf:") or spec.endswith(".keras"):
        from shipyard.sources.tensorflow import load_tensorflow_source

        return load_tensorflow_source(Path(spec.removeprefix("tf:")))
    if spec.startswith("caffe:"):
        from shipyard.sources.caffe.source import load_caffe_source

        return load_caffe_source(spec.removeprefix("caffe:"))
    return None


def _load_example(name: str) -> Source:
    from shipyard.sources.examples import load_example

    return load_example(name)


__all__ = ["InputHint", "Source", "TextFrontend", "load_source"]
