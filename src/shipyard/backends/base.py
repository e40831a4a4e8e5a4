"""The backend plug-in protocol.

A backend is one folder ``shipyard/backends/<name>/`` whose ``__init__.py`` exposes a ``BACKEND``
object (a ``Runtime``) with:

    name: str                      the name users type (``--backends onnxruntime``)
    formats: tuple[str, ...]       the artifact formats it loads
    available() -> (bool, reason)  cheap; never raises when the runtime is missing
    load(artifact, threads, **runtime) -> Session
                                   ``runtime``: a candidate's options (``runtime_options`` lists
                                   those the backend takes, e.g. OpenVINO's ``inference_precision``)

and the capabilities the rest of the road asks it about instead of branching on its name:
which candidates it plans for a precision (``plans``), which ``convert`` targets and ``quantize``
methods it owns (``converts`` / ``quantizers``, done by ``convert`` / ``quantize``), whether it runs
quantisation-aware-training output (``qat_recipe``), its own accuracy-aware
attempt (``own_rescue``), a tuned twin of a candidate (``tuned``), and how its layers are compared
one
by one (``layer_views``). Everything heavy is imported inside the folder's other modules, only when
used.

Example::

    >>> from shipyard.backends import get_backend
    >>> ort = get_backend("onnxruntime")
    >>> ok, why = ort.available()
    >>> session = ort.load(artifact, threads=2)          # doctest: +SKIP
    >>> session.run({"image": x})["logits"].shape        # doctest: +SKIP

``Session.run`` validates the feed against the signature, then calls ``_run_impl``; a backend
overrides only ``_run_impl``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shipyard.errors import BackendUnavailable, ConversionError, DataError, UsageError
from shipyard.records import Artifact, Candidate, Recipe, Signature, numpy_dtype

if TYPE_CHECKING:
    from shipyard.sources.base import Source
    from shipyard.workshop import Workshop


class Session:
    """A loaded model ready to run. Subclasses implement ``_run_impl``."""

    def __init__(self, signature: Signature) -> None:
        self.signature = signature

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on a feed of named numpy arrays; returns named numpy arrays."""
        return self._run_impl(check_feed(self.signature, inputs))

    def _run_impl(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime's resources; the default does nothing."""


ONNX = Recipe().then("export", format="onnx")
"""The recipe that every ONNX-based candidate starts from."""


def fp32_onnx_recipe(recipe: Recipe) -> Recipe:
    """The recipe's steps up to the ONNX model it converts or quantises."""
    steps = []
    for step in recipe.steps:
        if step.name in ("convert", "quantize"):
            break
        steps.append(step)
    return Recipe(tuple(steps))


class Backend(Protocol):
    name: str
    formats: tuple[str, ...]

    def available(self) -> tuple[bool, str]: ...

    def load(self, artifact: Artifact, threads: int, spin: bool = True) -> Session: ...


class Runtime:
    """The base of every backend: no capabilities beyond loading, until a backend declares them."""

    name: str = ""
    formats: tuple[str, ...] = ()
    package: str = ""
    """What ``pip install`` brings the runtime (``shipyard doctor`` shows it)."""
    module: str = ""
    """The Python module the runtime imports as; ``available()`` checks it is installed."""
    without_native_precision: str = "emulated, usually slower than FP32"
    """What the runtime does with a BF16/FP16 package on a CPU without native support for it."""
    converts: dict[str, str] = {}
    """``convert(format=…)`` targets this backend makes → the artifact format each starts from."""
    quantizers: dict[str, str] = {}
    """``quantize(method=…)`` methods this backend owns → the artifact format each starts from."""
    runtime_options: tuple[str, ...] = ()
    """Keyword options ``load`` takes from a candidate's ``runtime`` (recorded in the package)."""
    spins: bool = False
    """Its idle worker threads spin-wait for the next run, and ``load(spin=False)`` stops that."""
    device: str = "cpu"
    """Where it runs the model: ``cpu``, or ``gpu`` (the CPU's cores are then not what it uses)."""
    not_planned: dict[str, str] = {}
    """Precision → why this backend plans no candidate for it (the build says so in a note)."""

    def available(self) -> tuple[bool, str]:
        """Cheap, never raises: whether the runtime's module is installed (backends may check
        more)."""
        return require_module(self.module, self.package)

    def load(self, artifact: Artifact, threads: int, spin: bool = True, **runtime: Any) -> Session:
        """A session on ``artifact``, run as ``runtime`` says; says how to install the runtime when
        it is missing.

        ``spin=False`` keeps idle runtime threads from spin-waiting between runs, for a process
        whose other threads need the same cores (a server's front end); it matters only for
        backends that spin (:attr:`spins`) and sessions of more than one thread.
        """
        ensure_available(self)
        unknown = sorted(set(runtime) - set(self.runtime_options))
        if unknown:
            raise UsageError(
                f"backend {self.name!r} takes no runtime option {', '.join(unknown)}; it takes "
                f"{', '.join(self.runtime_options) or 'none'} (was the package written by a newer "
                "Shipyard?)"
            )
        if self.spins and not spin:
            runtime = {**runtime, "spin": False}
        return self._load_impl(artifact, threads, **runtime)

    def _load_impl(self, artifact: Artifact, threads: int) -> Session:
        raise NotImplementedError

    def plans(self, source: Source, precision: str) -> list[Candidate]:
        """The candidates this backend tries for ``source`` at ``precision`` (none by default)."""
        return []

    def tuned(self, plan: Candidate, tune_seconds: float, threads: int) -> Candidate | None:
        """A tuned twin of ``plan`` (``--tune-seconds``), for backends that tune; None for the
        rest."""
        return None

    def convert(
        self, workshop: Workshop, previous: Artifact, format: str, **options: Any
    ) -> Artifact:
        raise ConversionError(f"backend {self.name!r} converts to nothing")

    def quantize(
        self,
        workshop: Workshop,
        previous: Artifact,
        path: Path,
        method: str,
        options: dict[str, Any],
    ) -> Artifact:
        raise ConversionError(f"backend {self.name!r} has no quantisation method {method!r}")

    def qat_recipe(self, recipe: Recipe) -> Recipe | None:
        """The recipe that runs ``recipe``'s Q/DQ ONNX output here, or None when it cannot."""
        return None

    def own_rescue(
        self, candidate: Candidate, calibration: Any, max_drop: float
    ) -> Candidate | None:
        """The backend's own accuracy-aware variant of a failed INT8 candidate, tried before the
        layer-wise search (OpenVINO: NNCF accuracy control); None when it has none."""
        return None

    def layer_views(
        self, candidate: Candidate, workshop: Workshop, feed: dict[str, np.ndarray]
    ) -> LayerViews:
        """The candidate's graph with each tensor's values from its FP32 prefix and from itself."""
        raise ConversionError(f"backend {self.name!r} cannot compare its layers one by one")

    @property
    def compares_layers(self) -> bool:
        return type(self).layer_views is not Runtime.layer_views


@dataclass
class LayerViews:
    """What the layer-by-layer comparison needs from a backend: the graph and both sets of
    tensors."""

    graph: Any
    reference: dict[str, np.ndarray]
    quantized: dict[str, np.ndarray]


def check_feed(signature: Signature, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check names, ranks, fixed dims and dtypes of a feed; cast numeric arrays when safe."""
    expected = signature.input_names
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    if missing or unknown:
        raise DataError(
            f"inputs {sorted(inputs)} do not match the model: expected {expected}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else "")
        )
    return {spec.name: _check_tensor(spec, inputs[spec.name]) for spec in signature.inputs}


def _check_tensor(spec, value: np.ndarray) -> np.ndarray:
    array = np.asarray(value)
    if len(array.shape) != len(spec.shape):
        raise DataError(
            f"input {spec.name!r} has shape {list(array.shape)}; expected "
            f"{len(spec.shape)} dimensions like {spec.kserve_shape} (-1 = any size)"
        )
    for axis, (got, want) in enumerate(zip(array.shape, spec.shape)):
        if isinstance(want, int) and got != want:
            raise DataError(
                f"input {spec.name!r} has size {got} on axis {axis}; expected {want} "
                f"(shape {spec.kserve_shape})"
            )
    want_dtype = numpy_dtype(spec.dtype)
    if array.dtype == want_dtype:
        return array
    if spec.dtype == "bytes" or array.dtype.kind not in "biuf":
        raise DataError(f"input {spec.name!r} has dtype {array.dtype}; expected {spec.dtype}")
    if array.dtype.kind == "f" and want_dtype.kind in "iu":
        raise DataError(
            f"input {spec.name!r} has float dtype {array.dtype}; expected integers ({spec.dtype})"
        )
    return array.astype(want_dtype)


def require_module(module: str, pip_name: str) -> tuple[bool, str]:
    """(True, "") when ``module`` can be imported, else (False, how to install it)."""
    if importlib.util.find_spec(module) is None:
        return False, f"not available: pip install {pip_name}"
    return True, ""


def ensure_available(backend: Backend) -> None:
    ok, why = backend.available()
    if not ok:
        raise BackendUnavailable(f"backend {backend.name!r} is {why}")
