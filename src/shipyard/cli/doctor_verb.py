"""``shipyard doctor``: which backends work here (version, why not, how to get them) and the
machine."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict


def register(sub: argparse._SubParsersAction) -> None:
    doctor = sub.add_parser("doctor", help="which backends work here, and the machine")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    doctor.set_defaults(run=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from shipyard.doctor import backend_statuses, framework_statuses, machine_status

    backends, frameworks, machine = backend_statuses(), framework_statuses(), machine_status()
    if args.json:
        print(
            json.dumps(
                {
                    "backends": [asdict(b) for b in backends],
                    "frameworks": [asdict(f) for f in frameworks],
                    "machine": asdict(machine),
                },
                indent=2,
            )
        )
        return 0
    from rich.table import Table

    from shipyard.cli.console import out

    table = Table(title="backends")
    for column in ("backend", "available", "version", "why not / how to get it"):
        table.add_column(column)
    for status in backends:
        table.add_row(
            status.name,
            "yes" if status.available else "no",
            status.version or "–",
            "; ".join(([status.reason] if status.reason else []) + status.notes),
        )
    out.print(table)
    out.print(_status_table("model frameworks (extras)", "extra", frameworks))
    flags = ", ".join(
        f"{name} {'yes' if present else 'no'}" for name, present in machine.flags.items()
    )
    out.print(
        f"CPU: {machine.cpu}; {machine.cores} cores ({machine.usable_cores} usable by this process)"
    )
    out.print(f"CPU features: {flags}")
    out.print(
        "GPU: "
        + (
            "; ".join(machine.gpus)
            if machine.gpus
            else "none found (no nvidia-smi or no NVIDIA GPU)"
        )
    )
    out.print(f"Python {machine.python} on {machine.platform}")
    return 0


def _status_table(title: str, first: str, statuses: list):
    from rich.table import Table

    table = Table(title=title)
    for column in (first, "available", "version", "why not / how to get it"):
        table.add_column(column)
    for status in statuses:
        table.add_row(
            status.name,
            "yes" if status.available else "no",
            status.version or "–",
            "; ".join(([status.reason] if status.reason else []) + status.notes),
        )
    return table
