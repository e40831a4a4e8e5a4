"""The one small training loop every training step shares (pruning recovery, distillation, 2:4,
QAT).

AdamW with a cosine schedule, a fixed seed, early stop on a held-back slice of the data, a
wall-clock limit, progress through a callback. The loss is cross-entropy on labels when there
are labels, distillation from a teacher when there is one, or both mixed::

    loss = alpha · CE(student, labels) + (1 - alpha) · T² · KL(softmax(teacher/T) ‖
    softmax(student/T))

Outputs that are not logits (``kind="regression"``) are matched to the teacher by mean squared
error.

Example::

    >>> result = fit(model, data, TrainConfig(epochs=3), teacher=original)   # doctest: +SKIP
    >>> result.best_score, result.epochs                                       # doctest: +SKIP
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shipyard.dataset import Dataset
from shipyard.errors import DataError


@dataclass
class TrainConfig:
    """CPU-friendly defaults: a few epochs, small batches, two minutes at most."""

    epochs: int = 12
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32
    patience: int = 4
    """Stop after this many epochs without a better validation score."""
    time_limit: float = 120.0
    """Seconds; the loop stops at the end of the batch that passes it."""
    seed: int = 0
    temperature: float = 4.0
    alpha: float = 0.5
    """Weight of the label loss when there are both labels and a teacher."""
    val_fraction: float = 0.2
    kind: str = "classification"
    """``classification`` (first output is logits) or ``regression`` (match the teacher's
    outputs)."""


@dataclass
class TrainResult:
    epochs: int
    best_score: float
    """Validation accuracy % (labels) or agreement % with the teacher, less a loss tie-breaker
    worth under half a sample; -MSE for regression."""
    seconds: float
    stopped: str
    history: list[float] = field(default_factory=list)
    initial_score: float | None = None
    """The untrained model's validation score (``fit(keep_start=True)``)."""

    @property
    def kept_start(self) -> bool:
        """True when no epoch beat the untrained model, so its weights were kept."""
        return self.initial_score is not None and self.best_score <= self.initial_score


Progress = Callable[[str], None]
AfterStep = Callable[[Any], None]


def fit(
    model: Any,
    data: Dataset,
    config: TrainConfig | None = None,
    teacher: Any = None,
    progress: Progress | None = None,
    after_step: AfterStep | None = None,
    extra_parameters: list[dict] | None = None,
    keep_start: bool = False,
) -> TrainResult:
    """Train ``model`` in place on ``data``; the best epoch's weights are kept. Returns the record.

    ``keep_start``: the untrained model is scored too and kept when no epoch beats it, so the
    training cannot end worse than it began on the validation slice (QAT from PTQ ranges).
    """
    import torch

    config = config or TrainConfig()
    _check(data, teacher, config)
    torch.manual_seed(config.seed)
    train, val = _split(data, config)
    teacher_train, teacher_val = (
        (_predict(teacher, train), _predict(teacher, val)) if teacher is not None else (None, None)
    )
    extra_ids = {id(p) for group in extra_parameters or [] for p in group["params"]}
    own = [p for p in model.parameters() if p.requires_grad and id(p) not in extra_ids]
    groups = [{"params": own}, *(extra_parameters or [])]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * max(1, -(-len(train) // config.batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    best, best_state, history, start, stopped = -np.inf, None, [], time.perf_counter(), "epochs"
    initial = None
    if keep_start:
        initial = best = _score(model, val, teacher_val, config)
        best_state = copy.deepcopy(model.state_dict())
    for epoch in range(config.epochs):
        timed_out = _epoch(
            model, train, teacher_train, optimizer, schedule, config, after_step, start
        )
        score = _score(model, val, teacher_val, config)
        history.append(score)
        if progress:
            progress(f"epoch {epoch + 1}/{config.epochs}: validation {score:.3f}")
        if score > best:
            best, best_state = score, copy.deepcopy(model.state_dict())
        if timed_out:
            stopped = "time limit"
            break
        if epoch - int(np.argmax(history)) >= config.patience:
            stopped = "early stop"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        len(history), float(best), time.perf_counter() - start, stopped, history, initial
    )


def _check(data: Dataset, teacher: Any, config: TrainConfig) -> None:
    if data.labels is None and teacher is None:
        raise DataError("training needs labels or a teacher model; the data set has no 'labels'")
    if len(data) < 10:
        raise DataError(f"training needs at least 10 samples; the data set has {len(data)}")
    if config.kind not in ("classification", "regression"):
        raise DataError(f"training kind {config.kind!r}: expected classification or regression")


def _split(data: Dataset, config: TrainConfig) -> tuple[Dataset, Dataset]:
    order = np.random.default_rng(config.seed).permutation(len(data))
    cut = max(1, int(len(data) * config.val_fraction))
    return data.take(np.sort(order[cut:])), data.take(np.sort(order[:cut]))


def tensors(feed: dict[str, np.ndarray]) -> list[Any]:
    import torch

    return [torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values()]


def first_output(result: Any) -> Any:
    """The first tensor a model returned (logits for a classifier)."""
    if isinstance(result, dict):
        return next(iter(result.values()))
    if isinstance(result, (tuple, list)):
        return result[0]
    return result


def _predict(model: Any, data: Dataset, batch: int = 256) -> Any:
    import torch

    model.eval()
    with torch.no_grad():
        return torch.cat([first_output(model(*tensors(f))).float() for f in data.batches(batch)])


def _epoch(
    model: Any,
    train: Dataset,
    teacher_out: Any,
    optimizer: Any,
    schedule: Any,
    config: TrainConfig,
    after_step: AfterStep | None,
    start: float,
) -> bool:
    """One pass over shuffled ``train``; True when the time limit ran out."""
    import torch

    model.train()
    order = torch.randperm(len(train)).numpy()
    for begin in range(0, len(order), config.batch_size):
        index = order[begin : begin + config.batch_size]
        if len(index) < 2:  # batch norm cannot train on one sample
            continue
        batch = train.take(index)
        optimizer.zero_grad()
        output = first_output(model(*tensors(batch.inputs)))
        loss = _loss(
            output, batch.labels, None if teacher_out is None else teacher_out[index], config
        )
        loss.backward()
        optimizer.step()
        schedule.step()
        if after_step:
            after_step(model)
        if time.perf_counter() - start > config.time_limit:
            return True
    return False


def _loss(output: Any, labels: np.ndarray | None, teacher: Any, config: TrainConfig) -> Any:
    import torch
    from torch.nn import functional as F

    if config.kind == "regression":
        return F.mse_loss(output, teacher)
    terms = []
    if labels is not None:
        terms.append(
            (
                config.alpha if teacher is not None else 1.0,
                F.cross_entropy(output, torch.from_numpy(labels)),
            )
        )
    if teacher is not None:
        t = config.temperature
        soft = (
            F.kl_div(
                F.log_softmax(output / t, -1),
                F.log_softmax(teacher / t, -1),
                log_target=True,
                reduction="batchmean",
            )
            * t
            * t
        )
        terms.append((1 - config.alpha if labels is not None else 1.0, soft))
    return sum(weight * term for weight, term in terms)


def _score(model: Any, val: Dataset, teacher_out: Any, config: TrainConfig) -> float:
    output = _predict(model, val)
    if config.kind == "regression":
        return -float(((output - teacher_out) ** 2).mean())
    predicted = output.argmax(-1).numpy()
    target = val.labels if val.labels is not None else teacher_out.argmax(-1).numpy()
    # Small validation sets saturate at 100%: the loss breaks ties, worth at most half a sample.
    loss = float(_loss(output, val.labels, teacher_out, config))
    return float((predicted == target).mean() * 100) - min(loss, 1.0) * 50 / len(val)


def accuracy(model: Any, data: Dataset) -> float:
    """Top-1 accuracy % of ``model``'s first output on a labelled data set."""
    predicted = _predict(model, data).argmax(-1).numpy()
    return float((predicted == data.labels).mean() * 100)
