"""``shipyard debug-precision``: where a quantised model's error appears, layer by layer, worst
first."""

from __future__ import annotations

import argparse
from pathlib import Path

from shipyard.cli.args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    debug = sub.add_parser(
        "debug-precision", help="compare an INT8 model with FP32 layer by layer, worst first"
    )
    debug.add_argument(
        "model",
        help="file.onnx | file.py:function | file.pt | hf:DIR | paddle:DIR | tf:DIR | file.keras | "
        "caffe:NET.prototxt:WEIGHTS.caffemodel | example:NAME",
    )
    debug.add_argument(
        "--data", type=Path, help=".npz, .txt or image folder to calibrate and compare on"
    )
    debug.add_argument(
        "--weights", type=Path, help="safetensors or state-dict file for a file.py:function model"
    )
    debug.add_argument(
        "--backend", default="onnxruntime", help="onnxruntime (default), openvino or ncnn"
    )
    debug.add_argument(
        "--method",
        help="static-qdq | nncf-qdq | dynamic (onnxruntime), nncf (openvino), ncnn-int8 (ncnn); "
        "default by model",
    )
    debug.add_argument(
        "--calibration",
        default="minmax",
        choices=["minmax", "entropy", "percentile"],
        help="activation ranges (ncnn: minmax or entropy)",
    )
    debug.add_argument(
        "--samples", type=positive_int, default=16, help="samples compared layer by layer"
    )
    debug.add_argument("--top", type=positive_int, default=15, help="how many layers to show")
    debug.set_defaults(run=run_debug_precision)


def run_debug_precision(args: argparse.Namespace) -> int:
    from rich.table import Table

    from shipyard.cli.console import out
    from shipyard.search.debug_precision import debug_precision

    report = debug_precision(
        args.model,
        args.data,
        args.weights,
        args.backend,
        args.method,
        args.calibration,
        args.samples,
    )
    table = Table(
        title=f"{report.candidate}: layers by the error they add ({report.samples} samples)"
    )
    for column in (
        "#",
        "layer (node)",
        "op",
        "output tensor",
        "error added",
        "error at output",
        "cosine",
    ):
        table.add_column(
            column,
            justify="right"
            if column in ("#", "error added", "error at output", "cosine")
            else "left",
        )
    for rank, layer in enumerate(report.layers[: args.top], start=1):
        table.add_row(
            str(rank),
            layer.node,
            layer.op_type,
            layer.tensor,
            f"{layer.introduced:.4f}",
            f"{layer.error:.4f}",
            f"{layer.cosine:.5f}",
        )
    out.print(table)
    if report.output_cosine is not None:
        out.print(f"model output cosine vs FP32: {report.output_cosine:.5f}")
    out.print(
        "error = mean over channels of ‖int8 − fp32‖ / ‖fp32‖; keep the top layers in FP32 with "
        "`shipyard build … --precisions int8` (the build does this itself when the budget is "
        "missed)"
    )
    return 0
