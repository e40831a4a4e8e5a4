"""What the budget's metric can hide: agreement beyond top-1, and where the source was sure.

On ambiguous data (photo crops with two plausible classes) a reduced precision flips near-ties
that the source itself barely decided; top-1 agreement counts those flips like real mistakes.
Beside the user's metric every classifier's verification therefore reports

    top-5 agreement      % of samples whose source top-1 class is in the candidate's top 5
    confident agreement  top-1 agreement on the samples where the source's top-1 probability
                         beats its top-2 by more than ``CONFIDENT_MARGIN``
    cosine               mean cosine similarity with the source's output (every model)

The budget still counts the metric the user chose; these numbers are for the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shipyard.verify.metrics import row_cosine, top1

CONFIDENT_MARGIN = 0.3


@dataclass
class Agreement:
    cosine: float | None = None
    top5: float | None = None
    confident: float | None = None
    confident_samples: int = 0


def agreement(reference: np.ndarray, output: np.ndarray) -> Agreement:
    """The numbers above for one output: ``reference`` from the source, ``output`` a candidate's."""
    if reference.shape != output.shape or reference.dtype.kind != "f" or not len(reference):
        return Agreement()
    result = Agreement(cosine=float(row_cosine(reference, output).mean() * 100))
    if reference.ndim != 2 or reference.shape[1] < 2:
        return result
    truth = top1(reference)
    if reference.shape[1] >= 5:
        top5 = np.argsort(-output, axis=1)[:, :5]
        result.top5 = float((top5 == truth[:, None]).any(axis=1).mean() * 100)
    confident = confidence_margin(reference) > CONFIDENT_MARGIN
    result.confident_samples = int(confident.sum())
    if result.confident_samples:
        result.confident = float((top1(output)[confident] == truth[confident]).mean() * 100)
    return result


def confidence_margin(scores: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per sample (rows not already probabilities get a softmax)."""
    scores = scores.astype(np.float64)
    is_probability = (scores >= 0).all() and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3)
    if not is_probability:
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores = shifted / shifted.sum(axis=1, keepdims=True)
    two = np.sort(scores, axis=1)[:, -2:]
    return two[:, 1] - two[:, 0]
