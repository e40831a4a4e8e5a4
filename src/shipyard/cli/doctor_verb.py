"""``shipyard doctor``: which backends work here and what the machine is."""

from __future__ import annotations

import argparse
import importlib.metadata


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="which backends work here, and the machine")
    doctor.set_defaults(run=run_doctor)


_PACKAGES = {"torch": "torch", "torchscript": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}


def run_doctor(args: argparse.Namespace) -> int:
    from rich.table import Table

    from shipyard.backends import get_backend
    from shipyard.build.package import machine_description
    from shipyard.cli.console import out

    table = Table(title="backends")
    for column in ("backend", "available", "version", "how to get it"):
        table.add_column(column)
    for name, package in _PACKAGES.items():
        ok, why = get_backend(name).available()
        table.add_row(name, "yes" if ok else "no", _version(package), "" if ok else why)
    out.print(table)
    machine = machine_description()
    out.print(f"machine: {machine['cpu']}, {machine['cores']} cores, flags {', '.join(machine['cpu_flags']) or 'none'}")
    return 0


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "–"
