"""``shipyard doctor`` against what this machine really has."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

from shipyard.backends import backend_names, get_backend
from shipyard.cli.main import main


def _doctor_json(capsys) -> dict:
    assert main(["doctor", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_doctor_lists_every_backend_with_its_real_state(capsys):
    report = _doctor_json(capsys)
    rows = {row["name"]: row for row in report["backends"]}
    assert set(rows) == set(backend_names()) - {"fake"}
    for name, row in rows.items():
        ok, why = get_backend(name).available()
        assert row["available"] == ok, name
        assert (row["reason"] == "") == ok and (
            "pip install" in row["reason"] or ok or "GPU" in row["reason"]
        )
    modules = {
        "ncnn": ("ncnn", "ncnn"),
        "mnn": ("MNN", "MNN"),
        "tvm": ("tvm", "apache-tvm"),
        "onnxruntime": ("onnxruntime", "onnxruntime"),
        "openvino": ("openvino", "openvino"),
    }
    for name, (module, package) in modules.items():
        installed = importlib.util.find_spec(module) is not None
        assert rows[name]["available"] == installed
        if installed:
            assert rows[name]["version"] == importlib.metadata.version(package)


def test_doctor_describes_the_machine(capsys):
    machine = _doctor_json(capsys)["machine"]
    assert machine["cores"] == os.cpu_count()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = next(
        (
            line.split(":", 1)[1].split()
            for line in cpuinfo.splitlines()
            if line.startswith("flags")
        ),
        [],
    )
    assert machine["flags"]["AVX2"] == ("avx2" in flags)
    assert machine["flags"]["AVX-512"] == ("avx512f" in flags)
    assert machine["flags"]["AMX"] == ("amx_tile" in flags)
    assert isinstance(machine["gpus"], list)


def test_doctor_table_names_each_backend_and_the_gpu_line(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    for name in ("ncnn", "mnn", "tvm", "aoti", "tensorrt", "onnxruntime-cuda", "onnxruntime-trt"):
        assert name in text
    assert "CPU features: AVX2" in text and "GPU: " in text
