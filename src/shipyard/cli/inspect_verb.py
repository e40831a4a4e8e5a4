"""``shipyard inspect MODEL``: inputs, outputs, parameters, FLOPs, operators, per-layer profile."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from shipyard.cli.args import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "inspect", help="FLOPs, operators and backends, per-layer time profile of a model"
    )
    parser.add_argument(
        "model",
        help="file.onnx | file.py:function | file.pt | hf:DIR | paddle:DIR | tf:DIR | file.keras | "
        "caffe:NET.prototxt:WEIGHTS.caffemodel | example:NAME",
    )
    parser.add_argument(
        "--weights", type=Path, help="safetensors or state-dict file for a file.py:function model"
    )
    parser.add_argument(
        "--input-shape",
        action="append",
        default=[],
        metavar="NAME:1x3x224x224[:dtype]",
        help="declare an input (repeatable)",
    )
    parser.add_argument("--output-names", help="comma-separated names for the model's outputs")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="threads for the profile (default 1)"
    )
    parser.add_argument(
        "--top", type=positive_int, default=15, help="slowest layers to list (default 15)"
    )
    parser.add_argument(
        "--no-machine", action="store_true", help="skip measuring this machine's peak"
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write everything found as JSON"
    )
    parser.set_defaults(run=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    from shipyard.inputs import parse_input_shape
    from shipyard.inspect import format_text, inspect_model

    result = inspect_model(
        args.model,
        args.weights,
        [parse_input_shape(s) for s in args.input_shape],
        args.output_names.split(",") if args.output_names else None,
        threads=args.threads,
        measure=not args.no_machine,
    )
    print(format_text(result, top=args.top))
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=2))
    return 0
