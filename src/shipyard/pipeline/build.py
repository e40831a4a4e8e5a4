"""The whole road in one call: load → data → reference → candidates → verify → time → choose → package.

Example::

    >>> from shipyard.pipeline.build import BuildOptions, build
    >>> result = build(BuildOptions("example:digits", out=Path("pkg")))   # doctest: +SKIP
    >>> result.chosen.key                                                 # doctest: +SKIP
    'openvino/fp32'
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from shipyard import machine
from shipyard.backends import get_backend
from shipyard.backends.base import Session
from shipyard.bench import BenchConfig, rss_mb, time_sessions
from shipyard.workshop import Workshop
from shipyard.inputs import hints_from_npz, load_build_data
from shipyard.pipeline.plan import plan_candidates
from shipyard.dataset import Dataset, ImageOptions, split
from shipyard.errors import ShipyardError, SourceError, UsageError
from shipyard.optimize import apply_model_transforms
from shipyard.records import Candidate, Recipe, Timing
from shipyard.sources import InputHint, Source, load_source
from shipyard.verify import choose_metric, reference_outputs, run_batched, trim_padding, verify_outputs


class Reporter(Protocol):
    """Where a build tells what it is doing; the CLI draws it, the library stays quiet."""

    def stage(self, text: str) -> None: ...

    def candidate(self, candidate: Candidate) -> None:
        """A candidate has been made and verified (or has failed)."""

    def note(self, text: str) -> None: ...


class QuietReporter:
    def stage(self, text: str) -> None:
        pass

    def candidate(self, candidate: Candidate) -> None:
        pass

    def note(self, text: str) -> None:
        pass


def default_threads() -> int:
    return machine.usable_cores()


@dataclass
class BuildOptions:
    model: str
    weights: Path | None = None
    data: Path | None = None
    name: str | None = None
    max_drop: float = 1.0
    backends: list[str] | None = None
    precisions: list[str] | None = None
    out: Path | None = None
    force: bool = False
    threads: int = field(default_factory=default_threads)
    metric: str | None = None
    eval_fraction: float = 0.5
    max_eval: int = 1000
    seed: int = 0
    input_hints: list[InputHint] = field(default_factory=list)
    output_names: list[str] | None = None
    image: ImageOptions = field(default_factory=ImageOptions)
    optimize_for: str = "latency"
    throughput_batch: int = 16
    bench: BenchConfig = field(default_factory=BenchConfig)
    cache_dir: Path | None = None
    # quantisation (shipyard.quantize)
    time_budget: float | None = None
    """Seconds the accuracy-aware search may spend; None = no limit."""
    calibration_size: int = 300
    # model-level optimisation (shipyard.optimize)
    lossless: bool = True
    """Fold BN and re-parameterise multi-branch blocks (exact up to float rounding)."""
    prune: float | None = None
    prune_criterion: str = "l2"
    protect: list[str] = field(default_factory=list)
    distill_into: str | None = None
    sparsity: str | None = None
    qat: bool = False
    # targets (cpu, gpu, edge)
    target: str = "cpu"
    tune_seconds: float = 0.0
    """Seconds MetaSchedule may tune a TVM candidate (an extra, tuned one beside the untuned); 0 = no tuning."""
    # pre/post-processing declared for the package
    preprocess: Path | None = None

    def __post_init__(self) -> None:
        for name in ("weights", "data", "out", "cache_dir", "preprocess"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                setattr(self, name, Path(value))

    def check(self) -> None:
        if not self.max_drop >= 0:
            raise UsageError(f"--max-drop {self.max_drop}: expected a number of points ≥ 0")
        if self.threads < 1:
            raise UsageError(f"--threads {self.threads}: expected a whole number ≥ 1")
        if not 0 < self.eval_fraction < 1:
            raise UsageError(f"--eval-fraction {self.eval_fraction}: expected a number between 0 and 1")
        if self.optimize_for not in ("latency", "throughput"):
            raise UsageError(f"--optimize-for {self.optimize_for!r}: expected latency or throughput")
        if self.throughput_batch < 1:
            raise UsageError(f"--throughput-batch {self.throughput_batch}: expected a whole number ≥ 1")
        if not self.tune_seconds >= 0:
            raise UsageError(f"--tune-seconds {self.tune_seconds:g}: expected a number of seconds ≥ 0 "
                             "(0 = no tuning)")


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
    notes: list[str] = field(default_factory=list)
    package: Path | None = None

    def speedup(self, candidate: Candidate) -> float | None:
        if not (self.baseline and self.baseline.timing and candidate.timing):
            return None
        return self.baseline.timing.p50_ms / candidate.timing.p50_ms


def build(options: BuildOptions, reporter: Reporter | None = None) -> BuildResult:
    """Run the whole road for ``options``; writes a package when ``options.out`` is set."""
    reporter = reporter or QuietReporter()
    options.check()
    from shipyard.pipeline.targets import resolve_target

    options.backends, options.precisions = resolve_target(options.target, options.backends, options.precisions)
    if options.out is not None:
        from shipyard.package.writer import check_out_dir

        check_out_dir(options.out, options.force)
    reporter.stage(f"loading {options.model}")
    hints = options.input_hints or hints_from_npz(options.data)
    source = load_source(options.model, options.weights, hints, options.output_names)
    if options.name:
        source.name = options.name
    with tempfile.TemporaryDirectory(prefix="shipyard-build-") as work:
        result = _build_in(Path(work), source, options, reporter)
        if options.out is not None and result.chosen is not None:
            from shipyard.package.writer import write_package

            reporter.stage(f"writing package {options.out}")
            result.package = write_package(result, options, options.out, Path(work))
    return result


def _build_in(work: Path, source: Source, options: BuildOptions, reporter: Reporter) -> BuildResult:
    reporter.stage("reading data")
    dataset = load_build_data(options.data, source, options.image)
    parts = split(dataset, options.eval_fraction, options.seed)
    evaluation = _capped(parts.evaluation, options.max_eval, options.seed)
    metric = choose_metric(options.metric, source.task, evaluation.labels is not None)
    notes = _data_notes(dataset, parts.calibration, evaluation)
    for note in notes:
        reporter.note(note)
    original = source
    source = apply_model_transforms(original, options, parts, reporter)
    plans, skipped = plan_candidates(source, options.backends, options.precisions)
    plans = _with_tuning(plans, options, reporter)
    if options.qat:  # INT8 by quantisation-aware training (shipyard.optimize.qat)
        from shipyard.optimize.qat import qat_candidates

        plans += qat_candidates(source, options.backends)
    if not plans:
        raise UsageError("no candidate can be built: " + ("; ".join(c.error for c in skipped) or
                         f"no backend in {options.backends} runs a {source.kind} model"))
    workshop = Workshop(source, work / "artifacts", _calibration(parts.calibration, evaluation, options, reporter))
    reporter.stage("running the source model for reference outputs")
    reference_session = _reference_session(original, options.threads)
    cache = options.cache_dir or _default_cache()
    reference = _source_outputs(reference_session, original, evaluation, cache)
    baseline = _baseline(original, reference, evaluation, metric, options.max_drop)

    def verify(more: list[Candidate]) -> dict[str, Session]:
        return _make_and_verify(more, workshop, reference, evaluation, metric, options, reporter)

    sessions = verify(plans)
    plans += _accuracy_aware_search(plans, sessions, verify, workshop, options, reporter)
    reporter.stage(f"timing {len(sessions)} candidates and the baseline in alternating blocks")
    _time_candidates([baseline, *plans], {BASELINE: reference_session, **sessions}, evaluation, options)
    for session in {id(s): s for s in (reference_session, *sessions.values())}.values():
        session.close()
    candidates = plans + skipped
    result = BuildResult(source, metric, candidates, _choose(plans, options.optimize_for), baseline,
                         len(parts.calibration), len(evaluation), dataset.description, dataset.synthetic,
                         options.threads, notes + [n for ns in workshop.notes.values() for n in ns])
    if result.chosen is None:
        reporter.note("no candidate stayed inside the accuracy budget; nothing was packaged")
    return result


def _with_tuning(plans: list[Candidate], options: BuildOptions, reporter: Reporter) -> list[Candidate]:
    """``--tune-seconds``: a MetaSchedule-tuned TVM candidate beside each untuned one."""
    if not options.tune_seconds:
        return plans
    from shipyard.pipeline.plan import with_tuned

    tuned = with_tuned(plans, options.tune_seconds, options.threads)
    if len(tuned) == len(plans):
        reporter.note(f"--tune-seconds {options.tune_seconds:g} tunes TVM candidates, and none is planned; "
                      "add tvm to --backends (or use --target edge) to tune one")
    return tuned


def _calibration(calibration: Dataset, evaluation: Dataset, options: BuildOptions, reporter: Reporter) -> Dataset:
    """At most ``--calibration-size`` samples, with a note when they are too few or unlike the evaluation set."""
    from shipyard.quantize.calibration import calibration_set

    chosen = calibration_set(calibration, evaluation, options.calibration_size, options.seed)
    for note in chosen.notes if "int8" in (options.precisions or []) else []:
        reporter.note(note)
    chosen.dataset.notes.extend(chosen.notes)
    return chosen.dataset


def _accuracy_aware_search(plans: list[Candidate], sessions: dict[str, Session], verify, workshop: Workshop,
                           options: BuildOptions, reporter: Reporter) -> list[Candidate]:
    """For INT8 candidates that missed the budget: mixed precision (shipyard.search.rescue), then,
    when every INT8 variant still misses and there is real data to train on, quantisation-aware training."""
    if not any(c.precision == "int8" for c in plans):
        return []
    from shipyard.optimize.qat import qat_fallback
    from shipyard.search.rescue import rescue

    started = time.monotonic()
    tried = rescue(plans, sessions, workshop, verify, options, reporter)
    if options.time_budget is not None and time.monotonic() - started >= options.time_budget:
        return tried  # the rescue has said the budget is spent; QAT would overrun it

    def verify_and_keep(more: list[Candidate]) -> dict[str, Session]:
        opened = verify(more)
        sessions.update(opened)
        return opened

    return tried + qat_fallback(plans + tried, workshop, verify_and_keep)


def _capped(dataset: Dataset, limit: int, seed: int) -> Dataset:
    if len(dataset) <= limit:
        return dataset
    import numpy as np

    return dataset.take(np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit]))


def _data_notes(dataset: Dataset, calibration: Dataset, evaluation: Dataset) -> list[str]:
    notes = [f"data: {dataset.description}; {len(calibration)} calibration / {len(evaluation)} evaluation samples"]
    if dataset.synthetic:
        notes.append("no --data: the numbers below measure speed and fidelity to the source, not task accuracy")
    return notes + dataset.notes


def _default_cache() -> Path:
    return machine.cache_root() / "reference"


BASELINE = "baseline"


def _baseline(source: Source, reference: dict, evaluation: Dataset, metric: str, max_drop: float) -> Candidate:
    """The source model as given, run eagerly (or by ONNX Runtime for ONNX sources): the yardstick."""
    eager = source.kind != "onnx"
    baseline = Candidate("torch" if eager else "onnxruntime", "fp32", Recipe(),
                         name=f"{BASELINE}: " + ("torch eager" if eager else "source on onnxruntime"))
    baseline.verification = verify_outputs(metric, reference, reference, evaluation.labels, max_drop)
    baseline.timing = Timing(0, 0, 0, 0, 0)
    return baseline


def _reference_session(source: Source, threads: int) -> Session:
    if source.kind in ("torch", "torchscript"):
        return get_backend("torch").session_for_module(source.module, source.signature, threads)
    from shipyard.records import Artifact

    try:
        return get_backend("onnxruntime").load(Artifact(source.path, "onnx", source.signature), threads)
    except Exception as exc:
        raise SourceError(f"ONNX Runtime cannot load the source model {source.path}: {str(exc)[:300]}") from exc


def _source_outputs(session: Session, source: Source, evaluation: Dataset, cache: Path) -> dict:
    """The reference outputs; the source failing on the user's own data is the user's error to see."""
    try:
        return reference_outputs(session, source.content_hash, evaluation, cache)
    except ShipyardError:
        raise
    except Exception as exc:
        raise SourceError(f"the source model fails on the data: {type(exc).__name__}: {str(exc)[:300]}") from exc


def _make_and_verify(plans: list[Candidate], workshop: Workshop, reference: dict, evaluation: Dataset, metric: str, options: BuildOptions,
                     reporter: Reporter) -> dict[str, Session]:
    sessions: dict[str, Session] = {}
    for index, candidate in enumerate(plans, start=1):
        reporter.stage(f"[{index}/{len(plans)}] {candidate.backend}/{candidate.precision}: {candidate.recipe}")
        try:
            session = _load_candidate(candidate, workshop, options.threads)
            outputs = run_batched(session, evaluation)
            candidate.verification = verify_outputs(metric, reference, outputs, evaluation.labels, options.max_drop)
            sessions[candidate.key] = session
        except ShipyardError as exc:
            candidate.error = str(exc)
        except Exception as exc:  # a runtime's own failure on this model is a result, not a crash
            candidate.error = f"{type(exc).__name__}: {str(exc)[:400]}"
        reporter.candidate(candidate)
    return sessions


def _load_candidate(candidate: Candidate, workshop: Workshop, threads: int) -> Session:
    """A session on the candidate's artifact, loaded from the file the package will ship."""
    memory_before = rss_mb()
    start = time.perf_counter()
    candidate.artifact = workshop.make(candidate.recipe)
    session = get_backend(candidate.backend).load(candidate.artifact, threads)
    candidate.timing = Timing(0, 0, 0, 0, 0, load_ms=(time.perf_counter() - start) * 1000,
                              peak_rss_mb=max(0.0, rss_mb() - memory_before),
                              size_mb=candidate.artifact.size_bytes() / 2**20 if candidate.artifact else 0.0)
    return session


def _time_candidates(plans: list[Candidate], sessions: dict[str, Session], evaluation: Dataset,
                     options: BuildOptions) -> None:
    timed = [c for c in plans if _timing_key(c) in sessions]
    one = trim_padding(next(evaluation.batches(1)))
    many = trim_padding(_batch_feed(evaluation, options.throughput_batch))
    latency = time_sessions(sessions, one, options.bench)
    batched = time_sessions(sessions, many, BenchConfig(rounds=2, block_seconds=options.bench.block_seconds, max_block=10))
    size = len(next(iter(many.values())))
    for candidate in timed:
        stats, stats_many = latency[_timing_key(candidate)], batched[_timing_key(candidate)]
        old = candidate.timing
        candidate.timing = Timing(stats.p50_ms, stats.p90_ms, stats.p99_ms, stats.mean_ms, stats.calls,
                                  throughput=size / (stats_many.p50_ms / 1000), throughput_batch=size,
                                  load_ms=old.load_ms, peak_rss_mb=old.peak_rss_mb, size_mb=old.size_mb)


def _timing_key(candidate: Candidate) -> str:
    return BASELINE if candidate.name.startswith(BASELINE) else candidate.key


def _batch_feed(evaluation: Dataset, size: int) -> dict:
    import numpy as np

    index = np.arange(size) % len(evaluation)
    return evaluation.take(index).inputs


def _choose(plans: list[Candidate], optimize_for: str) -> Candidate | None:
    passing = [c for c in plans if c.passed and c.timing and c.timing.calls]
    if not passing:
        return None
    if optimize_for == "throughput":
        return max(passing, key=lambda c: c.timing.throughput)
    return min(passing, key=lambda c: c.timing.p50_ms)
