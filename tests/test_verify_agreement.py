"""Top-5 agreement, agreement on confident samples and cosine beside the budget's metric."""

from __future__ import annotations

import numpy as np

from shipyard.verify.agreement import agreement, confidence_margin
from shipyard.verify.metrics import verify_outputs


def _logits(rows: list[list[float]]) -> np.ndarray:
    return np.log(np.array(rows, dtype=np.float64)).astype(np.float32)


def test_near_ties_flip_without_costing_confident_agreement():
    reference = _logits(
        [
            [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],  # confident
            [0.41, 0.39, 0.05, 0.05, 0.05, 0.05],  # a near-tie
            [0.05, 0.8, 0.05, 0.05, 0.03, 0.02],
        ]
    )  # confident
    flipped = _logits(
        [
            [0.9, 0.02, 0.02, 0.02, 0.02, 0.02],
            [0.39, 0.41, 0.05, 0.05, 0.05, 0.05],
            [0.05, 0.8, 0.05, 0.05, 0.03, 0.02],
        ]
    )
    check = verify_outputs(
        "agreement", {"logits": reference}, {"logits": flipped}, None, max_drop=1.0
    )
    assert not check.passed and abs(check.value - 200 / 3) < 1e-6
    assert check.confident_samples == 2 and check.confident_agreement == 100.0
    assert check.top5_agreement == 100.0 and 99.0 < check.cosine < 100.0


def test_top5_misses_when_the_class_falls_out_of_the_top_five():
    reference = _logits([[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])
    worst = _logits([[0.01, 0.2, 0.2, 0.2, 0.2, 0.19]])
    assert agreement(reference, worst).top5 == 0.0
    assert agreement(reference, worst).confident == 0.0


def test_probabilities_are_not_softmaxed_again():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.45, 0.35, 0.2]])
    assert np.allclose(confidence_margin(probabilities), [0.5, 0.1])
    assert np.allclose(confidence_margin(np.log(probabilities)), [0.5, 0.1])


def test_embeddings_get_cosine_only():
    embedding = np.random.default_rng(0).normal(size=(4, 1, 8)).astype(np.float32)
    result = agreement(embedding, embedding)
    assert abs(result.cosine - 100.0) < 1e-6 and result.top5 is None and result.confident is None
