import subprocess
import sys

import numpy as np
import pytest


def shipyard(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "shipyard.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


def test_import_and_help_do_not_load_ml_frameworks():
    code = (
        "import sys, shipyard, shipyard.cli.main as m; m.make_parser();"
        "heavy = [x for x in ('torch', 'onnx', 'onnxruntime', 'openvino', 'transformers') if x in "
        "sys.modules];"
        "print(heavy); assert not heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _assert_one_clear_error(done, *fragments):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [l for l in done.stderr.splitlines() if l.startswith("error:") or "error:" in l]
    assert lines, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


def test_bad_inputs_get_one_sentence_and_a_non_zero_exit(tmp_path, small_cnn):
    model = f"{small_cnn['model']}:make"
    _assert_one_clear_error(shipyard("build", str(tmp_path / "missing.onnx")), "does not exist")
    _assert_one_clear_error(
        shipyard("build", f"{small_cnn['model']}:nothing"), "has no function 'nothing'"
    )
    _assert_one_clear_error(
        shipyard("build", f"{small_cnn['model']}:broken"), "raised RuntimeError"
    )
    bad = tmp_path / "bad.npz"
    np.savez(bad, pixels=np.zeros((3, 3, 16, 16), np.float32))
    _assert_one_clear_error(
        shipyard(
            "build",
            model,
            "--weights",
            str(small_cnn["weights"]),
            "--data",
            str(bad),
            "--input-shape",
            "image:1x3x16x16",
        ),
        "expected one named 'image'",
    )
    _assert_one_clear_error(
        shipyard("build", "example:digits", "--backends", "tensorflow"), "unknown tensorflow"
    )
    _assert_one_clear_error(
        shipyard("build", "example:digits", "--max-drop", "lots"), "not a number"
    )
    _assert_one_clear_error(
        shipyard("build", "example:digits", "--input-shape", "image:axb"), "--input-shape"
    )
    _assert_one_clear_error(
        shipyard("build", "example:digits", "--weights", str(small_cnn["weights"])),
        "--weights goes with a file.py:function",
    )


def test_debug_flag_shows_the_traceback(tmp_path):
    done = shipyard("--debug", "build", str(tmp_path / "missing.onnx"))
    assert done.returncode != 0 and "Traceback" in done.stderr


@pytest.mark.slow
def test_build_from_factory_writes_a_package_and_prints_the_table(tmp_path, small_cnn):
    out = tmp_path / "pkg"
    done = shipyard(
        "build",
        f"{small_cnn['model']}:make",
        "--weights",
        str(small_cnn["weights"]),
        "--data",
        str(small_cnn["data"]),
        "--max-drop",
        "1",
        "--backends",
        "torch,onnxruntime",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "chosen:" in done.stdout and "baseline: torch eager" in done.stdout
    assert (out / "manifest.json").is_file()


@pytest.mark.slow
def test_demo_runs_the_whole_road():
    done = shipyard("demo")
    assert done.returncode == 0, done.stderr
    assert "chosen:" in done.stdout and "predicted" in done.stdout


def test_doctor_lists_the_backends():
    done = shipyard("doctor")
    assert done.returncode == 0, done.stderr
    for name in ("torch", "onnxruntime", "openvino"):
        assert name in done.stdout
