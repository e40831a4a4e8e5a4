"""BF16 candidates: built, verified and timed like the rest; their packages load and run in BF16."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_passed

from shipyard.bench import BenchConfig
from shipyard.quantize.auto import BF16_FEATURES, cpu_flags

QUICK = BenchConfig(rounds=1, block_seconds=0.05, max_block=10)
NATIVE_BF16 = any(f in cpu_flags() for f in BF16_FEATURES)


def _build(small_cnn, out, backends, precisions):
    from shipyard.pipeline.build import build
    from shipyard.pipeline.options import BuildOptions

    return build(
        BuildOptions.create(
            f"{small_cnn['model']}:make",
            weights=small_cnn["weights"],
            data=small_cnn["data"],
            backends=backends,
            precisions=precisions,
            out=out,
            bench=QUICK,
            max_drop=5.0,
        )
    )


def _packaged(folder):
    from shipyard.records import Artifact, Signature

    manifest = json.loads((folder / "manifest.json").read_text())
    artifact = Artifact(
        folder / manifest["model_file"],
        manifest["artifact_format"],
        Signature.from_json(manifest["model_signature"]),
    )
    return manifest, artifact


def _bf16_representable(values: np.ndarray) -> bool:
    """Every float32 value has a zero low half: it came out of BF16 arithmetic."""
    return bool((np.ascontiguousarray(values, np.float32).view(np.uint32) & 0xFFFF == 0).all())


@pytest.mark.backend("openvino")
def test_openvino_bf16_is_verified_timed_packaged_and_loaded_in_bf16(small_cnn, tmp_path):
    import shipyard
    from shipyard.backends import get_backend

    result = _build(small_cnn, tmp_path / "pkg", ["openvino"], ["fp32", "bf16"])
    assert_passed(result, ["openvino/fp32", "openvino/bf16"])
    by_key = {c.key: c for c in result.candidates}
    fp32, bf16 = by_key["openvino/fp32"], by_key["openvino/bf16"]
    assert bf16.timing.calls > 0 and fp32.timing.calls > 0
    assert bf16.runtime == {"inference_precision": "bf16"} and fp32.runtime == {
        "inference_precision": "f32"
    }
    assert bf16.recipe == fp32.recipe  # one IR, two ways to run it
    candidates = json.loads((tmp_path / "pkg" / "candidates.json").read_text())
    assert {"inference_precision": "bf16"} in [c["runtime"] for c in candidates]
    manifest, ir = _packaged(tmp_path / "pkg")
    assert manifest["runtime"] == result.chosen.runtime
    # OpenVINO's own default is bf16 on BF16 CPUs: the FP32 candidate must ask for f32, and gets it.
    assert (
        get_backend("openvino").load(ir, 1, inference_precision="f32").inference_precision == "f32"
    )
    if NATIVE_BF16:
        assert (
            get_backend("openvino").load(ir, 1, inference_precision="bf16").inference_precision
            == "bf16"
        )
        if result.chosen is bf16:
            assert shipyard.load(tmp_path / "pkg").session.inference_precision == "bf16"
            assert set(manifest["cpu_requirements"]["built_with"]) <= set(BF16_FEATURES)


@pytest.mark.backend("openvino")
def test_a_runtime_option_the_backend_does_not_take_is_refused(small_cnn, tmp_path):
    from shipyard.backends import get_backend
    from shipyard.errors import UsageError

    _build(small_cnn, tmp_path / "pkg", ["openvino"], ["bf16"])
    _, ir = _packaged(tmp_path / "pkg")
    with pytest.raises(UsageError, match="autocast"):
        get_backend("openvino").load(ir, 1, autocast="bf16")
    with pytest.raises(UsageError, match="'f8'"):
        get_backend("openvino").load(ir, 1, inference_precision="f8")


@pytest.mark.backend("torch")
def test_torch_bf16_package_runs_under_autocast(small_cnn, tmp_path):
    import shipyard
    from shipyard.backends import get_backend

    result = _build(small_cnn, tmp_path / "pkg", ["torch"], ["bf16"])
    assert_passed(result, ["torch/bf16"])
    assert result.chosen.key == "torch/bf16" and result.chosen.runtime == {"autocast": "bf16"}
    image = np.load(small_cnn["data"])["image"][:4]
    outputs = next(iter(shipyard.load(tmp_path / "pkg").run({"image": image}).values()))
    assert outputs.dtype == np.float32 and _bf16_representable(outputs)
    _, program = _packaged(tmp_path / "pkg")
    plain = next(iter(get_backend("torch").load(program, 1).run({"image": image}).values()))
    assert not _bf16_representable(plain)  # the same program outside autocast computes in FP32
    assert np.abs(plain - outputs).max() < 0.1 * np.abs(plain).max()
