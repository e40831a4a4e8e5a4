"""Making a candidate's artifact from its recipe, one step at a time, each step cached.

A step is a function ``(workshop, previous_artifact, **options) -> Artifact`` registered in
``STEPS`` under the recipe step's name. Intermediate artifacts are shared: every candidate whose
recipe starts with ``export(format=onnx)`` reuses the one exported ONNX file.

    export(format=onnx|torchscript|torch-export)   from the source model
    optimize(optimizer=onnxslim|ort)               offline ONNX graph optimisation
    convert(format=…), quantize(method=…)          by the backend that owns the format or method
                                                   (``shipyard.backends.steps``)
    qat, split                                     registered by ``shipyard.optimize.qat`` /
    ``shipyard.split.plan``
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
from collections.abc import Callable
from pathlib import Path

from shipyard.dataset import Dataset
from shipyard.deadline import NO_DEADLINE, Deadline
from shipyard.errors import ConversionError
from shipyard.records import Artifact, Recipe, Step
from shipyard.sources.base import Source

StepFunction = Callable[..., Artifact]
STEPS: dict[str, StepFunction] = {}
STEP_MODULES: dict[str, str] = {
    "convert": "shipyard.backends.steps",
    "quantize": "shipyard.backends.steps",
    "qat": "shipyard.optimize.qat",
}
"""Step name → module that registers it with ``@step`` when imported (kept out of start-up)."""


def step(name: str) -> Callable[[StepFunction], StepFunction]:
    """Register a recipe step under ``name``."""

    def register(function: StepFunction) -> StepFunction:
        STEPS[name] = function
        return function

    return register


class Workshop:
    """Makes artifacts for one source in ``work_dir``, reusing every prefix already made."""

    def __init__(
        self,
        source: Source,
        work_dir: Path,
        calibration: Dataset | None = None,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self.source = source
        self.work_dir = work_dir
        self.calibration = calibration
        self.deadline = deadline
        """The build's time budget; long steps (NNCF accuracy control, QAT) stop or shorten by
        it."""
        self.notes: dict[str, list[str]] = {}
        self._made: dict[str, Artifact] = {}
        self._current_key = ""
        work_dir.mkdir(parents=True, exist_ok=True)

    def make(self, recipe: Recipe) -> Artifact:
        artifact: Artifact | None = None
        applied = self.source.steps  # model-level steps the source module already carries
        done = len(applied) if recipe.steps[: len(applied)] == applied else 0
        for count in range(done + 1, len(recipe.steps) + 1):
            prefix = Recipe(recipe.steps[:count])
            key = str(prefix)
            if key not in self._made:
                self._made[key] = self._run(prefix.steps[-1], artifact, key)
            artifact = self._made[key]
        if artifact is None:
            raise ConversionError("an empty recipe makes no artifact")
        return artifact

    def calibration_data(self) -> Dataset:
        """The calibration set, for steps that cannot run without one (noted in the build's
        notes)."""
        data = self.calibration
        if data is None or len(data) == 0:
            raise ConversionError("static INT8 quantisation needs calibration data; pass --data")
        self.notes["calibration"] = [n for n in data.notes if n.startswith("calibration:")]
        return data

    @property
    def current_key(self) -> str:
        """The recipe prefix of the step being run, as text (part of cache keys)."""
        return self._current_key

    def new_path(self, suffix: str) -> Path:
        """A fresh path in the work dir for the step being run, named after its recipe prefix."""
        digest = hashlib.sha256(
            f"{self.source.content_hash}:{self._current_key}".encode()
        ).hexdigest()[:12]
        folder = self.work_dir / digest
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return folder / f"model{suffix}"

    def _run(self, recipe_step: Step, previous: Artifact | None, key: str) -> Artifact:
        if recipe_step.name not in STEPS and recipe_step.name in STEP_MODULES:
            importlib.import_module(STEP_MODULES[recipe_step.name])
        if recipe_step.name not in STEPS:
            raise ConversionError(
                f"unknown recipe step {recipe_step.name!r}; known: {', '.join(sorted(STEPS))}"
            )
        self._current_key = key
        return STEPS[recipe_step.name](self, previous, **recipe_step.options)


@step("export")
def _export(workshop: Workshop, previous: Artifact | None, format: str, **options) -> Artifact:
    source = workshop.source
    if format == "onnx":
        if source.kind == "onnx":
            return Artifact(source.path, "onnx", source.signature)
        from shipyard.convert.onnx_export import export_onnx

        exported = export_onnx(source, workshop.new_path(".onnx"))
        workshop.notes.setdefault("export", []).append(
            f"ONNX via the {exported.exporter} exporter, opset {exported.opset}"
        )
        return exported.artifact
    if format == "torchscript":
        from shipyard.convert.torchscript import export_torchscript

        return export_torchscript(source, workshop.new_path(".ts"))
    if format == "torch-export":
        from shipyard.convert.torch_program import export_program

        return export_program(source, workshop.new_path(".pt2"))
    raise ConversionError(
        f"unknown export format {format!r}; expected onnx, torchscript or torch-export"
    )


@step("optimize")
def _optimize(workshop: Workshop, previous: Artifact | None, optimizer: str) -> Artifact:
    from shipyard.convert.onnx_optimize import optimize_onnx

    return optimize_onnx(_need(previous, "onnx"), workshop.new_path(".onnx"), optimizer)


def _need(artifact: Artifact | None, format: str) -> Artifact:
    if artifact is None or artifact.format != format:
        got = artifact.format if artifact else "nothing"
        raise ConversionError(f"this step needs a {format} artifact; the recipe gave it {got}")
    return artifact
