"""The shared training loop: labels, label-free distillation, early stop, time limit, seed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from shipyard.dataset import Dataset  # noqa: E402
from shipyard.errors import DataError  # noqa: E402
from shipyard.optimize.train import TrainConfig, accuracy, fit  # noqa: E402


def _blobs(count: int = 400, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count)
    centres = np.array([[2, 0], [-2, 1], [0, -2]], dtype=np.float32)
    points = centres[labels] + rng.normal(0, 0.5, (count, 2)).astype(np.float32)
    return Dataset({"x": points.astype(np.float32)}, labels.astype(np.int64))


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def test_learns_from_labels_and_reports_progress():
    data, held_out, lines = _blobs(), _blobs(200, seed=1), []
    model = _mlp()
    before = accuracy(model, held_out)
    result = fit(model, data, TrainConfig(epochs=6, lr=1e-2), progress=lines.append)
    assert accuracy(model, held_out) > max(90.0, before + 20)
    assert result.best_score == max(result.history) and len(lines) == result.epochs
    assert not model.training


def test_learns_without_labels_from_a_teacher():
    data, held_out = _blobs(), _blobs(200, seed=1)
    teacher = _mlp(1)
    fit(teacher, data, TrainConfig(epochs=6, lr=1e-2))
    unlabelled = Dataset(data.inputs)
    student = _mlp(2)
    result = fit(student, unlabelled, TrainConfig(epochs=6, lr=1e-2), teacher=teacher)
    assert accuracy(student, held_out) > 85.0
    assert result.best_score > 85.0  # agreement with the teacher, %


def test_same_seed_same_weights():
    runs = []
    for _ in range(2):
        model = _mlp()
        fit(model, _blobs(), TrainConfig(epochs=2, lr=1e-2, seed=3))
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


def test_early_stop_and_time_limit():
    data = _blobs()
    model = _mlp()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    # lr 0: the score never improves after the first epoch, so patience 1 stops at epoch 2
    stopped = fit(model, data, TrainConfig(epochs=20, lr=0.0, patience=1))
    assert (stopped.epochs, stopped.stopped) == (2, "early stop")
    timed = fit(_mlp(), data, TrainConfig(epochs=50, time_limit=0.0))
    assert (timed.epochs, timed.stopped) == (1, "time limit")


def test_needs_labels_or_teacher():
    with pytest.raises(DataError, match="labels or a teacher"):
        fit(_mlp(), Dataset(_blobs().inputs))
