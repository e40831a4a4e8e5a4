"""The records that travel down the road: tensor specs, signatures, artifacts, candidates.

Every record is a plain dataclass that turns into JSON (``to_json``) and back (``from_json``),
because each of them ends up in a package's ``manifest.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Dim = int | str
"""A dimension: a fixed size, or a symbolic name such as ``"batch"`` for a dynamic axis."""

_KSERVE_BY_DTYPE = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "bytes": "BYTES",
}
_DTYPE_BY_KSERVE = {v: k for k, v in _KSERVE_BY_DTYPE.items()}


def kserve_datatype(dtype: str) -> str:
    """The KServe v2 datatype name (``FP32``, ``INT64``, ``BYTES``…) of a numpy dtype name."""
    if dtype not in _KSERVE_BY_DTYPE:
        raise ValueError(
            f"dtype {dtype!r} has no KServe datatype; expected one of {sorted(_KSERVE_BY_DTYPE)}"
        )
    return _KSERVE_BY_DTYPE[dtype]


def dtype_of_kserve(datatype: str) -> str:
    """The numpy dtype name of a KServe v2 datatype name."""
    if datatype not in _DTYPE_BY_KSERVE:
        raise ValueError(
            f"datatype {datatype!r} is not a KServe datatype; expected one of "
            f"{sorted(_DTYPE_BY_KSERVE)}"
        )
    return _DTYPE_BY_KSERVE[datatype]


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype for a spec dtype name; ``bytes`` tensors are object arrays of ``bytes``."""
    return np.dtype(object) if dtype == "bytes" else np.dtype(dtype)


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output: dtype name (numpy spelling) and shape with symbolic dims."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    @property
    def datatype(self) -> str:
        return kserve_datatype(self.dtype)

    @property
    def kserve_shape(self) -> list[int]:
        """The shape with every symbolic dimension written as -1."""
        return [d if isinstance(d, int) else -1 for d in self.shape]

    @property
    def batched(self) -> bool:
        return bool(self.shape) and not isinstance(self.shape[0], int)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "datatype": self.datatype,
            "dtype": self.dtype,
            "shape": self.kserve_shape,
            "dims": list(self.shape),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TensorSpec:
        dtype = data.get("dtype") or dtype_of_kserve(data["datatype"])
        dims = data.get("dims") or [d if d >= 0 else f"dim{i}" for i, d in enumerate(data["shape"])]
        return cls(data["name"], dtype, tuple(dims))


@dataclass(frozen=True)
class Signature:
    """The inputs and outputs of a model, in order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self.outputs]

    @property
    def batched(self) -> bool:
        """Every input and output has a batch axis first (a batch of requests can be one call)."""
        return all(spec.batched for spec in self.inputs + self.outputs)

    def to_json(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signature:
        return cls(
            tuple(TensorSpec.from_json(s) for s in data["inputs"]),
            tuple(TensorSpec.from_json(s) for s in data["outputs"]),
        )


@dataclass(frozen=True)
class Artifact:
    """A model in one format on disk. ``path`` is a file, or a folder for multi-file formats."""

    path: Path
    format: str
    signature: Signature

    @property
    def files(self) -> list[Path]:
        """Every file that belongs to the artifact (weights beside an ONNX graph, an IR's .bin)."""
        if self.path.is_dir():
            return sorted(p for p in self.path.rglob("*") if p.is_file())
        if self.format in ("openvino", "ncnn"):
            return [self.path, self.path.with_suffix(".bin")]
        if (
            self.format == "tvm" and self.path.with_suffix(".json").is_file()
        ):  # a tuned library's batch-1 note
            return [self.path, self.path.with_suffix(".json")]
        if self.format == "onnx":
            import onnx

            model = onnx.load(str(self.path), load_external_data=False)
            return [self.path] + [self.path.parent / name for name in external_data_files(model)]
        return [self.path]

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files)


def external_data_files(model) -> list[str]:
    """The relative locations of every external-data file an ONNX model refers to."""
    locations = set()
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                locations.add(entry.value)
    return sorted(locations)


@dataclass(frozen=True)
class Step:
    """One step of a recipe, e.g. ``Step("export", {"format": "onnx", "opset": 17})``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.options:
            return self.name
        args = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.name}({args})"


@dataclass(frozen=True)
class Recipe:
    """The ordered steps that turn the source into an artifact; enough to rebuild it."""

    steps: tuple[Step, ...] = ()

    def then(self, name: str, **options: Any) -> Recipe:
        return Recipe(self.steps + (Step(name, dict(options)),))

    def __str__(self) -> str:
        return " → ".join(str(s) for s in self.steps) or "source"

    def to_json(self) -> list[dict[str, Any]]:
        return [{"step": s.name, **s.options} for s in self.steps]


@dataclass
class OutputError:
    """How far one output of a candidate is from the source model's output."""

    name: str
    max_abs: float
    mean_abs: float
    max_rel: float
    cosine_mean: float
    cosine_min: float
    top1_agreement: float | None = None


@dataclass
class Verification:
    """A candidate's quality against the source model on the evaluation set."""

    metric: str
    value: float
    reference_value: float
    drop: float
    passed: bool
    samples: int
    outputs: list[OutputError] = field(default_factory=list)
    reason: str = ""
    cosine: float | None = None
    """Mean cosine similarity of the first output with the source's (beside whatever ``metric``
    is)."""
    top5_agreement: float | None = None
    """Classifiers: % of samples whose source top-1 class is in the candidate's top 5."""
    confident_agreement: float | None = None
    """Classifiers: top-1 agreement on the samples the source is confident about
    (``confident_samples``)."""
    confident_samples: int = 0


@dataclass
class Timing:
    """A candidate's measured speed and cost. Latencies in milliseconds; ``None`` = not measured."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    calls: int
    """Timed batch-1 calls (warm-ups and the calls dropped at the start of each block excluded)."""
    throughput: float = 0.0
    throughput_batch: int = 0
    load_ms: float | None = None
    """Loading the artifact into its runtime (making the artifact is ``build_ms``)."""
    peak_rss_mb: float | None = None
    size_mb: float | None = None
    build_ms: float | None = None
    """Making the artifact: export, conversion, quantisation (a cached artifact takes ~0)."""
    warmup_calls: int = 0
    blocks: int = 0
    dropped_per_block: int = 0
    threads: int = 0
    throughput_calls: int = 0
    batches_apart: bool | None = None
    """Whether a batch's outputs equal its samples run alone (``verify.batchaxis``; checked for
    ``--optimize-for throughput``): a server runs a model that fails request by request, so what
    it serves is its batch-1 rate. None: not checked."""

    @property
    def served_throughput(self) -> float:
        """Samples/s a batching server gets from this candidate: batched throughput if its
        batches keep samples apart, else one sample per call."""
        if self.batches_apart is False and self.p50_ms > 0:
            return 1000.0 / self.p50_ms
        return self.throughput


@dataclass
class LayerCost:
    """What quantising one layer costs, as the accuracy-aware search measured it."""

    layer: str
    """The node or layer name in the quantised model."""
    op_type: str
    error: float
    """Relative error the layer adds to its output beyond its inputs' (layer-by-layer)."""
    cosine: float
    """Cosine similarity of the layer's output with FP32's."""
    module: str = ""
    """The PyTorch module path the layer came from, where known (e.g. ``features.3.conv.0.0``)."""
    metric_cost: float | None = None
    """Points of the build's metric lost by quantising this layer alone, where measured."""


@dataclass
class Candidate:
    """One variant the build tried: how it was made, where it runs and how it did."""

    backend: str
    precision: str
    recipe: Recipe
    artifact: Artifact | None = None
    verification: Verification | None = None
    timing: Timing | None = None
    error: str = ""
    name: str = ""
    """A label that replaces the derived key (the baseline's)."""
    layer_costs: list[LayerCost] = field(default_factory=list)
    """INT8 only: per-layer sensitivity, worst first, when the accuracy-aware search measured it."""
    layer_modules: dict[str, str] = field(default_factory=dict)
    """INT8 only: ONNX node name → the module path the user knows it by, for every node the
    search could name (the layers a rescue keeps in float include some it did not rank)."""
    derived_from: str = ""
    """The key of the candidate this one was made from (a mixed-precision attempt's INT8 one)."""
    runtime: dict[str, Any] = field(default_factory=dict)
    """Options the backend loads the artifact with, e.g. OpenVINO's ``inference_precision``; the
    package records them so ``shipyard.load`` runs the artifact as it was verified."""

    @property
    def key(self) -> str:
        """A short unique label, e.g. ``onnxruntime/fp32+onnxslim``."""
        if self.name:
            return self.name
        steps = self.recipe.steps
        made = next(
            (i for i, s in enumerate(steps) if s.name in ("export", "qat")), 0
        )  # after model-level steps
        extras = [_step_label(s) for s in steps[made:] if s.name not in ("convert", "export")]
        return f"{self.backend}/{self.precision}" + "".join(f"+{e}" for e in extras)

    @property
    def passed(self) -> bool:
        return not self.error and self.verification is not None and self.verification.passed

    def to_json(self) -> dict[str, Any]:
        verification = self.verification
        return {
            "backend": self.backend,
            "precision": self.precision,
            "recipe": self.recipe.to_json(),
            "recipe_text": str(self.recipe),
            "runtime": self.runtime,
            "passed": self.passed,
            "metric": verification.metric if verification else None,
            "value": verification.value if verification else None,
            "drop": verification.drop if verification else None,
            "latency_ms": self.timing.p50_ms if self.timing else None,
            "verification": asdict(verification) if verification else None,
            "timing": asdict(self.timing) if self.timing else None,
            "size_mb": self.timing.size_mb if self.timing else None,
            "why_failed": self.why_failed,
            "layer_costs": [asdict(c) for c in self.layer_costs],
            "layer_modules": self.layer_modules,
            "derived_from": self.derived_from or None,
        }

    @property
    def why_failed(self) -> str:
        if self.error:
            return self.error
        if self.verification and not self.verification.passed:
            return self.verification.reason
        return ""


def _step_label(step: Step) -> str:
    values = [str(v) for v in step.options.values()]
    return "-".join(values) if step.name == "optimize" else str(step)
