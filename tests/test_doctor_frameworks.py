"""``shipyard doctor`` lists the framework extras (paddle, tf, caffe) as they really are here."""

from __future__ import annotations

import importlib.util
import json

from shipyard.cli.main import main
from shipyard.sources.caffe.converter import installed_version


def _frameworks(capsys) -> dict:
    assert main(["doctor", "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)["frameworks"]}


def test_doctor_lists_each_framework_extra_with_its_real_state(capsys):
    rows = _frameworks(capsys)
    assert set(rows) == {"paddle", "tf", "caffe"}
    installed = {
        "paddle": all(importlib.util.find_spec(m) for m in ("paddle", "paddle2onnx")),
        "tf": all(importlib.util.find_spec(m) for m in ("tensorflow", "tf2onnx")),
        "caffe": bool(installed_version()),
    }
    for name, row in rows.items():
        assert row["available"] == installed[name], name
        assert (row["reason"] == "") == installed[name]
        assert installed[name] or "pip install" in row["reason"]
        assert bool(row["version"]) == installed[name] or name != "caffe"


def test_caffe_onnx_in_another_folder_is_reported_missing_with_the_command(
    capsys, monkeypatch, tmp_path
):
    monkeypatch.setenv("SHIPYARD_CAFFE_ONNX", str(tmp_path / "nothing-here"))
    row = _frameworks(capsys)["caffe"]
    assert not row["available"]
    assert (
        f"--target {tmp_path / 'nothing-here'}" in row["reason"]
        and "caffe-onnx==0.1.2" in row["reason"]
    )


def test_doctor_table_has_the_frameworks(capsys):
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "model frameworks (extras)" in text and "paddle" in text and "caffe" in text
