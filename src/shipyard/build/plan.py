"""Which candidates a build tries: every available backend × every precision asked for.

A plan is a ``Candidate`` with no results yet: backend, precision and the recipe that makes its
artifact. Precisions other than FP32 come from planners registered in ``PRECISION_PLANNERS``
(the quantisation package adds its own).
"""

from __future__ import annotations

import importlib
from typing import Callable

from shipyard.backends import CPU_BACKENDS, get_backend
from shipyard.errors import UsageError
from shipyard.records import Candidate, Recipe
from shipyard.sources.base import Source

PRECISIONS = ("fp32", "fp16", "int8")
ONNX = Recipe().then("export", format="onnx")
Planner = Callable[[Source, str], list[Candidate]]
PRECISION_PLANNERS: dict[str, Planner] = {}
PLANNER_MODULES: dict[str, str] = {"int8": "shipyard.quantize.plan", "fp16": "shipyard.quantize.plan"}
"""Precision → module that registers its planner in ``PRECISION_PLANNERS`` when imported."""


def fp32_plans(source: Source, backend: str) -> list[Candidate]:
    torch_source = source.kind in ("torch", "torchscript")
    if backend == "torch":
        return [Candidate("torch", "fp32", Recipe().then("export", format="torch-export"))] if source.kind == "torch" else []
    if backend == "torchscript":
        return [Candidate("torchscript", "fp32", Recipe().then("export", format="torchscript"))] if torch_source else []
    if backend == "onnxruntime":
        return [Candidate("onnxruntime", "fp32", ONNX),
                Candidate("onnxruntime", "fp32", ONNX.then("optimize", optimizer="onnxslim")),
                Candidate("onnxruntime", "fp32", ONNX.then("optimize", optimizer="ort"))]
    if backend == "openvino":
        return [Candidate("openvino", "fp32", ONNX.then("convert", format="openvino"))]
    if backend == "split":  # only for models with operators no exporter knows
        from shipyard.split.plan import split_plans

        return split_plans(source)
    from shipyard.build.targets import target_fp32_plans

    return target_fp32_plans(source, backend)


PRECISION_PLANNERS["fp32"] = fp32_plans


def _planner(precision: str) -> Planner | None:
    if precision not in PRECISION_PLANNERS and precision in PLANNER_MODULES:
        importlib.import_module(PLANNER_MODULES[precision])
    return PRECISION_PLANNERS.get(precision)


def parse_list(value: str | None, known: tuple[str, ...] | list[str], what: str) -> list[str] | None:
    """``"a,b"`` → ``["a", "b"]``, each checked against ``known``; None stays None."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in known]
    if unknown or not items:
        raise UsageError(f"--{what} {value!r}: unknown {', '.join(unknown) or 'empty list'}; "
                         f"expected a comma-separated list of {', '.join(known)}")
    return items


def plan_candidates(source: Source, backends: list[str] | None, precisions: list[str] | None) -> tuple[list[Candidate], list[Candidate]]:
    """(plans to try, candidates skipped because their backend is unavailable)."""
    wanted_backends = backends or list(CPU_BACKENDS)
    plans: list[Candidate] = []
    skipped: list[Candidate] = []
    for precision in precisions or ["fp32"]:
        planner = _planner(precision)
        if planner is None:
            raise UsageError(f"precision {precision!r} is not supported; expected one of "
                             f"{', '.join(sorted({*PRECISION_PLANNERS, *PLANNER_MODULES}))}")
        for name in wanted_backends:
            ok, why = get_backend(name).available()
            for candidate in planner(source, name):
                candidate.recipe = Recipe(source.steps + candidate.recipe.steps)
                if not ok:
                    candidate.error = f"backend unavailable: {why}"
                    skipped.append(candidate)
                else:
                    plans.append(candidate)
    return plans, skipped
