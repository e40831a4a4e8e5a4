"""``shipyard`` verbs. Each parses its arguments, builds library objects and calls one function."""

from __future__ import annotations

import argparse
import importlib
import sys

from shipyard.errors import ShipyardError

VERB_MODULES = ("build_verbs", "doctor_verb", "serve_verbs", "quantize_verbs", "inspect_verb")
"""Modules under ``shipyard.cli`` with ``register(subparsers)``; each sets ``run`` on its
parsers."""


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipyard",
        description="Take a trained model to production: "
        "export, optimise, verify, benchmark, choose and serve.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(f"shipyard.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``shipyard`` command; returns the exit code."""
    args = make_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ShipyardError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
