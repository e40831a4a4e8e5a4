"""``caffe:NET.prototxt:WEIGHTS.caffemodel``: a Caffe net, converted to ONNX by caffe-onnx.

No Caffe runtime installs here (none is on PyPI for this Python, nor in Debian 12), so the
reference is the converter's own graph, on ONNX Runtime, after every layer of it has been checked
against Caffe's arithmetic recomputed in numpy from the caffemodel's weights (``check.py``). A
layer caffe-onnx cannot convert is named before anything is converted; a layer it converts wrongly
is named by the check. Both files are protobuf: nothing is unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from shipyard.errors import SourceError
from shipyard.sources.base import FrameworkReference, Source, hash_files
from shipyard.sources.caffe.converter import install_command, installed_version, run_worker
from shipyard.sources.conversion import converted_dir, onnx_file_signature, publish, work_dir
from shipyard.sources.torch_factory import guess_task

OPSET = 17


def load_caffe_source(spec: str) -> Source:
    """A Source for ``NET.prototxt:WEIGHTS.caffemodel``."""
    prototxt, caffemodel = _parse(spec)
    version = installed_version()
    if not version:
        raise SourceError(f"caffe: models need caffe-onnx in its own folder: {install_command()}")
    content_hash = hash_files(prototxt, caffemodel, extra="caffe")
    folder, done = converted_dir("caffe", content_hash, f"caffe-onnx{version}-opset{OPSET}")
    if not done:
        folder = publish(
            _convert_and_check(prototxt, caffemodel, work_dir(folder), version), folder
        )
    onnx_file = folder / "model.onnx"
    signature = onnx_file_signature(onnx_file)
    checks = json.loads((folder / "checks.json").read_text())
    reference = FrameworkReference(
        "caffe", f"caffe-onnx {version} graph on onnxruntime (checked layer by layer)", (onnx_file,)
    )
    return Source(
        name=prototxt.stem,
        kind="onnx",
        signature=signature,
        content_hash=content_hash,
        task=guess_task(signature),
        path=onnx_file,
        reference=reference,
        notes=[_check_note(checks, version)],
    )


def _parse(spec: str) -> tuple[Path, Path]:
    net, sep, weights = spec.rpartition(":")
    if not sep or not net:
        raise SourceError(
            f"caffe:{spec} names one file; expected caffe:NET.prototxt:WEIGHTS.caffemodel"
        )
    paths = Path(net), Path(weights)
    for path, what in zip(paths, ("net definition (.prototxt)", "weights (.caffemodel)")):
        if not path.is_file():
            raise SourceError(f"Caffe {what} {str(path)!r} does not exist")
    return paths


def _convert_and_check(prototxt: Path, caffemodel: Path, work: Path, version: str) -> Path:
    from shipyard.sources.caffe.check import check_layers

    report = run_worker(prototxt, caffemodel, work)
    if report.get("error"):
        raise SourceError(f"{prototxt}: {report['error']}")
    if report["unsupported"]:
        from shipyard.sources.caffe.worker import CONVERTED

        raise SourceError(
            f"caffe-onnx {version} cannot convert these layers of {prototxt}: "
            f"{', '.join(report['unsupported'])}; it converts {', '.join(sorted(CONVERTED))}"
        )
    _finish(work / "model.onnx", report)
    with np.load(work / "blobs.npz", allow_pickle=False) as archive:
        blobs = {name: archive[name] for name in archive.files}
    try:
        checks = check_layers(work / "model.onnx", report, blobs)
    except (
        Exception
    ) as exc:  # ONNX Runtime rejecting the converted graph is the converter's failure
        raise SourceError(
            f"caffe-onnx's graph for {prototxt} does not run on ONNX Runtime: "
            f"{type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    wrong = [c for c in checks if c.problem]
    if wrong:
        raise SourceError(
            f"caffe-onnx {version} converts {len(wrong)} layer(s) of {prototxt} wrongly: "
            + "; ".join(f"{c.name} ({c.type}) {c.problem}" for c in wrong)
        )
    (work / "checks.json").write_text(json.dumps([c.to_json() for c in checks]))
    return work


def _finish(path: Path, report: dict) -> None:
    """Pin opset and IR version (caffe-onnx stamps onnx's newest), drop weights listed as inputs,
    and
    make the batch axis dynamic: an InnerProduct's flatten keeps the batch (Caffe's axis 1)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    del model.opset_import[:]
    model.opset_import.append(onnx.helper.make_opsetid("", OPSET))
    model.ir_version = 8
    weights = {t.name for t in model.graph.initializer}
    kept = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    del model.graph.value_info[:]  # written for the prototxt's batch size
    flattens = {
        f"{layer['name']}_Reshape" for layer in report["layers"] if layer["type"] == "InnerProduct"
    }
    shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape" and n.name in flattens}
    for tensor in model.graph.initializer:
        if tensor.name in shapes:
            tensor.CopyFrom(numpy_helper.from_array(np.array([0, -1], dtype=np.int64), tensor.name))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # e.g. an Upsample node, which opset 10 replaced by Resize
        raise SourceError(
            f"caffe-onnx's graph is not valid ONNX at opset {OPSET}: {str(exc)[:300]}"
        ) from exc
    onnx.save(model, str(path))


def _check_note(checks: list[dict], version: str) -> str:
    checked = [c for c in checks if c["checked"]]
    worst = max((c["error"] for c in checked), default=0.0)
    unchecked = [f"{c['name']} ({c['type']})" for c in checks if not c["checked"]]
    return (
        f"converted from Caffe with caffe-onnx {version} (opset {OPSET}); {len(checked)} of "
        f"{len(checks)} layers "
        f"agree with Caffe's arithmetic recomputed in numpy (worst relative error {worst:.1e})"
        + (f"; not checked: {', '.join(unchecked)}" if unchecked else "")
    )
