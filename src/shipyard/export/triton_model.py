"""The ``model.py`` of a Triton Python-backend model that runs a Shipyard package.

``shipyard export triton`` copies this file verbatim into ``REPO/<model>/<version>/model.py``:
nothing of the package is written into code. What the model needs — where the package is, how
many threads — it reads at run time from ``shipyard.json`` beside it, and the package itself is
loaded by ``shipyard.load``, which validates its manifest.

Triton hands ``execute`` every request of a dynamic batch; they are joined along the batch axis
and run as one call, and split back per request (:func:`shipyard.batching.run_batch`, as
``shipyard serve`` runs a batch). When the joined call fails, or its outputs have not one row per
sample, each request is run alone, so only a bad request gets an error and no request gets
another's rows. A package whose batch's rows are not its samples' own answers (the two-sample
proof of :mod:`shipyard.verify.batchaxis`, run at ``initialize``) runs request by request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.batching import run_batch, run_one

SETTINGS = "shipyard.json"


class TritonPythonModel:
    """Triton's Python-backend interface: ``initialize``, ``execute``, ``finalize``."""

    def initialize(self, args: dict[str, str]) -> None:
        import shipyard

        here = Path(args["model_repository"]).resolve() / args["model_version"]
        settings = json.loads((here / SETTINGS).read_text())
        package = (here / str(settings["package"])).resolve()
        if here not in package.parents:
            raise ValueError(
                f"{SETTINGS} names package {settings['package']!r}, outside {here}; expected a "
                f"folder inside the model version"
            )
        self.predictor = shipyard.load(  # no spin-waiting threads: Triton's own need the cores
            package,
            threads=int(settings["threads"]),
            trust_code=settings.get("trust_code") is True,
            spin=False,
        )
        config = json.loads(args["model_config"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]
        self.batched = int(config.get("max_batch_size", 0)) > 1 and self._proven()

    def _proven(self) -> bool:
        from shipyard.verify.batchaxis import prove_batch_axis

        return prove_batch_axis(self.predictor.run, self.predictor.signature).batched

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        feeds = [
            {name: pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs}
            for r in requests
        ]
        if self.batched:
            sizes = [len(feed[self.inputs[0]]) for feed in feeds]
            results = run_batch(self.predictor.run, feeds, sizes).results
        else:
            results = [run_one(self.predictor.run, feed) for feed in feeds]
        return [self._response(result, pb_utils) for result in results]

    def _response(self, result: dict[str, np.ndarray] | Exception, pb_utils: Any) -> Any:
        if isinstance(result, Exception):
            return pb_utils.InferenceResponse(error=_error(result, pb_utils))
        tensors = [pb_utils.Tensor(name, _triton_array(result[name])) for name in self.outputs]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def finalize(self) -> None:
        self.predictor.close()


def _triton_array(array: np.ndarray) -> np.ndarray:
    """Strings as the bytes objects Triton's BYTES tensors hold; other arrays contiguous."""
    if array.dtype.kind in "OUS":
        return np.array(
            [v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel()], dtype=object
        ).reshape(array.shape)
    return np.ascontiguousarray(array)


def _error(exc: Exception, pb_utils: Any) -> Any:
    """Bad input (Shipyard's ``DataError``) as Triton's INVALID_ARG; anything else as INTERNAL."""
    from shipyard.errors import DataError

    message = f"{type(exc).__name__}: {exc}"
    codes = (
        getattr(pb_utils.TritonError, "INVALID_ARG", None),
        getattr(pb_utils.TritonError, "INTERNAL", None),
    )
    code = codes[0] if isinstance(exc, DataError) else codes[1]
    return pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
