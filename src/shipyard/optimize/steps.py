"""The build's model-level steps: each transforms a module, checks it and records a recipe step."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.dataset import Dataset
from shipyard.records import Step

if TYPE_CHECKING:
    from shipyard.optimize.train import TrainConfig
    from shipyard.pipeline.build import Reporter
    from shipyard.pipeline.options import TrainingOptions
    from shipyard.sources.base import Source

FUSE_TOLERANCE = 1e-5
"""Largest error of the fused model, relative to the largest output magnitude of the original."""


def train_config(source: Source, seed: int = 0) -> TrainConfig:
    from shipyard.optimize.train import TrainConfig

    return TrainConfig(
        seed=seed, kind="classification" if source.task == "classification" else "regression"
    )


def _progress(reporter: Reporter, what: str) -> Any:
    return lambda text: reporter.stage(f"{what}: {text}")


def _how(data: Dataset) -> str:
    return "labels+distill" if data.labels is not None else "distill"


def distill_step(
    source: Source, options: TrainingOptions, data: Dataset, reporter: Reporter, steps: list[Step]
) -> Any:
    from shipyard.optimize.distill import load_student
    from shipyard.optimize.prune import count_parameters
    from shipyard.optimize.train import fit

    student = load_student(options.distill_into, source.signature)
    config = train_config(source, options.seed)
    config.lr, config.epochs, config.patience = 3e-3, 30, 8  # a student starts from scratch
    reporter.stage(f"distilling {source.name} into {options.distill_into} ({_how(data)})")
    result = fit(
        student, data, config, teacher=source.module, progress=_progress(reporter, "distill")
    )
    reporter.note(
        f"distilled into {options.distill_into}: {count_parameters(student):,} parameters "
        f"(teacher {count_parameters(source.module):,}), validation {result.best_score:.1f} "
        f"after {result.epochs} epochs ({result.stopped})"
    )
    steps.append(
        Step(
            "distill",
            {
                "student": options.distill_into,
                "temperature": config.temperature,
                "alpha": config.alpha,
                "epochs": result.epochs,
                "data": _how(data),
            },
        )
    )
    return student


def prune_step(
    source: Source,
    module: Any,
    options: TrainingOptions,
    data: Dataset,
    reporter: Reporter,
    steps: list[Step],
) -> Any:
    from shipyard.optimize.prune import check_prune_options, prune
    from shipyard.optimize.train import fit, tensors

    check_prune_options(options.prune, options.prune_criterion)
    pruned = copy.deepcopy(module)
    reporter.stage(f"pruning {options.prune:.0%} of the channels ({options.prune_criterion})")
    example = tensors(data.take(np.arange(min(len(data), 16))).inputs)
    outputs = {
        int(s.shape[1])
        for s in source.signature.outputs
        if len(s.shape) > 1 and isinstance(s.shape[1], int)
    }
    result = prune(
        pruned,
        example,
        options.prune,
        options.prune_criterion,
        options.protect,
        outputs,
        taylor_loss=_taylor_loss(data, module),
    )
    config = train_config(source, options.seed)
    trained = fit(
        pruned, data, config, teacher=module, progress=_progress(reporter, "recovery fine-tuning")
    )
    reporter.note(
        f"pruned: {result.params_before:,} → {result.params_after:,} parameters "
        f"({result.removed_fraction:.0%} fewer); recovery fine-tuning ({_how(data)}) reached "
        f"validation {trained.best_score:.1f} in {trained.epochs} epochs"
    )
    steps.append(
        Step(
            "prune",
            {
                "ratio": options.prune,
                "criterion": options.prune_criterion,
                "protect": list(result.protected),
                "params": result.params_after,
                "finetune": _how(data),
                "epochs": trained.epochs,
            },
        )
    )
    return pruned


def _taylor_loss(data: Dataset, teacher: Any) -> Any:
    """Taylor importance needs a loss: cross-entropy on labels, else distance to the teacher."""
    from shipyard.optimize.train import first_output, tensors

    feed = data.take(np.arange(min(len(data), 64)))

    def loss(module: Any) -> Any:
        import torch

        output = first_output(module(*tensors(feed.inputs)))
        if feed.labels is not None and output.dim() == 2:
            return torch.nn.functional.cross_entropy(output, torch.from_numpy(feed.labels))
        with torch.no_grad():
            target = first_output(teacher(*tensors(feed.inputs)))
        return (output - target).pow(2).mean()

    return loss


def fuse_step(
    source: Source, module: Any, data: Dataset, reporter: Reporter, steps: list[Step]
) -> Any:
    """BN folding and re-parameterisation, kept only when outputs match to ``FUSE_TOLERANCE``."""
    from torch import nn

    from shipyard.optimize.fuse import fuse

    if not any(
        isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Conv2d)) for m in module.modules()
    ):
        return module  # nothing to fold or merge (a transformer, an MLP): no trace, no note
    try:
        fused, folded, merged = fuse(module)
    except Exception as exc:
        reporter.note(
            f"BN folding / re-parameterisation skipped: torch.fx could not trace the model "
            f"({type(exc).__name__}: {str(exc)[:160]})"
        )
        return module
    if not folded and not merged:
        return module
    error = relative_error(module, fused, data)
    if not error <= FUSE_TOLERANCE:
        reporter.note(
            f"BN folding / re-parameterisation undone: fused outputs differ by {error:.2e} "
            "relative "
            f"(tolerance {FUSE_TOLERANCE:.0e}); the unfused model is used"
        )
        return module
    if folded:
        steps.append(Step("fold-bn", {"layers": folded}))
    if merged:
        steps.append(Step("reparam", {"branches": merged}))
    reporter.note(
        f"fused {folded} batch norms and {merged} parallel branches (max relative error "
        f"{error:.1e})"
    )
    return fused


def relative_error(reference: Any, candidate: Any, data: Dataset, samples: int = 64) -> float:
    """Largest |difference| over every output, divided by the reference's largest |value|."""
    import torch

    from shipyard.optimize.train import tensors

    feed = tensors(data.take(np.arange(min(len(data), samples))).inputs)
    with torch.no_grad():
        want, got = _flat(reference.eval()(*feed)), _flat(candidate.eval()(*feed))
    if len(want) != len(got):
        return float("inf")
    worst = 0.0
    for a, b in zip(want, got):
        if a.shape != b.shape:
            return float("inf")
        scale = max(float(a.abs().max()), 1e-12)
        worst = max(worst, float((a.float() - b.float()).abs().max()) / scale)
    return worst


def _flat(result: Any) -> list[Any]:
    if isinstance(result, dict):
        return list(result.values())
    if isinstance(result, (tuple, list)):
        return [t for item in result for t in _flat(item)]
    return [result]


def sparsity_step(
    source: Source,
    module: Any,
    options: TrainingOptions,
    data: Dataset,
    reporter: Reporter,
    steps: list[Step],
) -> Any:
    from shipyard.optimize import sparsity as sp
    from shipyard.optimize.train import fit

    pattern = sp.parse_pattern(options.sparsity)
    sparse = copy.deepcopy(module)
    layers = sp.sparse_layers(sparse, pattern, options.protect)
    if not layers:
        reporter.note(
            f"--sparsity {pattern}: no conv or linear layer has an input width divisible by "
            f"{pattern.group}"
        )
        return module
    masks = sp.make_masks(layers, pattern)
    sp.apply_masks(layers, masks)
    reporter.stage(f"{pattern} sparsity on {len(layers)} layers, fine-tuning with the masks held")
    trained = fit(
        sparse,
        data,
        train_config(source, options.seed),
        teacher=module,
        progress=_progress(reporter, "sparse fine-tuning"),
        after_step=lambda _: sp.apply_masks(layers, masks),
    )
    sp.apply_masks(layers, masks)
    reporter.note(
        f"{pattern} sparsity: {len(layers)} layers, {sp.sparse_fraction(layers):.0%} of their "
        "weights "
        f"are zero; validation {trained.best_score:.1f}. {sp.SPEEDUP_NOTE}"
    )
    steps.append(
        Step("sparsity", {"pattern": str(pattern), "layers": len(layers), "epochs": trained.epochs})
    )
    return sparse
