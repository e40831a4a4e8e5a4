"""The tuning process: ``python -m shipyard.backends.tvm.tuner WORK/request.json``.

Runs MetaSchedule on the request's model until every task is done or at its trial bound; the
parent (``shipyard.backends.tvm.tune``) kills it at the time limit. Choices made for short limits:

* first a few random schedules (``COVER_TRIALS``) are measured for every task, then the
  evolutionary search refines them: with dozens of tasks (MobileNetV3 has ~50), a minute of
  search alone reaches only the heaviest few, and every task left with TVM's default loops is slow;
* tasks take turns (round-robin), heaviest (FLOPs × uses) first: the gradient scheduler commits
  nothing to the database until every task has had a round, so a kill before then loses all;
* a smaller evolutionary search than MetaSchedule's default (population 256, 2 generations instead
  of 512 and 4), about 3 s per round instead of 10 s here;
* builder worker processes live as long as the tuner (MetaSchedule's own builder starts new ones,
  each importing TVM for seconds, for every batch); the runner measures in its own worker process
  with the build's thread count (``TVM_NUM_THREADS``, set by the parent);
* only the x86 tensor intrinsics are registered: importing ``tvm.s_tir.tensor_intrin`` whole parses
  the CUDA, ROCm and Arm ones too, about 30 s here, and FP32 on x86 uses none of them.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import types
from pathlib import Path

from shipyard.backends.tvm.tune import TuneRequest, prepared_module

COVER_TRIALS = 4
"""Random schedules measured for every task before the evolutionary search."""
TRIALS_PER_ROUND = 16
BUILD_TIMEOUT = 10
"""Seconds one candidate may take to compile; some large explicit unrolls take LLVM minutes."""
SEARCH = {"population_size": 256, "genetic_num_iters": 2}


def main(argv: list[str]) -> int:
    request_file = Path(argv[0])
    request = TuneRequest(**json.loads(request_file.read_text()))
    _register_x86_intrinsics_only()
    return tune(request, request_file.parent)


def tune(request: TuneRequest, work: Path) -> int:
    import tvm
    from tvm.s_tir import meta_schedule as ms

    builder = _pool_builder(work / "builds", request.search_threads)  # its workers start meanwhile
    target = tvm.target.Target(request.target)
    tasks = _heaviest_first(
        ms.relax_integration.extract_tasks(
            prepared_module(request.onnx, request.shapes, request.target), target
        )
    )
    if not tasks:
        print("the model has no function to tune")
        return 0
    measure = ms.runner.EvaluatorConfig(number=3, repeat=1, min_repeat_ms=40)
    shared = dict(
        work_dir=str(work),
        task_scheduler="round-robin",
        builder=builder,
        runner=ms.runner.LocalRunner(evaluator_config=measure),
        cost_model=ms.CostModel.create("xgb", num_tuning_cores=request.search_threads),
    )
    passes = (
        (ms.search_strategy.ReplayTrace(), COVER_TRIALS, COVER_TRIALS),
        (
            ms.search_strategy.EvolutionarySearch(**SEARCH),
            request.trials_per_task,
            TRIALS_PER_ROUND,
        ),
    )
    for strategy, trials, per_round in passes:
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            tasks, str(work), strategy=strategy, num_threads=request.search_threads, seed=0
        )
        ms.tune.tune_tasks(
            tasks=contexts,
            task_weights=weights,
            max_trials_global=trials * len(contexts),
            max_trials_per_task=trials,
            num_trials_per_iter=per_round,
            **shared,
        )
    return 0


def _heaviest_first(tasks: list) -> list:
    from tvm.s_tir.analysis import estimate_tir_flops

    return sorted(
        tasks, key=lambda task: task.weight * estimate_tir_flops(task.dispatched[0]), reverse=True
    )


def _pool_builder(folder: Path, workers: int):
    """A builder whose worker processes live as long as the tuner (MetaSchedule's own starts new
    ones for
    every batch, each importing TVM for seconds), each build cut off after ``BUILD_TIMEOUT``."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

    folder.mkdir(exist_ok=True)
    pool = PopenPoolExecutor(max_workers=workers, timeout=BUILD_TIMEOUT)
    for _ in range(workers):
        pool.submit(_warm_up)  # the workers import TVM while the tuner prepares its tasks

    @derived_object
    class PoolBuilder(PyBuilder):
        def build(self, build_inputs):
            jobs = [(item.mod, item.target, str(folder)) for item in build_inputs]
            done = pool.map_with_error_catching(lambda job: _build_one(*job), jobs)
            return [
                BuilderResult(*result.value)
                if result.status == StatusKind.COMPLETE
                else BuilderResult(None, f"{result.status.name}: {result.value}")
                for result in done
            ]

    return PoolBuilder()


def _warm_up() -> None:
    import tvm.driver  # noqa: F401
    import tvm.s_tir.transform  # noqa: F401


def _build_one(module, target, folder: str) -> tuple[str | None, str | None]:
    """(library path, None) or (None, why the candidate schedule did not build); runs in a builder
    worker."""
    from tvm.driver import build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    try:
        library = build(
            RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(module), target=target
        )
        path = Path(tempfile.mkdtemp(dir=folder)) / "candidate.so"
        library.export_library(str(path))
        return str(path), None
    except Exception as exc:  # a candidate that fails to build is a tuning result, not a crash
        return None, f"{type(exc).__name__}: {exc}"


def _register_x86_intrinsics_only() -> None:
    import tvm.s_tir

    spec = importlib.util.find_spec("tvm.s_tir.tensor_intrin")
    if spec is None or spec.submodule_search_locations is None:
        return
    package = types.ModuleType(spec.name)
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules[spec.name] = (
        package  # stands in for the package's __init__, which imports every target's
    )
    tvm.s_tir.tensor_intrin = package
    importlib.import_module(f"{spec.name}.x86")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
