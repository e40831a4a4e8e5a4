"""PyTorch → ``torch.export`` program (``.pt2``): the eager model without its source code."""

from __future__ import annotations

from pathlib import Path

from shipyard.convert.onnx_export import spec_example
from shipyard.errors import ConversionError
from shipyard.records import Artifact
from shipyard.sources.base import Source


def export_program(source: Source, path: Path) -> Artifact:
    """Export ``source.module`` with every symbolic axis of its signature dynamic, and save it.

    The axes are ``Dim.DYNAMIC``: export infers their ranges from the model (a BERT's sequence
    stops at its 512 position embeddings; a fixed ``Dim(max=4096)`` would be refused for that)
    and fails, rather than silently fixing the size, when the model only works at one size.
    """
    import torch

    args = tuple(torch.from_numpy(spec_example(s)) for s in source.signature.inputs)
    shapes = {
        arg: {
            axis: torch.export.Dim.DYNAMIC
            for axis, d in enumerate(spec.shape)
            if isinstance(d, str)
        }
        for arg, spec in zip(_forward_arg_names(source, len(args)), source.signature.inputs)
    }
    try:
        program = torch.export.export(source.module.eval(), args, dynamic_shapes=shapes or None)
        torch.export.save(program, str(path))
    except Exception as exc:
        raise ConversionError(
            f"torch.export failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return Artifact(path, "torch-export", source.signature)


def _forward_arg_names(source: Source, count: int) -> list[str]:
    import inspect

    parameters = list(inspect.signature(source.module.forward).parameters)
    return parameters[:count]
