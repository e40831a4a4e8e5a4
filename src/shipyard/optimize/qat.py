"""Quantisation-aware training (``--qat``): fake-quant fine-tuning, exported as INT8 Q/DQ ONNX.

The recipe step ``qat`` takes the (already transformed) PyTorch source, inserts fake quantisers
(``shipyard.optimize.fakequant``), calibrates their ranges on the calibration data (this alone is
post-training quantisation with min/max ranges), fine-tunes weights and ranges with the original
as teacher (plus labels when there are any), and exports ONNX with QuantizeLinear /
DequantizeLinear. ONNX Runtime runs that as INT8; ``convert(openvino)`` after it gives an INT8 IR.

For the build: ``qat_candidates(source, backends)`` plans the INT8 QAT candidates (the pipeline
adds them when ``--qat`` is given, and the accuracy-aware search can call it when post-training
INT8 misses the budget and real training data exists: see ``qat_worth_trying``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.dataset import Dataset
from shipyard.errors import ConversionError
from shipyard.records import Artifact, Candidate, Recipe, Step
from shipyard.workshop import Workshop, step

if TYPE_CHECKING:
    from shipyard.optimize.train import TrainConfig, TrainResult
    from shipyard.sources.base import Source

QAT_EPOCHS = 8
QAT_STEP = Step("qat", {"epochs": QAT_EPOCHS})
"""Weights INT8 per output channel (symmetric), activations UINT8 per tensor with learnt ranges."""
ONNX_OPSET = 17
CALIBRATION_SAMPLES = 256
QAT_LR = 1e-5
SCALE_LR = 1e-3
"""Gentle rates, for when post-training INT8 already keeps most answers: fine-tuning a pretrained
network. At 5e-4 MobileNetV2's ImageNet weights were wrecked (35 % agreement after QAT against
72 % before it); at 1e-5 with BN folded, QAT took it from 84 % to 88 %."""
REPAIR_LR = 5e-4
REPAIR_SCALE_LR = 0.05
"""Bold rates, for when post-training INT8 is broken (a range 1000× too wide): weights and ranges
must move far, and a range can move by e^±1 in about 20 steps."""
BROKEN_START = 50.0
"""Agreement % with the original, at the PTQ start, below which the bold rates are used."""


def qat_candidates(source: Source, backends: list[str] | None = None) -> list[Candidate]:
    """INT8 candidates made by QAT for each backend that runs Q/DQ ONNX (PyTorch sources only)."""
    from shipyard.backends import CPU_BACKENDS, get_backend

    if source.kind != "torch":
        return []
    recipe = Recipe((*source.steps, QAT_STEP))
    plans = []
    for name in backends or list(CPU_BACKENDS):
        backend = get_backend(name)
        runs = backend.qat_recipe(recipe)
        if runs is not None and backend.available()[0]:
            plans.append(Candidate(name, "int8", runs))
    return plans


def qat_worth_trying(source: Source, calibration: Dataset) -> bool:
    """True when QAT can run: a PyTorch source and real (not synthetic) data to train on."""
    return source.kind == "torch" and not calibration.synthetic and len(calibration) >= 20


def qat_fallback(plans: list[Candidate], workshop: Workshop, verify: Any) -> list[Candidate]:
    """QAT candidates when every post-training INT8 candidate missed the budget; else nothing.

    ``verify(candidates)`` makes, verifies and opens sessions for new candidates (the pipeline's
    ``Verifier``, the same one the mixed-precision search uses). Returns the QAT
    candidates tried, for the caller to add to its plans.
    """
    int8 = [c for c in plans if c.precision == "int8"]
    trained = [c for c in int8 if QAT_STEP.name in (s.name for s in c.recipe.steps)]
    if trained:  # --qat planned them beside post-training INT8: they must beat it to stay
        workshop.notes.setdefault("qat", []).extend(
            drop_below_ptq(trained, [c for c in int8 if all(c is not t for t in trained)])
        )
        return []
    quantized = int8 + [
        c for c in plans if c.precision == "mixed"
    ]  # a mixed-precision rescue that passed is enough
    if not int8 or any(c.passed for c in quantized):
        return []
    if workshop.calibration is None or not qat_worth_trying(workshop.source, workshop.calibration):
        return []
    more = qat_candidates(workshop.source, sorted({c.backend for c in int8}))
    if more:
        workshop.notes.setdefault("qat", []).append(
            "post-training INT8 missed the budget: trying quantisation-aware training"
        )
        verify(more)
        for note in drop_below_ptq(more, int8):
            workshop.notes["qat"].append(note)
    return more


def drop_below_ptq(qat: list[Candidate], ptq: list[Candidate]) -> list[str]:
    """Fail every QAT candidate whose metric ended below the best post-training INT8's; the notes.

    QAT is only worth its training time when it beats PTQ; one that ends below it is dropped so a
    regression can never be shipped (or reported as the INT8 result).
    """
    scored = [c.verification.value for c in ptq if c.verification is not None and not c.error]
    if not scored:
        return []
    best, notes = max(scored), []
    for candidate in qat:
        check = candidate.verification
        if check is None or candidate.error or check.value >= best:
            continue
        check.passed = False
        below = f"{check.value:.2f} < {best:.2f} {check.metric}"
        check.reason = f"QAT ended below post-training INT8 ({below}); dropped"
        notes.append(f"{candidate.key}: {check.reason}")
    return notes


@dataclass
class QatResult:
    module: Any
    train: TrainResult | None
    quantizers: int


def quantization_aware(
    module: Any,
    data: Dataset,
    config: TrainConfig | None = None,
    teacher: Any = None,
    train: bool = True,
    progress: Any = None,
) -> QatResult:
    """A fake-quantised copy of ``module``: ranges calibrated on ``data``, then fine-tuned
    (``train``).

    The rates follow the start: gentle when post-training INT8 already agrees with the original,
    bold when it is broken; the PTQ start is kept when no epoch beats it.
    """
    from shipyard.optimize import fakequant
    from shipyard.optimize.train import TrainConfig, fit, tensors

    quantized = _folded(module)
    quantizers = fakequant.insert_quantizers(quantized)
    if not quantizers:
        raise ConversionError("QAT found no Conv2d or Linear layer to quantise")
    sample = data.take(np.arange(min(len(data), CALIBRATION_SAMPLES)))
    fakequant.calibrate(quantized, quantizers, [tensors(f) for f in sample.batches(64)])
    result = None
    if train:
        broken = start_agreement(quantized, module, sample) < BROKEN_START
        config = config or TrainConfig(lr=QAT_LR, epochs=QAT_EPOCHS, weight_decay=0.0)
        if broken:
            config.lr = max(config.lr, REPAIR_LR)
        extra = [
            {
                "params": [q.log_scale for q in quantizers],
                "lr": REPAIR_SCALE_LR if broken else SCALE_LR,
                "weight_decay": 0.0,
            }
        ]
        result = fit(
            quantized,
            data,
            config,
            teacher=teacher if teacher is not None else module,
            progress=progress,
            extra_parameters=extra,
            keep_start=True,
        )
    return QatResult(quantized.eval(), result, len(quantizers))


def start_agreement(quantized: Any, original: Any, data: Dataset) -> float:
    """Top-1 agreement % of the fake-quantised model with the original (100 for non-classifiers)."""
    import torch

    from shipyard.optimize.train import first_output, tensors

    with torch.no_grad():
        pairs = [
            (first_output(quantized(*tensors(f))), first_output(original(*tensors(f))))
            for f in data.batches(64)
        ]
    if not pairs or pairs[0][1].dim() != 2:
        return 100.0
    same = torch.cat([(q.argmax(-1) == o.argmax(-1)).float() for q, o in pairs])
    return float(same.mean() * 100)


def _folded(module: Any) -> Any:
    """A copy of ``module`` with batch norms folded into their convolutions, as deployed.

    Training then sees the weights INT8 will hold, and no batch statistics drift: a pretrained
    network's BN statistics are better than a few hundred calibration samples' batches.
    """
    import copy

    from shipyard.optimize.fuse import fuse

    try:
        return fuse(module)[0]
    except Exception:  # a module torch.fx cannot trace is trained as it is
        return copy.deepcopy(module).eval()


def export_qdq_onnx(module: Any, source: Source, path: Path) -> Artifact:
    """Export a fake-quantised module to ONNX with QuantizeLinear/DequantizeLinear (legacy
    exporter)."""
    import warnings

    import torch

    from shipyard.convert.onnx_export import check_onnx, dynamic_axes, spec_example

    args = tuple(torch.from_numpy(spec_example(s)) for s in source.signature.inputs)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                args,
                str(path),
                input_names=source.signature.input_names,
                output_names=source.signature.output_names,
                opset_version=ONNX_OPSET,
                dynamic_axes=dynamic_axes(source.signature),
                dynamo=False,
                do_constant_folding=True,
            )
        fold_weight_quantization(path)
        check_onnx(path)
    except Exception as exc:
        raise ConversionError(
            f"exporting the QAT model to ONNX failed: {type(exc).__name__}: {str(exc)[:300]}"
        ) from exc
    return Artifact(path, "onnx", source.signature)


def fold_weight_quantization(path: Path) -> int:
    """Store quantised weights as INT8 initializers: ``QuantizeLinear(constant)`` → its result.

    The exporter leaves FP32 weights behind a QuantizeLinear; folded, the file is ~4× smaller and
    ONNX Runtime sees the DQ(int8) → Conv pattern it fuses into integer kernels.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    constants.update(
        {
            n.output[0]: numpy_helper.to_array(n.attribute[0].t)
            for n in graph.node
            if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
        }
    )
    folded = []
    for node in graph.node:
        if (
            node.op_type == "Identity" and node.input[0] in constants
        ):  # the exporter's shared weights
            constants[node.output[0]] = constants[node.input[0]]
        if node.op_type == "QuantizeLinear" and all(name in constants for name in node.input):
            folded.append(node)
            graph.initializer.append(
                numpy_helper.from_array(_quantize(node, constants), node.output[0])
            )
    for node in folded:
        graph.node.remove(node)
    _drop_dead_constants(graph)
    onnx.save(model, str(path))
    return len(folded)


def _drop_dead_constants(graph: Any) -> None:
    outputs = {o.name for o in graph.output}
    for node in reversed(list(graph.node)):  # consumers come after producers
        used = {name for n in graph.node for name in n.input} | outputs
        if node.op_type in ("Constant", "Identity") and node.output[0] not in used:
            graph.node.remove(node)
    used = {name for n in graph.node for name in n.input} | outputs
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)


def _quantize(node: Any, constants: dict[str, np.ndarray]) -> np.ndarray:
    x, scale = constants[node.input[0]], constants[node.input[1]]
    zero = constants[node.input[2]] if len(node.input) > 2 else np.zeros((), np.uint8)
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
    if scale.ndim == 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_b = scale.reshape(shape), zero.reshape(shape)
    else:
        zero_b = zero
    info = np.iinfo(zero.dtype)
    return np.clip(np.rint(x / scale) + zero_b.astype(np.int32), info.min, info.max).astype(
        zero.dtype
    )


@step("qat")
def _qat_step(
    workshop: Workshop, previous: Artifact | None, epochs: int = QAT_EPOCHS, **options: Any
) -> Artifact:
    from shipyard.optimize.steps import train_config

    source = workshop.source
    data = workshop.calibration
    if source.kind != "torch" or source.module is None:
        raise ConversionError(f"QAT needs a PyTorch model; this source is {source.kind}")
    if data is None or len(data) < 20:
        raise ConversionError("QAT needs at least 20 calibration samples to train on")
    config = train_config(source)
    config.lr, config.epochs, config.weight_decay = QAT_LR, epochs, 0.0
    config.time_limit = min(
        config.time_limit, max(5.0, workshop.deadline.remaining())
    )  # --time-budget
    result = quantization_aware(source.module, data, config)
    trained = result.train
    outcome = (
        "no epoch beat the PTQ start, so its ranges and weights are kept"
        if trained.kept_start
        else f"validation {trained.initial_score:.1f} at the PTQ start → {trained.best_score:.1f}"
    )
    workshop.notes.setdefault("qat", []).append(
        f"QAT: {result.quantizers} quantised layers, fine-tuned {trained.epochs} epochs "
        f"({'labels+distill' if data.labels is not None else 'label-free distillation'}); {outcome}"
    )
    return export_qdq_onnx(result.module, source, workshop.new_path(".onnx"))
