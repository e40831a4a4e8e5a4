"""``shipyard build``, ``shipyard demo`` and ``shipyard examples``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from shipyard.cli.args import positive_float, positive_int
from shipyard.deadline import DEFAULT_TIME_BUDGET
from shipyard.errors import UsageError


def add_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", type=Path, help="safetensors or state-dict file for a file.py:function model"
    )
    parser.add_argument(
        "--data",
        type=Path,
        help=".npz (one array per input, optional 'labels'), .txt, or image folder",
    )
    parser.add_argument("--name", help="the package's model name (default: from the model)")
    parser.add_argument(
        "--max-drop",
        type=positive_float,
        default=1.0,
        help="accuracy budget in points of the metric (default 1)",
    )
    parser.add_argument(
        "--metric",
        help="accuracy | agreement | cosine (default: accuracy with labels, else by task)",
    )
    parser.add_argument(
        "--backends", help="comma-separated backends to try (default: every CPU backend)"
    )
    parser.add_argument(
        "--precisions",
        help="comma-separated precisions to try: auto, fp32, bf16, fp16, int8 "
        "(default auto: FP32 plus what this CPU runs natively)",
    )
    parser.add_argument(
        "--threads", type=positive_int, help="threads for every backend (default: all cores)"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:1x3x224x224[:dtype]",
        help="declare an input when --data does not name it (repeatable)",
    )
    parser.add_argument("--output-names", help="comma-separated names for the model's outputs")
    parser.add_argument(
        "--image-size", help="HxW to resize a folder of images to (default: the model's input)"
    )
    parser.add_argument("--image-mean", help="comma-separated per-channel mean (default: ImageNet)")
    parser.add_argument("--image-std", help="comma-separated per-channel std (default: ImageNet)")
    parser.add_argument(
        "--eval-fraction", type=float, default=0.5, help="share of the data held out for evaluation"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the calibration/evaluation split"
    )
    parser.add_argument("--optimize-for", default="latency", choices=["latency", "throughput"])
    parser.add_argument(
        "--throughput-batch",
        type=positive_int,
        default=16,
        help="batch size for throughput (default 16)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it already holds something"
    )
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        default=DEFAULT_TIME_BUDGET,
        metavar="SECONDS",
        help=f"seconds the whole build may spend (default {DEFAULT_TIME_BUDGET:g}); when spent, no "
        "further reduced-precision candidate, rescue, accuracy control or QAT is started",
    )
    parser.add_argument(
        "--calibration-size",
        type=positive_int,
        default=300,
        help="at most this many calibration samples (default 300)",
    )
    parser.add_argument(
        "--no-fuse", action="store_true", help="skip BN folding and re-parameterisation"
    )
    parser.add_argument(
        "--prune", type=positive_float, metavar="RATIO", help="structured pruning ratio, e.g. 0.3"
    )
    parser.add_argument(
        "--prune-criterion", default="l2", help="pruning importance: l1, l2, taylor, random"
    )
    parser.add_argument(
        "--protect",
        action="append",
        default=[],
        metavar="MODULE",
        help="module path pruning must leave alone (repeatable)",
    )
    parser.add_argument(
        "--distill-into",
        metavar="FILE.py:FUNCTION",
        help="train this smaller student from the model",
    )
    parser.add_argument("--sparsity", help="semi-structured sparsity pattern, e.g. 2:4")
    parser.add_argument(
        "--qat", action="store_true", help="quantisation-aware training when PTQ misses the budget"
    )
    parser.add_argument(
        "--target",
        default="cpu",
        choices=["cpu", "gpu", "edge"],
        help="which backends and precisions to try by default",
    )
    parser.add_argument(
        "--tune-seconds",
        type=float,
        default=0.0,
        metavar="S",
        help="also try a TVM library tuned by MetaSchedule for at most S seconds (default 0: no "
        "tuning)",
    )
    parser.add_argument(
        "--preprocess",
        type=Path,
        help="pre/post-processing config (JSON) to package with the model",
    )


def register(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="build a verified, benchmarked deploy package")
    build.add_argument(
        "model",
        help="file.onnx | file.py:function | file.pt | hf:DIR | paddle:DIR | tf:DIR | file.keras | "
        "caffe:NET.prototxt:WEIGHTS.caffemodel | example:NAME",
    )
    build.add_argument(
        "--out", type=Path, help="package folder to write (default: none, just report)"
    )
    add_build_options(build)
    build.set_defaults(run=run_build)
    demo = sub.add_parser("demo", help="the whole road on a built-in example, with a table")
    demo.add_argument("--example", default="digits", help="digits (default) or minilm")
    demo.add_argument(
        "--out", type=Path, help="where to keep the package (default: a temporary folder)"
    )
    demo.add_argument("--threads", type=positive_int)
    demo.set_defaults(run=run_demo)
    examples = sub.add_parser("examples", help="list the built-in examples")
    examples.set_defaults(run=run_examples)


def build_options(args: argparse.Namespace):
    """The library's ``BuildOptions`` from parsed ``build`` arguments."""
    from shipyard.backends import backend_names
    from shipyard.inputs import parse_input_shape
    from shipyard.pipeline.options import BuildOptions
    from shipyard.pipeline.plan import CHOICES, parse_list

    threads = {"threads": args.threads} if args.threads else {}
    return BuildOptions.create(
        args.model,
        weights=args.weights,
        data=args.data,
        name=args.name,
        max_drop=args.max_drop,
        backends=parse_list(args.backends, backend_names(), "backends"),
        precisions=parse_list(args.precisions, CHOICES, "precisions"),
        out=args.out,
        force=args.force,
        metric=args.metric,
        eval_fraction=args.eval_fraction,
        seed=args.seed,
        input_hints=[parse_input_shape(s) for s in args.input_shape],
        output_names=[n.strip() for n in args.output_names.split(",")]
        if args.output_names
        else None,
        image=_image_options(args),
        optimize_for=args.optimize_for,
        throughput_batch=args.throughput_batch,
        time_budget=args.time_budget,
        calibration_size=args.calibration_size,
        lossless=not args.no_fuse,
        prune=args.prune,
        prune_criterion=args.prune_criterion,
        protect=args.protect,
        distill_into=args.distill_into,
        sparsity=args.sparsity,
        qat=args.qat,
        target=args.target,
        tune_seconds=args.tune_seconds,
        preprocess=args.preprocess,
        **threads,
    )


def _image_options(args: argparse.Namespace):
    from shipyard.dataset import ImageOptions

    defaults = ImageOptions()
    return ImageOptions(
        size=_size(args.image_size) if args.image_size else None,
        mean=_floats(args.image_mean, "--image-mean") if args.image_mean else defaults.mean,
        std=_floats(args.image_std, "--image-std") if args.image_std else defaults.std,
    )


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--image-size {text!r}: expected HxW such as 224x224") from None
    return height, width


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected comma-separated numbers such as 0.5,0.5,0.5"
        ) from None


def run_build(args: argparse.Namespace) -> int:
    from shipyard.cli.console import ConsoleReporter, print_result
    from shipyard.pipeline.build import build

    result = build(build_options(args), ConsoleReporter())
    print_result(result)
    return 0 if result.chosen is not None else 1


def run_demo(args: argparse.Namespace) -> int:
    """Build a built-in example, show the table, then load the package and run it."""
    from shipyard.cli.console import ConsoleReporter, out, print_result
    from shipyard.pipeline.build import build_model

    with tempfile.TemporaryDirectory(prefix="shipyard-demo-") as scratch:
        target = args.out or Path(scratch) / "package"
        threads = {"threads": args.threads} if args.threads else {}
        result = build_model(
            f"example:{args.example}",
            ConsoleReporter(),
            out=target,
            force=args.out is None,
            **threads,
        )
        print_result(result)
        if result.package is None:
            return 1
        _show_prediction(result.package, out)
        if args.out is None:
            out.print("(the package was written to a temporary folder; pass --out DIR to keep it)")
    return 0


def _show_prediction(package: Path, out) -> None:
    import numpy as np

    import shipyard

    predictor = shipyard.load(package)
    if predictor.signature.inputs[0].dtype == "bytes":
        texts = np.array([b"Shipyard takes models to production."], dtype=object)
        embedding = next(iter(predictor.run({"text": texts}).values()))
        out.print(f"shipyard.load(package).run(text) → embedding of shape {list(embedding.shape)}")
        return
    from shipyard.sources.examples.digits import held_out

    data = held_out()
    logits = predictor.run({"image": data.inputs["image"][:8]})["logits"]
    out.print(
        f"shipyard.load(package).run(8 held-out digits) → predicted {logits.argmax(1).tolist()}, "
        f"true {data.labels[:8].tolist()}"
    )


def run_examples(args: argparse.Namespace) -> int:
    from shipyard.cli.console import out
    from shipyard.sources.examples import example_names

    for name, about in example_names().items():
        out.print(f"example:{name}  {about}")
    return 0
