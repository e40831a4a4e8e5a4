"""ONNX file sources (external-data files beside the graph are followed)."""

from __future__ import annotations

from pathlib import Path

from shipyard.errors import SourceError
from shipyard.records import Signature, TensorSpec, external_data_files
from shipyard.sources.base import Source, hash_files
from shipyard.sources.torch_factory import guess_task

_ONNX_DTYPES = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "bytes",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}


def load_onnx_source(path: Path) -> Source:
    import onnx

    if not path.is_file():
        raise SourceError(f"ONNX file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise SourceError(f"{path} is not a valid ONNX model: {type(exc).__name__}: {exc}") from exc
    signature = onnx_signature(model)
    data_files = [path.parent / loc for loc in external_data_files(model)]
    return Source(
        name=path.stem,
        kind="onnx",
        signature=signature,
        content_hash=hash_files(path, *data_files),
        task=guess_task(signature),
        path=path,
    )


def onnx_signature(model) -> Signature:
    """Inputs (initializers excluded) and outputs of an ONNX graph, symbolic dims kept."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    return Signature(inputs, tuple(_spec(v) for v in model.graph.output))


def _spec(value) -> TensorSpec:
    tensor_type = value.type.tensor_type
    dtype = _ONNX_DTYPES.get(tensor_type.elem_type)
    if dtype is None:
        raise SourceError(
            f"tensor {value.name!r} has ONNX element type {tensor_type.elem_type}, "
            f"which Shipyard does not handle; expected one of {sorted(_ONNX_DTYPES.values())}"
        )
    dims = []
    for index, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        else:
            dims.append(dim.dim_param or ("batch" if index == 0 else f"{value.name}_dim{index}"))
    return TensorSpec(value.name, dtype, tuple(dims))
