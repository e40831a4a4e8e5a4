"""Model-level optimisation on the PyTorch side, before export.

``apply_model_transforms`` is the one entry point the build calls: it returns the source the
candidates are made from, with the steps it applied in ``source.steps`` (every candidate's
recipe starts with them). The reference outputs always come from the untouched source.

Order: distillation into a student → structured pruning (+ recovery fine-tuning) → lossless
fusing (BN folding, re-parameterisation) → N:M sparsity (+ fine-tuning). Quantisation-aware
training happens later, per candidate (``shipyard.optimize.qat``), because it ends in INT8 ONNX.

Example::

    >>> options = TrainingOptions(prune=0.3)
    >>> source = apply_model_transforms(source, options, parts, reporter)  # doctest: +SKIP
    >>> [str(s) for s in source.steps]  # doctest: +SKIP
    ['prune(ratio=0.3, criterion=l2, ...)', 'fold-bn(layers=12)', 'reparam(branches=9)']
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Any

from shipyard.optimize.steps import distill_step, fuse_step, prune_step, sparsity_step

if TYPE_CHECKING:
    from shipyard.dataset import Split
    from shipyard.pipeline.build import Reporter
    from shipyard.pipeline.options import TrainingOptions
    from shipyard.records import Step
    from shipyard.sources.base import Source

__all__ = ["apply_model_transforms", "transformed_source"]


def apply_model_transforms(
    source: Source, options: TrainingOptions, data: Split, reporter: Reporter
) -> Source:
    """The source after the transforms ``options`` ask for (the source itself when none applies)."""
    wanted = [
        name
        for name, on in (
            ("--distill-into", options.distill_into),
            ("--prune", options.prune),
            ("--sparsity", options.sparsity),
            ("--qat", options.qat),
        )
        if on
    ]
    if source.kind != "torch":
        if wanted:
            reporter.note(
                f"{', '.join(wanted)} need a PyTorch model (file.py:function, example:…); "
                f"this is a {source.kind} model, so they were skipped"
            )
        return source
    module, steps = source.module, []
    if options.distill_into:
        module = distill_step(source, options, data.calibration, reporter, steps)
    if options.prune:
        module = prune_step(source, module, options, data.calibration, reporter, steps)
    if options.lossless:
        module = fuse_step(source, module, data.calibration, reporter, steps)
    if options.sparsity:
        module = sparsity_step(source, module, options, data.calibration, reporter, steps)
    return transformed_source(source, module, steps) if steps else source


def transformed_source(source: Source, module: Any, steps: list[Step]) -> Source:
    """A copy of ``source`` running ``module``, with ``steps`` recorded and its own content hash."""
    all_steps = (*source.steps, *steps)
    digest = hashlib.sha256(
        f"{source.content_hash}:{[str(s) for s in all_steps]}".encode()
    ).hexdigest()[:16]
    return dataclasses.replace(
        source, module=module.eval(), steps=all_steps, content_hash=digest, notes=list(source.notes)
    )
