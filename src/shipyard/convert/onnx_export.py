"""PyTorch → ONNX, with a dynamic batch axis, checked by ``onnx.checker``.

The torch.export-based exporter (opset 18) is tried first; the TorchScript-based exporter
(opset 17, the last opset it covers fully) is the fallback for modules torch.export cannot
trace. The opset and exporter that worked are written into the recipe.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import ConversionError
from shipyard.records import Artifact, Signature
from shipyard.sources.base import Source

DYNAMO_OPSET = 18
LEGACY_OPSET = 17
_EXTERNAL_DATA_BYTES = 1_800_000_000
"""Past this size a single protobuf may not hold the weights (2 GiB limit), so they go beside it."""


@dataclass(frozen=True)
class OnnxExport:
    artifact: Artifact
    exporter: str
    opset: int


def export_onnx(source: Source, path: Path) -> OnnxExport:
    """Export a torch or TorchScript source to ``path``; the signature is kept as is."""
    import torch

    args = tuple(torch.from_numpy(spec_example(s)) for s in source.signature.inputs)
    _refuse_unknown_ops(source, args)
    errors = []
    attempts = (
        [("legacy", LEGACY_OPSET)]
        if source.kind == "torchscript"
        else [("dynamo", DYNAMO_OPSET), ("legacy", LEGACY_OPSET)]
    )
    for exporter, opset in attempts:
        try:
            _export(source, args, path, exporter, opset)
            check_onnx(path)
            return OnnxExport(Artifact(path, "onnx", source.signature), exporter, opset)
        except Exception as exc:
            errors.append(
                f"{exporter} exporter (opset {opset}): {type(exc).__name__}: {str(exc)[:300]}"
            )
    raise ConversionError("ONNX export failed: " + " | ".join(errors))


def _export(source: Source, args: tuple, path: Path, exporter: str, opset: int) -> None:
    import torch

    signature = source.signature
    axes = dynamic_axes(signature)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            source.module,
            args,
            None if exporter == "dynamo" else str(path),
            input_names=signature.input_names,
            output_names=signature.output_names,
            opset_version=opset,
            dynamic_axes=axes,
            dynamo=exporter == "dynamo",
            **(
                {
                    "optimize": True,
                    "verbose": False,
                    "custom_translation_table": _translations(source),
                }
                if exporter == "dynamo"
                else {"do_constant_folding": True}
            ),
        )
    if program is not None:
        program.save(str(path), external_data=_too_big_for_one_file(source))


def _refuse_unknown_ops(source: Source, args: tuple) -> None:
    """Name the custom ops no exporter can write before trying (and failing slowly) to export."""
    if source.kind != "torch":
        return
    from shipyard.convert.custom_ops import find_unknown_ops

    try:
        unknown = [op for op in find_unknown_ops(source.module, args) if not op.translated]
    except Exception:  # the exporters will say what is wrong with this model
        return
    if unknown:
        raise ConversionError(
            "ONNX export cannot write "
            + "; ".join(op.describe() for op in unknown)
            + ". The split candidate runs it in PyTorch between ONNX Runtime parts; or "
            "register an ONNX translation (shipyard.split.register_translation)"
        )


def _translations(source: Source) -> dict | None:
    """The model's own ONNX translations of its custom ops (``onnx_translation_table``), if any."""
    from shipyard.convert.custom_ops import translation_table

    return translation_table(source.module) or None


def dynamic_axes(signature: Signature) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {}
    for spec in (*signature.inputs, *signature.outputs):
        named = {i: d for i, d in enumerate(spec.shape) if isinstance(d, str)}
        if named:
            axes[spec.name] = named
    return axes


def _too_big_for_one_file(source: Source) -> bool:
    params = sum(p.numel() * p.element_size() for p in source.module.parameters())
    return params > _EXTERNAL_DATA_BYTES


def check_onnx(path: Path) -> None:
    """Run ``onnx.checker`` (by path, so external data is allowed) and raise a clear error."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise ConversionError(f"{path.name} fails onnx.checker: {exc}") from exc


def spec_example(spec, batch: int = 2):
    """A small example array for a spec: symbolic dims become 2, or 8 for sequence axes."""
    import numpy as np

    shape = [
        d if isinstance(d, int) else (batch if i == 0 else 8) for i, d in enumerate(spec.shape)
    ]
    if spec.dtype in ("int64", "int32"):
        return np.ones(shape, dtype=spec.dtype)
    return np.random.default_rng(0).standard_normal(shape).astype(spec.dtype)
