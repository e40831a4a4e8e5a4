"""Proof, at load time, that a model's outputs carry the batch axis, so a batch can be split per
request.

A signature says ``batch`` on an output's first axis, but a model may still flatten (``Reshape(x,
[-1])``) or gather across samples (an NMS output of ``[n, 3]``): slicing such an output hands one
client's data to another. So before a model is batched it runs two *different* samples together
and one by one; it is batched only if every output has exactly one row per sample and the rows of
the pair equal the single runs. Anything else — or a probe that fails — means request by request.

Example::

    >>> proof = prove_batch_axis(predictor.run, predictor.signature)   # doctest: +SKIP
    >>> proof.batched, proof.reason                                     # doctest: +SKIP
    (False, "output 'y' has 12 rows for 2 samples")
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.records import Signature, TensorSpec, numpy_dtype

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
FREE_DIM = 4  # the size a probe gives a dynamic non-batch axis


@dataclass(frozen=True)
class BatchProof:
    batched: bool
    reason: str


def prove_batch_axis(run: Runner, signature: Signature) -> BatchProof:
    """Whether ``run`` keeps samples apart on the first axis of every output (see the module
    text)."""
    if not all(spec.batched for spec in signature.inputs):
        return BatchProof(False, "an input has no batch axis")
    try:
        samples = [probe_sample(signature, index) for index in (0, 1)]
        singles = [run(sample) for sample in samples]
        pair = run({name: np.concatenate([s[name] for s in samples]) for name in samples[0]})
    except Exception as exc:  # noqa: BLE001 - a model that cannot be probed is simply not batched
        return BatchProof(
            False, f"the two-sample probe failed ({type(exc).__name__}: {str(exc)[:200]})"
        )
    for name, joined in pair.items():
        reason = _rows_differ(name, np.asarray(joined), [np.asarray(s[name]) for s in singles])
        if reason:
            return BatchProof(False, reason)
    return BatchProof(True, "every output has one row per sample, equal to the sample run alone")


def batching_proof(predictor: Any, batched: bool, max_batch: int) -> BatchProof:
    """Batch only a model whose outputs are proven to keep samples apart (two-sample probe)."""
    if not batched or max_batch < 2:
        return BatchProof(False, "batching is off for this model")
    return prove_batch_axis(predictor.run, predictor.signature)


def _rows_differ(name: str, joined: np.ndarray, singles: list[np.ndarray]) -> str:
    if joined.ndim == 0 or joined.shape[0] != len(singles):
        return f"output {name!r} has shape {list(joined.shape)} for {len(singles)} samples"
    for index, single in enumerate(singles):
        if single.ndim == 0 or single.shape[0] != 1 or single.shape[1:] != joined.shape[1:]:
            return f"output {name!r} has shape {list(single.shape)} for one sample"
        if not _close(joined[index : index + 1], single):
            return f"output {name!r}: row {index} of the pair differs from that sample run alone"
    return ""


def _close(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind in "fc":
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        return bool(np.allclose(a, b, rtol=1e-2, atol=1e-3 * max(1.0, scale), equal_nan=True))
    return bool(np.array_equal(a, b))


def probe_sample(signature: Signature, index: int) -> dict[str, np.ndarray]:
    """One sample (batch 1) per input; ``index`` 0 and 1 give two different ones."""
    rng = np.random.default_rng(1234 + index)
    return {spec.name: _sample(spec, index, rng) for spec in signature.inputs}


def _sample(spec: TensorSpec, index: int, rng: np.random.Generator) -> np.ndarray:
    shape = (1,) + tuple(d if isinstance(d, int) else FREE_DIM for d in spec.shape[1:])
    if spec.dtype == "bytes":
        return _bytes_sample(spec.name, shape, index)
    dtype = numpy_dtype(spec.dtype)
    if dtype.kind == "b":
        return (rng.random(shape) < 0.5).astype(dtype)
    if dtype.kind in "iu":  # ids and masks: small values every embedding table and mask accepts
        return (1 + (rng.random(shape) < (0.3 + 0.4 * index))).astype(dtype)
    return rng.random(shape).astype(dtype)


def _bytes_sample(name: str, shape: tuple[int, ...], index: int) -> np.ndarray:
    if "image" in name:
        value = probe_image(index)
    else:
        value = (
            "a ship leaves the yard at dawn"
            if index == 0
            else "the second probe is quite different"
        ).encode()
    array = np.empty(shape, dtype=object)
    array.fill(value)
    return array


def probe_image(index: int) -> bytes:
    """A small PNG; the two differ in every pixel."""
    from PIL import Image

    rng = np.random.default_rng(99 + index)
    pixels = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
