"""A TVM library tuned by MetaSchedule within a time limit, then compiled with what the tuner found.

MetaSchedule tunes static shapes only, so a tuned library is compiled for batch 1 (any other
dimension must already be fixed) and the TVM session runs a batch sample by sample. A small
``model.json`` beside ``model.so`` says so and records the tuning; ``Artifact.files`` packages it.

The limit is real: the tuner (``shipyard.backends.tvm.tuner``) runs in a process group of its own,
commits each measured batch of trials to a JSON database in a work folder, and is killed at the
limit. The library is then compiled with the records the database holds; a function without one
keeps the default schedule, so a limit too short to tune anything still yields a working, untuned
library, and the note says so. Compiling afterwards takes a few seconds more than the limit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.backends.tvm.convert import (
    host_target,
    import_onnx,
    need_compiler,
    tvm_errors,
)
from shipyard.errors import ConversionError
from shipyard.records import Artifact, Signature

if TYPE_CHECKING:
    from shipyard.workshop import Workshop

TRIALS_PER_TASK = 256
"""The trial bound beside the time limit: past a few hundred trials a task's best schedule rarely
improves."""
TUNER_LOG = "tuner.log"


@dataclass
class TuneRequest:
    """What the tuning process is asked to do; written as ``request.json`` in its work folder."""

    onnx: str
    shapes: dict[str, list[int]]
    target: dict[str, Any]
    trials_per_task: int
    search_threads: int


@dataclass
class TuningReport:
    """How a tuned library was made; saved beside it as ``model.json``."""

    tune_seconds: float
    threads: int
    wall_seconds: float
    stopped: str
    """``time limit``, ``finished`` (every task done or at the trial bound) or why the tuner
    failed."""
    functions: int
    tuned: int
    """Functions compiled with a tuned schedule; the rest keep the default one."""
    records: int
    trials_per_task: int
    static_batch: int | None

    def note(self) -> str:
        head = f"TVM tuning ({self.tune_seconds:g} s limit, {self.threads} thread(s))"
        batch = (
            "; compiled for batch 1, so a batch runs sample by sample"
            if self.static_batch == 1
            else ""
        )
        if self.tuned == 0:
            return (
                f"{head}: no schedule was tuned within {self.wall_seconds:.1f} s ({self.stopped}); "
                f"the library uses TVM's default schedules{batch}"
            )
        return (
            f"{head}: {self.tuned} of {self.functions} functions use tuned schedules "
            f"({self.records} measured in {self.wall_seconds:.1f} s, stopped: "
            f"{self.stopped}){batch}"
        )


@dataclass
class TunedLibrary:
    artifact: Artifact
    report: TuningReport


def compile_tuned(
    onnx: Artifact, path: Path, tune_seconds: float, threads: int = 1
) -> TunedLibrary:
    """Tune ``onnx`` for at most ``tune_seconds`` with ``threads`` threads, compile it, save it at
    ``path``."""
    if not tune_seconds > 0:
        raise ConversionError(f"tune_seconds={tune_seconds}: expected a number of seconds > 0")
    need_compiler()
    shapes, static_batch = static_shapes(onnx.signature)
    target = host_target(threads)
    work = (path.parent / "tuning").resolve()  # the tuner runs in it, so paths must not be relative
    work.mkdir(parents=True, exist_ok=True)
    request = TuneRequest(str(onnx.path.resolve()), shapes, target, TRIALS_PER_TASK, _cores())
    wall, stopped = run_tuner(request, work, tune_seconds, threads)
    with tvm_errors(onnx):
        functions, tuned, records = _compile(request, work, path)
    report = TuningReport(
        tune_seconds,
        threads,
        round(wall, 2),
        stopped,
        functions,
        tuned,
        records,
        TRIALS_PER_TASK,
        static_batch,
    )
    path.with_suffix(".json").write_text(
        json.dumps({"static_batch": static_batch, "tuning": asdict(report)}, indent=2)
    )
    return TunedLibrary(Artifact(path, "tvm", onnx.signature), report)


def tuning_report(artifact: Artifact) -> TuningReport:
    """The report saved beside a tuned library (``model.json``)."""
    sidecar = artifact.path.with_suffix(".json")
    try:
        return TuningReport(**json.loads(sidecar.read_text())["tuning"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ConversionError(
            f"{sidecar} does not hold a TVM tuning report; expected the model.json "
            "written beside a tuned library"
        ) from exc


def static_shapes(signature: Signature) -> tuple[dict[str, list[int]], int | None]:
    """Every input's shape with a dynamic batch axis set to 1, and that batch size (None if none
    was dynamic)."""
    shapes, batch = {}, None
    for spec in signature.inputs:
        dims = list(spec.shape)
        if dims and not isinstance(dims[0], int):
            dims[0], batch = 1, 1
        dynamic = [d for d in dims if not isinstance(d, int)]
        if dynamic:
            raise ConversionError(
                f"TVM tuning needs static shapes, but input {spec.name!r} has dynamic "
                f"dimensions {dynamic} besides the batch axis; expected fixed sizes there"
            )
        shapes[spec.name] = dims
    return shapes, batch


def prepared_module(onnx: str, shapes: dict[str, list[int]], target: dict[str, Any]):
    """The Relax module legalised and fused into the functions MetaSchedule tunes.

    The tuner and the final compile both start here, so the database's workloads match.
    """
    import tvm
    from tvm import relax

    module = import_onnx(Path(onnx), shapes)
    with tvm.target.Target(target):
        return tvm.transform.Sequential(
            [
                relax.transform.DecomposeOpsForInference(),
                relax.transform.CanonicalizeBindings(),
                relax.get_pipeline("zero"),
            ]
        )(module)


def run_tuner(request: TuneRequest, work: Path, limit: float, threads: int) -> tuple[float, str]:
    """Run the tuning process until it ends or ``limit`` seconds pass; (wall seconds, why it
    stopped)."""
    (work / "request.json").write_text(json.dumps(asdict(request)))
    env = {
        **os.environ,
        "TVM_NUM_THREADS": str(threads),
    }  # the runner measures with the build's threads
    start = time.monotonic()
    with open(work / TUNER_LOG, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "shipyard.backends.tvm.tuner", str(work / "request.json")],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = process.wait(timeout=limit)
            stopped = (
                "finished"
                if code == 0
                else f"the tuner failed (exit {code}): {_last_line(work / TUNER_LOG)}"
            )
        except subprocess.TimeoutExpired:
            stopped = "time limit"
        finally:
            _kill_group(process)
    return time.monotonic() - start, stopped


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the tuner and its builder/runner workers (its whole process group), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _compile(request: TuneRequest, work: Path, path: Path) -> tuple[int, int, int]:
    """Compile with the database's schedules; (functions, functions tuned, records in the
    database)."""
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    database, records = clean_database(work)
    module = prepared_module(request.onnx, request.shapes, request.target)
    target = tvm.target.Target(request.target)
    with target, ms.database.JSONDatabase(*database, allow_missing=False):
        module = relax.transform.MetaScheduleApplyDatabase()(module)
    functions = [f for f in module.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
    tuned = sum(1 for f in functions if f.attrs is not None and "tirx.is_scheduled" in f.attrs)
    tvm.compile(module, target=target).export_library(str(path))
    return len(functions), tuned, records


def clean_database(work: Path) -> tuple[tuple[str, str], int]:
    """The tuner's JSON database without a line cut short by the kill; (workload, record paths),
    records."""
    workloads = _json_lines(work / "database_workload.json")
    records = [
        r
        for r in _json_lines(work / "database_tuning_record.json")
        if isinstance(r, list) and r and isinstance(r[0], int) and r[0] < len(workloads)
    ]
    clean = work / "clean"
    clean.mkdir(exist_ok=True)
    paths = (clean / "database_workload.json", clean / "database_tuning_record.json")
    for file, lines in zip(paths, (workloads, records)):
        file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return (str(paths[0]), str(paths[1])), len(records)


def _json_lines(path: Path) -> list[Any]:
    if not path.is_file():
        return []
    lines = []
    for text in path.read_text(errors="replace").splitlines():
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _cores() -> int:
    from shipyard import machine

    return machine.usable_cores()


def compile_for_build(
    workshop: Workshop, onnx: Artifact, tune_seconds: float = 0, threads: int = 1
) -> Artifact:
    """TVM's default schedules, or with ``tune_seconds`` those MetaSchedule finds in that time
    (noted)."""
    if not tune_seconds:
        from shipyard.backends.tvm.convert import compile_with_tvm

        return compile_with_tvm(onnx, workshop.new_path(".so"))
    from shipyard.quantize.cache import cache_key, cached

    # tuning takes minutes: a rebuild of the same model, recipe and CPU reuses the tuned library
    key = cache_key(
        workshop.source.content_hash,
        workshop.current_key,
        json.dumps(host_target(threads), sort_keys=True),
    )
    fresh: list[str] = []

    def tune(path: Path) -> Artifact:
        tuned = compile_tuned(onnx, path, tune_seconds, threads)
        fresh.append(tuned.report.note())
        return tuned.artifact

    artifact = cached(key, workshop.new_path(".so"), tune)
    note = (
        fresh[0]
        if fresh
        else tuning_report(artifact).note() + "; reused from the cache (an earlier build's tuning)"
    )
    workshop.notes.setdefault("tvm", []).append(note)
    return artifact
