"""The source model's outputs on the evaluation set: computed once, cached by content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shipyard.dataset import Dataset

if TYPE_CHECKING:
    from shipyard.backends.base import Session

EVAL_BATCH = 32


def run_batched(
    session: Session, dataset: Dataset, batch: int = EVAL_BATCH
) -> dict[str, np.ndarray]:
    """Run every sample through ``session`` in batches; outputs concatenated along axis 0."""
    parts: dict[str, list[np.ndarray]] = {}
    for feed in map(trim_padding, dataset.batches(batch)):
        for name, value in session.run(feed).items():
            parts.setdefault(name, []).append(value)
    return {name: np.concatenate(values) for name, values in parts.items()}


def trim_padding(feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Token batches cut to their longest sequence, as the package's tokenizer would send them."""
    mask = feed.get("attention_mask")
    if mask is None or mask.ndim != 2:
        return feed
    length = max(1, int(mask.sum(axis=1).max()))
    return {k: v[:, :length] if v.ndim == 2 else v for k, v in feed.items()}


def dataset_hash(dataset: Dataset) -> str:
    digest = hashlib.sha256()
    for name in sorted(dataset.inputs):
        array = np.ascontiguousarray(dataset.inputs[name])
        digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def reference_outputs(
    session: Session, source_hash: str, dataset: Dataset, cache_dir: Path | None
) -> dict[str, np.ndarray]:
    """The source's outputs on ``dataset``, read from ``cache_dir`` when computed before."""
    outputs_key = hashlib.sha256(",".join(session.signature.output_names).encode()).hexdigest()[:8]
    cache = (
        cache_dir / f"reference-{source_hash}-{dataset_hash(dataset)}-{outputs_key}.npz"
        if cache_dir
        else None
    )
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    outputs = run_batched(session, dataset)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **outputs)
    return outputs
