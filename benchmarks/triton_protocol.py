"""Request behaviour, `shipyard serve` against a real Triton 2.51 serving the same package.

The digits package (ONNX Runtime) is served by `shipyard serve` and, exported with
`shipyard export triton --python-backend`, by nvidia-pytriton's `tritonserver` (environment from
`scripts/triton_env.sh`); the same corpus of one good and 24 malformed HTTP requests
(`tests/protocol_corpus.py`) goes to both, and both answers are written as a table into the
`protocol` section of docs/triton.md.

    python benchmarks/triton_protocol.py [--package DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
DOC = HERE.parent / "docs" / "triton.md"
MAX_BATCH = 8


def digits_package(folder: Path) -> Path:
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build

    out = folder / "digits"
    build(
        BuildOptions.create(
            "example:digits",
            out=out,
            backends=["onnxruntime"],
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    return out


def compare(package: Path, work: Path) -> list[tuple[str, object, object]]:
    """Each corpus case with our answer and Triton's."""
    from protocol_corpus import Answer, corpus, send
    from triton_server import running_triton, triton_env

    from shipyard.export.triton import TritonOptions, export_triton
    from shipyard.serve import BatchConfig, ServeOptions, Server, ServerConfig

    env, why = triton_env()
    if env is None:
        raise SystemExit(why)
    export_triton(
        package, work / "repo", TritonOptions(max_batch_size=MAX_BATCH, python_backend=True)
    )
    ours = Server(
        [package],
        ServerConfig(http_port=0, grpc_port=None),
        ServeOptions(BatchConfig(max_batch_size=MAX_BATCH), max_request_bytes=1 << 20),
    )
    rows, pending = [], corpus("image", (1, 8, 8), MAX_BATCH)
    with ours.running():
        while pending:  # a request that kills Triton is recorded, and Triton restarted for the rest
            with running_triton(env, work / "repo", work / "triton.log") as triton:
                while pending:
                    case = pending.pop(0)
                    mine, theirs = (
                        send(ours.http_port, "digits", case),
                        send(triton.http_port, "digits", case),
                    )
                    crashed = theirs.status == 0 and _exited(triton.process)
                    if crashed:
                        theirs = Answer(
                            0,
                            f"no answer: tritonserver died (exit code {triton.process.returncode})",
                        )
                    rows.append((case.kind, mine, theirs))
                    if crashed:
                        break
    return rows


def _exited(process, wait_s: float = 5.0) -> bool:
    try:
        process.wait(wait_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def verdict(ours, theirs) -> str:
    if ours.status // 100 == theirs.status // 100:
        return "same class"
    if theirs.status >= 500 and 400 <= ours.status < 500:
        return f"Triton answers {theirs.status} to a client error; we answer {ours.status}"
    if theirs.status == 200:
        return "Triton accepts it; we refuse it"
    if theirs.status == 0:
        return f"Triton gives no answer; we answer {ours.status}"
    return "differs"


def report(rows) -> str:
    from _report import machine_line, markdown_table

    def cell(answer) -> str:
        text = answer.message.replace("|", "\\|").replace("\n", " ")
        return f"{answer.status} {text[:150]}".strip()

    table = markdown_table(
        ["request", "shipyard serve", "Triton 2.51 (Python backend)", "verdict"],
        [[kind, cell(ours), cell(theirs), verdict(ours, theirs)] for kind, ours, theirs in rows],
    )
    same = sum(verdict(o, t) == "same class" for _, o, t in rows)
    server_errors = [kind for kind, o, t in rows if t.status >= 500 and 400 <= o.status < 500]
    silent = [kind for kind, _, t in rows if t.status == 0]
    refused = [kind for kind, o, t in rows if t.status == 200 and o.status != 200]
    return "\n".join(
        [
            "## Request behaviour against Triton (`benchmarks/triton_protocol.py`)",
            "",
            machine_line(1),
            "",
            f"The digits package served by `shipyard serve` (max batch {MAX_BATCH}) and by "
            "nvidia-pytriton's "
            "tritonserver 2.51 from `shipyard export triton --python-backend`; each request "
            "POSTed to "
            f"`/v2/models/digits/infer` of both. {same} of {len(rows)} answers are in the same "
            "status class.",
            "",
            f"- Triton answers a 5xx to {len(server_errors)} client mistakes that we answer with a "
            "4xx: "
            f"{', '.join(server_errors) or 'none'}.",
            f"- No answer at all from Triton: {', '.join(silent) or 'none'} (the exit code is in "
            "the table; the "
            f"script restarts Triton for the requests after it).",
            f"- Requests Triton accepts and we refuse: {', '.join(refused) or 'none'}.",
            "",
            table,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--package", type=Path, help="a digits package to reuse (default: build one)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        package = args.package or digits_package(Path(tmp))
        rows = compare(package, Path(tmp))
    from _report import write_section

    text = report(rows)
    write_section("protocol", text, DOC)
    print(text)


if __name__ == "__main__":
    main()
