"""PyTorch → TorchScript: traced, saved, loadable from libtorch; frozen and optimised when
loaded."""

from __future__ import annotations

import warnings
from pathlib import Path

from shipyard.convert.onnx_export import spec_example
from shipyard.errors import ConversionError
from shipyard.records import Artifact
from shipyard.sources.base import Source


def export_torchscript(source: Source, path: Path) -> Artifact:
    import torch

    if source.kind == "torchscript":
        module = source.module
    else:
        args = tuple(torch.from_numpy(spec_example(s)) for s in source.signature.inputs)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                module = torch.jit.trace(
                    source.module.eval(), args, check_trace=False, strict=False
                )
        except Exception as exc:
            raise ConversionError(
                f"TorchScript tracing failed: {type(exc).__name__}: {str(exc)[:300]}"
            ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(module, str(path))
    return Artifact(path, "torchscript", source.signature)


def freeze_for_inference(module):
    """Frozen and optimised for inference; less where this torch cannot do it on this graph.

    Freezing happens at load time: torch 2.14 writes frozen modules that it cannot read back
    ("required keyword attribute 'value' is undefined").
    """
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            frozen = torch.jit.freeze(module.eval())
        except Exception:
            return module.eval()
        try:
            return torch.jit.optimize_for_inference(frozen)
        except Exception:
            return frozen
