"""The ``split`` candidate: planned only for torch models that call operators no exporter knows.

The planner runs the model once to find them (``find_unknown_ops``); the ``split`` recipe step
cuts the model around them and writes a ``.split.zip`` artifact (``shipyard.split.artifact``).
When the model carries an ONNX translation for every unknown op, no split is planned: the
ordinary ONNX candidates export through the translation.
"""

from __future__ import annotations

from shipyard.convert.custom_ops import UnknownOp, find_unknown_ops
from shipyard.errors import ConversionError
from shipyard.records import Artifact, Candidate, Recipe
from shipyard.sources.base import Source
from shipyard.workshop import STEP_MODULES, Workshop, step

STEP_MODULES.setdefault("split", __name__)


def unknown_ops(source: Source) -> list[UnknownOp]:
    """The unknown operators of a torch source (an empty list for every other kind)."""
    if source.kind != "torch" or source.module is None:
        return []
    import torch

    from shipyard.convert.onnx_export import spec_example

    args = tuple(torch.from_numpy(spec_example(s, batch=1)) for s in source.signature.inputs)
    try:
        return find_unknown_ops(source.module, args)
    except Exception:  # a model that fails on a probe input is the other candidates' story to tell
        return []


def split_plans(source: Source) -> list[Candidate]:
    """One ``split`` candidate when the model has an unknown op without a translation.

    The model is cut here already, so the recipe (shown as the build runs) names the op and
    every part with the runtime that will run it.
    """
    untranslated = [op for op in unknown_ops(source) if not op.translated]
    if not untranslated:
        return []
    ops = "; ".join(f"{op.name}@{op.where}" for op in untranslated)
    try:
        parts = " → ".join(
            f"{'torch' if p.kind == 'torch' else 'onnxruntime'}({_part_label(p)})"
            for p in _cut(source).parts
        )
    except ConversionError as exc:
        return [
            Candidate(
                "split",
                "fp32",
                Recipe().then("split", torch_ops=ops),
                error=str(exc),
                name="split/fp32",
            )
        ]
    return [
        Candidate(
            "split",
            "fp32",
            Recipe().then("split", runtime="onnxruntime", torch_ops=ops, parts=parts),
            name="split/fp32",
        )
    ]


def _part_label(part) -> str:
    from shipyard.split.partition import span

    return ", ".join(sorted(set(part.ops))) if part.kind == "torch" else span(part.module_paths)


_CUTS: list[tuple] = []
"""(module, partition) of the last model cut, so planning and the recipe step cut only once."""


def _cut(source: Source):
    import torch

    from shipyard.convert.onnx_export import spec_example
    from shipyard.split.partition import partition

    if _CUTS and _CUTS[0][0] is source.module:
        return _CUTS[0][1]
    args = tuple(torch.from_numpy(spec_example(s, batch=2)) for s in source.signature.inputs)
    cut = partition(source.module, args, source.signature.input_names)
    _CUTS[:] = [(source.module, cut)]
    return cut


@step("split")
def _split(
    workshop: Workshop, previous: Artifact | None, runtime: str = "onnxruntime", **_: str
) -> Artifact:
    import torch

    from shipyard.convert.onnx_export import spec_example
    from shipyard.split.artifact import SUFFIX, write_split

    source = workshop.source
    if source.kind != "torch":
        raise ConversionError(f"only torch models can be split; this model is {source.kind}")
    args = tuple(torch.from_numpy(spec_example(s, batch=2)) for s in source.signature.inputs)
    ops = find_unknown_ops(source.module, args)
    path = workshop.new_path(SUFFIX)
    plan = write_split(_cut(source), ops, path, runtime)
    workshop.notes.setdefault("split", []).extend(describe_split(ops, plan))
    return Artifact(path, "split", source.signature)


def describe_split(ops: list[UnknownOp], plan: dict) -> list[str]:
    """Lines for the build output: each unknown op, then the parts and where each one runs."""
    lines = [f"unknown op {op.describe()}" for op in ops]
    parts = " → ".join(f"[{s['runtime']}] {s['describe']}" for s in plan["steps"])
    return lines + [f"split into {len(plan['steps'])} parts: {parts}"]
