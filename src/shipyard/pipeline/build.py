"""The whole road in one call: load → data → optimize → plan → verify → search → bench → choose →
package.

Example::

    >>> import shipyard
    >>> result = shipyard.build("example:digits", out="pkg")          # doctest: +SKIP
    >>> result.chosen.key                                             # doctest: +SKIP
    'onnxruntime/fp32'
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shipyard import machine
from shipyard.backends import CPU_BACKENDS, get_backend
from shipyard.backends.base import Session
from shipyard.dataset import Dataset
from shipyard.deadline import Deadline
from shipyard.errors import ShipyardError, SourceError, UsageError
from shipyard.inputs import hints_from_npz
from shipyard.optimize import apply_model_transforms
from shipyard.pipeline.choose import (
    BASELINE,
    batched_bench,
    bench_seconds,
    bench_within,
    choose,
    time_candidates,
    timing_reserve,
)
from shipyard.pipeline.data import BuildData, read_data
from shipyard.pipeline.options import (
    BuildOptions,
    SearchOptions,
    SourceOptions,
    TrainingOptions,
)
from shipyard.pipeline.plan import plan_candidates, with_tuned
from shipyard.pipeline.verifier import Verifier
from shipyard.records import Artifact, Candidate, Recipe, Timing
from shipyard.sources import Source, load_source
from shipyard.verify import reference_outputs, verify_outputs
from shipyard.workshop import Workshop


class Reporter(Protocol):
    """Where a build tells what it is doing; the CLI draws it, the library stays quiet."""

    def stage(self, text: str) -> None: ...

    def candidate(self, candidate: Candidate) -> None:
        """A candidate has been made and verified (or has failed)."""

    def note(self, text: str) -> None: ...

    def progress(self, what: str, done: int, total: int) -> None:
        """``done`` of ``total`` steps of a long stage (``total`` 0: unknown); the CLI estimates
        time left."""


def report_progress(reporter: Reporter, what: str, done: int, total: int) -> None:
    """``reporter.progress`` when the reporter has it (reporters written before it existed do
    not)."""
    progress = getattr(reporter, "progress", None)
    if progress is not None:
        progress(what, done, total)


class QuietReporter:
    def stage(self, text: str) -> None:
        pass

    def candidate(self, candidate: Candidate) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def progress(self, what: str, done: int, total: int) -> None:
        pass


@dataclass
class BuildResult:
    source: Source
    metric: str
    candidates: list[Candidate]
    chosen: Candidate | None
    baseline: Candidate | None
    calibration_size: int
    evaluation_size: int
    data_description: str
    synthetic_data: bool
    threads: int
    options: BuildOptions
    """What the build was asked (the budget, the selection rule, the output)."""
    notes: list[str] = field(default_factory=list)
    package: Path | None = None
    calibration_used: int | None = None
    """Samples INT8 calibration used (at most ``--calibration-size`` of the calibration split)."""

    def speedup(self, candidate: Candidate) -> float | None:
        if not (self.baseline and self.baseline.timing and candidate.timing):
            return None
        return self.baseline.timing.p50_ms / candidate.timing.p50_ms


def build(options: BuildOptions, reporter: Reporter | None = None) -> BuildResult:
    """Run the whole road for ``options``; writes a package when ``options.output.out`` is set."""
    from shipyard.pipeline.targets import resolve_target

    reporter = reporter or QuietReporter()
    options.check()
    deadline = Deadline(options.search.time_budget)
    search = options.search
    backends, precisions = resolve_target(
        search.target, _listed(search.backends), _listed(search.precisions)
    )
    options = dataclasses.replace(
        options,
        search=dataclasses.replace(
            search, backends=_tupled(backends), precisions=_tupled(precisions)
        ),
    )
    out = options.output.out
    if out is not None:
        from shipyard.package.outdir import build_inputs
        from shipyard.package.writer import check_out_dir

        check_out_dir(
            out,
            options.output.force,
            build_inputs(
                options.source.model,
                options.source.weights,
                options.data.data,
                options.output.preprocess,
                options.search.cache_dir,
            ),
        )
    source = _load(options.source, options.data.data, reporter)
    with tempfile.TemporaryDirectory(prefix="shipyard-build-") as work:
        result = _road(Path(work), source, options, reporter, deadline)
        if out is not None and result.chosen is not None:
            from shipyard.package.writer import write_package

            reporter.stage(f"writing package {out}")
            result.package = write_package(result, out)
    return result


def build_model(model: str, reporter: Reporter | None = None, **settings: Any) -> BuildResult:
    """``shipyard.build``: the whole road for ``model`` with flat settings (see
    ``BuildOptions.create``)."""
    return build(BuildOptions.create(model, **settings), reporter)


def _load(options: SourceOptions, data: Path | None, reporter: Reporter) -> Source:
    reporter.stage(f"loading {options.model}")
    hints = list(options.input_hints) or hints_from_npz(data)
    source = load_source(options.model, options.weights, hints, _listed(options.output_names))
    return dataclasses.replace(source, name=options.name) if options.name else source


def _road(
    work: Path, original: Source, options: BuildOptions, reporter: Reporter, deadline: Deadline
) -> BuildResult:
    reporter.stage("reading data")
    data = read_data(original, options.data, options.search.metric, wants_int8=False)
    search, data = _resolve_precisions(
        options.search, data
    )  # the stages get auto resolved; result.options keeps what was asked
    for note in [
        *original.notes,
        *data.notes,
    ]:  # a converted source's notes say how it was converted
        reporter.note(note)
    source = apply_model_transforms(original, options.training, data.parts, reporter)
    plans, skipped = _plans(source, search, options.training, reporter)
    search_deadline = deadline.keeping(timing_reserve(search.bench, len(plans) + 1))
    workshop = Workshop(source, work / "artifacts", data.calibration, search_deadline)
    reporter.stage("running the source model for reference outputs")
    reference_session = _reference_session(original, search.threads)
    reference = _source_outputs(
        reference_session,
        original,
        data.evaluation,
        search.cache_dir or machine.cache_root() / "reference",
    )
    baseline = _baseline(original, reference, data.evaluation, data.metric, search.max_drop)
    verify = Verifier(
        workshop, reference, data.evaluation, data.metric, search.max_drop, search.threads, reporter
    )
    verify(making_order(plans), first_pass=True)
    plans += _accuracy_aware_search(plans, verify, workshop, search, reporter)
    bench = bench_within(search.bench, len(verify.sessions) + 1, deadline, reporter)
    reporter.stage(
        f"timing {len(verify.sessions)} candidates and the baseline in alternating blocks "
        f"(batch 1 about {bench_seconds(bench, len(verify.sessions) + 1):.0f} s, then batched)"
    )
    time_candidates(
        [baseline, *plans],
        {BASELINE: reference_session, **verify.sessions},
        data.evaluation,
        dataclasses.replace(search, bench=bench),
        lambda what, done, total: report_progress(reporter, what, done, total),
        batched_bench(search.bench, deadline),
    )
    for session in {id(s): s for s in (reference_session, *verify.sessions.values())}.values():
        session.close()
    result = _result(
        source,
        data,
        plans + skipped,
        choose(plans, search.optimize_for),
        baseline,
        options,
        [*original.notes, *(n for ns in workshop.notes.values() for n in ns)],
    )
    if result.chosen is None:
        reporter.note("no candidate stayed inside the accuracy budget; nothing was packaged")
    return result


def making_order(plans: list[Candidate]) -> list[Candidate]:
    """The plans taken a precision at a time (fp32, bf16, int8, fp32, …), so that when the time
    budget runs out every precision has had its first candidates; the result keeps the plan
    order."""
    by_precision: dict[str, list[Candidate]] = {}
    for plan in plans:
        by_precision.setdefault(plan.precision, []).append(plan)
    queues = list(by_precision.values())
    return [
        queue[i]
        for i in range(max(map(len, queues), default=0))
        for queue in queues
        if i < len(queue)
    ]


def _resolve_precisions(search: SearchOptions, data: BuildData) -> tuple[SearchOptions, BuildData]:
    """``--precisions auto`` (the default) → FP32 plus what this CPU runs natively, with notes on
    what was left out."""
    from shipyard.quantize.auto import cpu_flags, expand_precisions

    choice = expand_precisions(
        _listed(search.precisions), cpu_flags(), not data.dataset.synthetic, search.max_drop
    )
    notes = choice.notes + (
        [f"--precisions auto on this CPU: {', '.join(choice.precisions)}"] if choice.natives else []
    )
    if (
        "int8" in choice.precisions
    ):  # calibration's own warnings matter only when something is calibrated
        notes += [n for n in data.calibration.notes if n.startswith("calibration:")]
    return (
        dataclasses.replace(search, precisions=tuple(choice.precisions)),
        dataclasses.replace(data, notes=data.notes + notes),
    )


def _result(
    source: Source,
    data: BuildData,
    candidates: list[Candidate],
    chosen: Candidate | None,
    baseline: Candidate,
    options: BuildOptions,
    notes: list[str],
) -> BuildResult:
    return BuildResult(
        source,
        data.metric,
        candidates,
        chosen,
        baseline,
        len(data.parts.calibration),
        len(data.evaluation),
        data.dataset.description,
        data.dataset.synthetic,
        options.search.threads,
        options,
        data.notes + notes,
        calibration_used=len(data.calibration) if data.calibration is not None else None,
    )


def _plans(
    source: Source, search: SearchOptions, training: TrainingOptions, reporter: Reporter
) -> tuple[list[Candidate], list[Candidate]]:
    backends = _listed(search.backends)
    plans, skipped = plan_candidates(source, backends, _listed(search.precisions))
    for name in backends or list(CPU_BACKENDS):
        for precision in search.precisions or ():
            why = get_backend(name).not_planned.get(precision)
            if why:
                reporter.note(f"no {precision} candidate on {name}: {why}")
    if search.tune_seconds:
        tuned = with_tuned(plans, search.tune_seconds, search.threads)
        if len(tuned) == len(plans):
            reporter.note(
                f"--tune-seconds {search.tune_seconds:g} tunes TVM candidates, and none is "
                "planned; "
                "add tvm to --backends (or use --target edge) to tune one"
            )
        plans = tuned
    if training.qat:  # INT8 by quantisation-aware training (shipyard.optimize.qat)
        from shipyard.optimize.qat import qat_candidates

        plans += qat_candidates(source, backends)
    if not plans:
        raise UsageError(
            "no candidate can be built: "
            + (
                "; ".join(c.error for c in skipped)
                or f"no backend in {backends} runs a {source.kind} model"
            )
        )
    return plans, skipped


def _accuracy_aware_search(
    plans: list[Candidate],
    verify: Verifier,
    workshop: Workshop,
    search: SearchOptions,
    reporter: Reporter,
) -> list[Candidate]:
    """For INT8 candidates that missed the budget: mixed precision (shipyard.search.rescue), then,
    when every INT8 variant still misses and there is real data to train on, quantisation-aware
    training."""
    if not any(c.precision == "int8" for c in plans):
        return []
    from shipyard.optimize.qat import qat_fallback
    from shipyard.search.rescue import rescue

    tried = rescue(plans, workshop, verify, search, reporter)
    if workshop.deadline.spent():
        return tried  # the rescue has said the budget is spent; QAT would overrun it
    return tried + qat_fallback(plans + tried, workshop, verify)


def _baseline(
    source: Source, reference: dict, evaluation: Dataset, metric: str, max_drop: float
) -> Candidate:
    """The source model as given, run eagerly (or by ONNX Runtime for ONNX sources): the
    yardstick."""
    eager = source.kind != "onnx"
    backend, label = ("torch", "torch eager") if eager else ("onnxruntime", "source on onnxruntime")
    if source.reference is not None:
        backend, label = source.reference.framework, f"source in {source.reference.description}"
    baseline = Candidate(backend, "fp32", Recipe(), name=f"{BASELINE}: {label}")
    baseline.verification = verify_outputs(
        metric, reference, reference, evaluation.labels, max_drop
    )
    baseline.timing = Timing(0, 0, 0, 0, 0)
    return baseline


def _reference_session(source: Source, threads: int) -> Session:
    if (
        source.reference is not None
    ):  # converted from Paddle, TensorFlow, Caffe: its own framework runs it
        from shipyard.frameworks import reference_session

        return reference_session(source, threads)
    if source.kind in ("torch", "torchscript"):
        return get_backend("torch").session_for_module(source.module, source.signature, threads)
    try:
        return get_backend("onnxruntime").load(
            Artifact(source.path, "onnx", source.signature), threads
        )
    except Exception as exc:
        raise SourceError(
            f"ONNX Runtime cannot load the source model {source.path}: {str(exc)[:300]}"
        ) from exc


def _source_outputs(session: Session, source: Source, evaluation: Dataset, cache: Path) -> dict:
    """The reference outputs; the source failing on the user's own data is the user's error to
    see."""
    try:
        return reference_outputs(session, source.content_hash, evaluation, cache)
    except ShipyardError:
        raise
    except Exception as exc:
        raise SourceError(
            f"the source model fails on the data: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc


def _listed(values: tuple[str, ...] | None) -> list[str] | None:
    return list(values) if values is not None else None


def _tupled(values: list[str] | None) -> tuple[str, ...] | None:
    return tuple(values) if values is not None else None
