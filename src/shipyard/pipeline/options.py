"""What a build is asked to do, as small frozen records, one per stage that reads them.

    SourceOptions    load: the model, its weights, names, input hints
    DataOptions      data: --data, image decoding, the calibration / evaluation split
    SearchOptions    plan, verify, bench, choose: backends, precisions, the budget, threads, timing
    TrainingOptions  optimize: BN folding, pruning, distillation, sparsity, QAT
    OutputOptions    package: where it goes, --force, pre/post-processing

``BuildOptions`` holds one of each. Stage functions take only the record they read, and nothing
changes a record after it is made (``dataclasses.replace`` makes a new one).

Example::

    >>> options = BuildOptions.create("example:digits", max_drop=0.5, backends=["onnxruntime"])
    >>> options.search.max_drop, options.source.model
    (0.5, 'example:digits')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard import machine
from shipyard.bench import BenchConfig
from shipyard.dataset import ImageOptions
from shipyard.deadline import DEFAULT_TIME_BUDGET
from shipyard.errors import UsageError
from shipyard.sources import InputHint


@dataclass(frozen=True)
class SourceOptions:
    model: str
    weights: Path | None = None
    name: str | None = None
    input_hints: tuple[InputHint, ...] = ()
    output_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class DataOptions:
    data: Path | None = None
    image: ImageOptions = field(default_factory=ImageOptions)
    eval_fraction: float = 0.5
    max_eval: int = 1000
    seed: int = 0
    calibration_size: int = 300

    def check(self) -> None:
        if not 0 < self.eval_fraction < 1:
            raise UsageError(
                f"--eval-fraction {self.eval_fraction}: expected a number between 0 and 1"
            )


@dataclass(frozen=True)
class SearchOptions:
    max_drop: float = 1.0
    backends: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    target: str = "cpu"
    metric: str | None = None
    threads: int = field(default_factory=machine.usable_cores)
    optimize_for: str = "latency"
    throughput_batch: int = 16
    bench: BenchConfig = field(default_factory=BenchConfig)
    time_budget: float | None = DEFAULT_TIME_BUDGET
    """Seconds the whole build may spend (``shipyard.deadline`` says what it stops); None = no
    limit."""
    tune_seconds: float = 0.0
    """Seconds MetaSchedule may tune a TVM candidate (an extra, tuned one beside the untuned); 0 =
    no tuning."""
    cache_dir: Path | None = None
    """Where reference outputs are cached (default: ``machine.cache_root() / "reference"``)."""

    def check(self) -> None:
        if not self.max_drop >= 0:
            raise UsageError(f"--max-drop {self.max_drop}: expected a number of points ≥ 0")
        if self.threads < 1:
            raise UsageError(f"--threads {self.threads}: expected a whole number ≥ 1")
        if self.optimize_for not in ("latency", "throughput"):
            raise UsageError(
                f"--optimize-for {self.optimize_for!r}: expected latency or throughput"
            )
        if self.throughput_batch < 1:
            raise UsageError(
                f"--throughput-batch {self.throughput_batch}: expected a whole number ≥ 1"
            )
        if self.time_budget is not None and not self.time_budget >= 0:
            raise UsageError(
                f"--time-budget {self.time_budget:g}: expected a number of seconds ≥ 0"
            )
        if not self.tune_seconds >= 0:
            raise UsageError(
                f"--tune-seconds {self.tune_seconds:g}: expected a number of seconds ≥ 0 "
                "(0 = no tuning)"
            )


@dataclass(frozen=True)
class TrainingOptions:
    lossless: bool = True
    """Fold BN and re-parameterise multi-branch blocks (exact up to float rounding)."""
    prune: float | None = None
    prune_criterion: str = "l2"
    protect: tuple[str, ...] = ()
    distill_into: str | None = None
    sparsity: str | None = None
    qat: bool = False
    seed: int = 0


@dataclass(frozen=True)
class OutputOptions:
    out: Path | None = None
    force: bool = False
    preprocess: Path | None = None
    """Pre/post-processing config (JSON) to package with the model."""


@dataclass(frozen=True)
class BuildOptions:
    source: SourceOptions
    data: DataOptions = field(default_factory=DataOptions)
    search: SearchOptions = field(default_factory=SearchOptions)
    training: TrainingOptions = field(default_factory=TrainingOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

    @classmethod
    def create(cls, model: str, **settings: Any) -> BuildOptions:
        """Options from flat settings (``max_drop=0.5, out="pkg"``), each routed to its record."""
        groups: dict[str, dict[str, Any]] = {name: {} for name in _RECORDS}
        for key, value in settings.items():
            owners = [name for name, record in _RECORDS.items() if key in _fields(record)]
            if not owners:
                raise TypeError(f"BuildOptions.create() got an unknown setting {key!r}")
            for owner in owners:  # ``seed`` seeds both the data split and training
                groups[owner][key] = _normalised(key, value)
        return cls(
            SourceOptions(model, **groups.pop("source")),
            **{name: _RECORDS[name](**values) for name, values in groups.items()},
        )

    def check(self) -> None:
        self.data.check()
        self.search.check()

    def replace(self, **settings: Any) -> BuildOptions:
        """A copy with flat settings changed, routed like ``create``."""
        current = {
            key: getattr(getattr(self, name), key)
            for name, record in _RECORDS.items()
            for key in _fields(record)
        }
        current.pop("model")
        return BuildOptions.create(self.source.model, **{**current, **settings})


_RECORDS = {
    "source": SourceOptions,
    "data": DataOptions,
    "search": SearchOptions,
    "training": TrainingOptions,
    "output": OutputOptions,
}
_PATHS = ("weights", "data", "out", "cache_dir", "preprocess")
_TUPLES = ("input_hints", "output_names", "backends", "precisions", "protect")


def _fields(record: type) -> set[str]:
    return {f.name for f in dataclasses.fields(record)}


def _normalised(key: str, value: Any) -> Any:
    if value is None:
        return None
    if key in _PATHS:
        return Path(value)
    if key in _TUPLES:
        return tuple(value)
    return value
