"""The model repository: packages → served models by manifest ``name`` and ``version``.

Each served model owns its predictors (one per instance) and its batcher, and checks requests
against the package's public signature before they reach the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.errors import DataError, UsageError
from shipyard.records import Signature, TensorSpec
from shipyard.serve.batcher import LOGGER, BatchConfig, Batcher
from shipyard.serve.errors import BadRequest, ModelNotFound
from shipyard.serve.layout import LayoutChoice, measured_instances
from shipyard.serve.metrics import Metrics
from shipyard.verify.batchaxis import BatchProof, batching_proof


@dataclass
class ServeOptions:
    """What every served model shares: batching, limits, threads per instance."""

    batch: BatchConfig = field(default_factory=BatchConfig)
    max_request_bytes: int = 64 * 1024 * 1024
    threads: int | None = None
    trust_code: bool = False
    """Consent to serve packages that carry code (``--trust-package``)."""
    max_connections: int = 256
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    max_inflight_bytes: int = 256 * 1024 * 1024
    """Request bytes held at once across the server (bodies, and their JSON ×8); beyond it, 503."""


class ModelFace:
    """What clients see of a model: its name, version and signature, and the checks of a request.

    The HTTP/gRPC front ends and the Ray Serve deployment check requests through this.
    """

    def __init__(
        self, name: str, version: str, backend: str, signature: Signature, max_batch: int
    ) -> None:
        self.name, self.version, self.backend, self.signature = name, version, backend, signature
        self.batched = all(spec.batched for spec in signature.inputs)
        self.max_batch = max_batch if self.batched else 0
        self._inputs = {s.name: s for s in signature.inputs}
        self._outputs = {s.name: s for s in signature.outputs}

    def input_spec(self, name: Any) -> TensorSpec:
        if name not in self._inputs:
            raise BadRequest(
                f"input {name!r} is not an input of model {self.name!r}; expected "
                f"{self.signature.input_names}"
            )
        return self._inputs[name]

    def check_input_names(self, names: list[Any]) -> None:
        seen = set()
        for name in names:
            self.input_spec(name)
            if name in seen:
                raise BadRequest(
                    f"input {name!r} appears twice; expected each of "
                    f"{self.signature.input_names} once"
                )
            seen.add(name)
        missing = [n for n in self.signature.input_names if n not in seen]
        if missing:
            raise BadRequest(
                f"inputs {missing} are missing; expected model {self.name!r}'s inputs "
                f"{self.signature.input_names}"
            )

    def check_output_names(self, names: list[Any]) -> None:
        unknown = [n for n in names if n not in self._outputs]
        if unknown:
            raise BadRequest(
                f"outputs {unknown} are not outputs of model {self.name!r}; expected some of "
                f"{self.signature.output_names}"
            )
        if len(set(names)) != len(names):
            raise BadRequest(f"outputs {names} name an output twice; expected each at most once")

    def output_spec(self, name: str) -> TensorSpec:
        return self._outputs[name]

    def check_batch_dim(self, spec: TensorSpec, shape: tuple[int, ...]) -> None:
        """Refuse more samples than the model takes before any element is decoded."""
        if self.batched and shape and shape[0] > self.max_batch:
            raise BadRequest(
                f"batch size {shape[0]} of input {spec.name!r} is outside what model {self.name!r} "
                f"accepts; expected 1 to {self.max_batch} (max_batch_size)"
            )

    def check_request(self, inputs: dict[str, np.ndarray]) -> None:
        """Checks of a decoded request that need no model run (batch sizes; content in
        ServedModel)."""
        self.batch_size(inputs)

    def batch_size(self, inputs: dict[str, np.ndarray]) -> int:
        if not self.batched:
            return 1
        arrays = iter(inputs.values())
        size = next(arrays).shape[0] if inputs else 0
        if any(a.shape[0] != size for a in arrays):
            sizes = {name: a.shape[0] for name, a in inputs.items()}
            raise BadRequest(
                f"inputs have different batch sizes {sizes}; expected one batch size for all"
            )
        if not 1 <= size <= self.max_batch:
            raise BadRequest(
                f"batch size {size} is outside what model {self.name!r} accepts; expected "
                f"1 to {self.max_batch} (max_batch_size)"
            )
        return size

    @property
    def platform(self) -> str:
        return f"shipyard_{self.backend}"

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": [self.version],
            "platform": self.platform,
            "inputs": [_tensor_meta(s) for s in self.signature.inputs],
            "outputs": [_tensor_meta(s) for s in self.signature.outputs],
        }


class ServedModel(ModelFace):
    """One package behind a batcher."""

    def __init__(
        self,
        predictors: list[Any],
        options: ServeOptions,
        metrics: Metrics,
        layout: LayoutChoice | None = None,
    ) -> None:
        first = predictors[0]
        super().__init__(
            first.name,
            first.version,
            first.backend,
            first.signature,
            min(options.batch.max_batch_size, first.max_batch_size),
        )
        self.predictors = predictors
        self.layout = layout
        """How ``--instances auto`` measured the instance count and threads, when it chose them."""
        self.threads: int = getattr(first, "threads", 1)
        self.proof = self._prove(first)
        config = BatchConfig(**{**options.batch.__dict__, "max_batch_size": max(self.max_batch, 1)})
        self.batcher = Batcher(
            self.name,
            [p.run for p in predictors],
            config,
            metrics.for_model(self.name),
            self.batched and self.proof.batched,
        )

    def _prove(self, predictor: Any) -> BatchProof:
        proof = batching_proof(predictor, self.batched, self.max_batch)
        if not proof.batched and self.batched and self.max_batch >= 2:
            LOGGER.warning(
                "model %r is served request by request, not batched: %s", self.name, proof.reason
            )
        return proof

    def check_request(self, inputs: dict[str, np.ndarray]) -> None:
        """Batch sizes, texts and image headers checked before queueing: a bad request fails
        alone."""
        super().check_request(inputs)
        check = getattr(self.predictors[0], "check", None)
        if check is not None:
            try:
                check(inputs)
            except DataError as exc:
                raise BadRequest(str(exc)) from exc

    async def infer(
        self, inputs: dict[str, np.ndarray], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """Queue checked inputs for a batch; returns every output of the package.

        ``timeout_s`` (the client's own timeout) can only shorten the server's per-request timeout.
        """
        limit = self.batcher.config.timeout_s
        timeout = limit if timeout_s is None or timeout_s <= 0 else min(limit, timeout_s)
        return await self.batcher.submit(inputs, self.batch_size(inputs), timeout)

    def close(self) -> None:
        for predictor in self.predictors:
            predictor.close()


def load_model(folder: str | Path, options: ServeOptions, metrics: Metrics) -> ServedModel:
    """One package with ``options.batch.instances`` instances, or the measured fastest layout."""
    from shipyard.predictor import load

    def open_instance(threads: int | None) -> Any:
        return load(folder, threads, options.trust_code, spin=False)

    if options.batch.instances is not None:
        predictors = [open_instance(options.threads) for _ in range(options.batch.instances)]
        return ServedModel(predictors, options, metrics)
    choice, predictors = measured_instances(
        Path(folder), open_instance, options.threads, options.batch.max_batch_size
    )
    return ServedModel(predictors, options, metrics, choice)


def _tensor_meta(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "datatype": spec.datatype, "shape": spec.kserve_shape}


class Repository:
    """Every served model by name and version; the highest version answers when none is asked."""

    def __init__(self, models: list[ServedModel]) -> None:
        self.models: dict[str, dict[str, ServedModel]] = {}
        for model in models:
            versions = self.models.setdefault(model.name, {})
            if model.version in versions:
                raise UsageError(
                    f"two packages are model {model.name!r} version {model.version}; "
                    f"expected one package per name and version"
                )
            versions[model.version] = model
        self._latest = {
            name: versions[max(versions, key=_version_key)]
            for name, versions in self.models.items()
        }

    @classmethod
    def load(cls, folders: list[str | Path], options: ServeOptions, metrics: Metrics) -> Repository:
        """Load every package in ``folders`` (see :func:`load_model`)."""
        return cls([load_model(folder, options, metrics) for folder in folders])

    def get(self, name: str, version: str | None = None) -> ServedModel:
        if not version and name in self._latest:
            return self._latest[name]
        if name not in self.models:
            raise ModelNotFound(
                f"model {name!r} is not served here; expected one of {sorted(self.models)}"
            )
        versions = self.models[name]
        if version not in versions:
            raise ModelNotFound(
                f"model {name!r} has no version {version!r}; expected one of "
                f"{sorted(versions, key=_version_key)}"
            )
        return versions[version]

    def all(self) -> list[ServedModel]:
        return [m for versions in self.models.values() for m in versions.values()]

    def start(self) -> None:
        for model in self.all():
            model.batcher.start()

    async def stop(self) -> None:
        for model in self.all():
            await model.batcher.stop()
            model.close()


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
