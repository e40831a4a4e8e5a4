"""The split artifact: one ``.split.zip`` file holding the plan and every part.

    plan.json        parts in running order (kind, file, input and output value names), the
                     model's inputs and outputs, and the custom ops with their source files
    part_N.onnx      an ordinary part, run by a fast runtime
    part_N.pt2       a part holding an unknown op, a ``torch.export`` program run by PyTorch
    ops/FILE.py      the Python file that registers the custom op, imported before loading

One file keeps the artifact inside the package contract (``model_file`` is a single path).
"""

from __future__ import annotations

import io
import json
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

from shipyard.convert.custom_ops import UnknownOp
from shipyard.errors import ConversionError
from shipyard.split.partition import Part, Partition

PLAN = "plan.json"
SUFFIX = ".split.zip"


def write_split(
    partition: Partition, ops: list[UnknownOp], path: Path, runtime: str
) -> dict[str, Any]:
    """Export every part and write the archive; returns the plan written into it."""
    steps, op_files = [], {}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, part in enumerate(partition.parts):
            file = f"part_{index}" + (".pt2" if part.kind == "torch" else ".onnx")
            archive.writestr(
                file, _export_torch(part) if part.kind == "torch" else _export_onnx(part)
            )
            steps.append(
                {
                    "name": part.name,
                    "kind": part.kind,
                    "file": file,
                    "inputs": part.inputs,
                    "outputs": part.outputs,
                    "runtime": "torch" if part.kind == "torch" else runtime,
                    "ops": sorted(set(part.ops)) if part.kind == "torch" else len(part.ops),
                    "module_paths": part.module_paths,
                    "describe": part.describe(),
                }
            )
        for op in ops:
            source = op_source_file(op.name)
            if source is not None:
                op_files[op.name] = f"ops/{source.name}"
                archive.write(source, op_files[op.name])
        plan = {
            "inputs": partition.inputs,
            "outputs": partition.outputs,
            "steps": steps,
            "ops": [
                {"name": op.name, "where": op.module_paths, "file": op_files.get(op.name)}
                for op in ops
            ],
        }
        archive.writestr(PLAN, json.dumps(plan, indent=2))
    return plan


def read_plan(archive: zipfile.ZipFile) -> dict[str, Any]:
    return json.loads(archive.read(PLAN))


def op_source_file(name: str) -> Path | None:
    """The Python file whose import registers custom op ``name`` (for
    ``torch.library.custom_op``)."""
    try:
        from torch._library.custom_ops import OPDEFS
    except ImportError:
        return None
    definition = OPDEFS.get(name)
    code = getattr(getattr(definition, "_init_fn", None), "__code__", None)
    path = Path(code.co_filename) if code is not None else None
    return path if path is not None and path.is_file() else None


def ensure_ops_registered(archive: zipfile.ZipFile, plan: dict[str, Any], scratch: Path) -> None:
    """Import each custom op's source file unless the op is registered already."""
    import importlib.util

    for op in plan["ops"]:
        if _registered(op["name"]):
            continue
        if not op.get("file"):
            raise ConversionError(
                f"custom op {op['name']} is not registered and the package holds no file "
                f"that registers it; import the library that defines it before loading"
            )
        target = scratch / Path(op["file"]).name
        target.write_bytes(archive.read(op["file"]))
        module_name = f"shipyard_ops_{target.stem}"
        spec = importlib.util.spec_from_file_location(module_name, target)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        if not _registered(op["name"]):
            raise ConversionError(
                f"importing {op['file']} did not register custom op {op['name']}; register it "
                f"at import time (torch.library) or import its library before loading"
            )


def _registered(name: str) -> bool:
    import torch

    namespace, _, op = name.partition("::")
    return hasattr(getattr(torch.ops, namespace), op)


def _export_onnx(part: Part) -> bytes:
    import torch

    axes = {n: {0: "batch"} for n, a in zip(part.inputs, part.example) if a.ndim}
    axes.update({n: {0: "batch"} for n in part.outputs})
    buffer = io.BytesIO()
    errors = []
    for dynamo in (True, False):
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    part.module,
                    part.example,
                    None if dynamo else buffer,
                    input_names=part.inputs,
                    output_names=part.outputs,
                    dynamic_axes=axes,
                    dynamo=dynamo,
                    opset_version=18 if dynamo else 17,
                    **({"optimize": True, "verbose": False} if dynamo else {}),
                )
            if program is not None:
                return program.model_proto.SerializeToString()
            return buffer.getvalue()
        except Exception as exc:
            errors.append(
                f"{'dynamo' if dynamo else 'legacy'}: {type(exc).__name__}: {str(exc)[:200]}"
            )
    raise ConversionError(
        f"part {part.name} ({part.describe()}) does not export to ONNX: " + " | ".join(errors)
    )


def _export_torch(part: Part) -> bytes:
    import torch

    dynamic = tuple({0: torch.export.Dim.DYNAMIC} if a.ndim else {} for a in part.example)
    # ``Bound.forward(*activations)`` takes varargs, so the shapes spec nests one level
    program = torch.export.export(part.module, part.example, dynamic_shapes=(dynamic,))
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()
