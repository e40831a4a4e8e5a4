"""``--precisions auto``: which precisions each kind of CPU gets, from fake feature sets."""

from __future__ import annotations

import warnings

import pytest

from shipyard.package.cpu_check import cpu_requirements, missing, warn_if_missing
from shipyard.quantize.auto import (
    expand_precisions,
    features_for,
    int8_full_range,
    resolve_auto,
)
from shipyard.records import Candidate, Recipe, Timing

AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
"""An AVX2-only machine (this project has run on an AVX2 AMD EPYC)."""
AVX512_BF16 = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16"}
"""AVX512 with VNNI and BF16 but no AMX (an AMD EPYC Zen 4)."""
AMX = AVX2 | {"avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8"}
"""A Sapphire Rapids Xeon."""
AMX_FP16 = AMX | {"avx512_fp16", "amx_fp16"}
"""A Granite Rapids Xeon."""


@pytest.mark.parametrize(
    "flags, expected",
    [
        (AVX2, ["fp32", "int8"]),
        (AVX512_BF16, ["fp32", "bf16", "int8"]),
        (AMX, ["fp32", "bf16", "int8"]),
        (AMX_FP16, ["fp32", "bf16", "fp16", "int8"]),
    ],
)
def test_auto_follows_the_cpu(flags, expected):
    assert resolve_auto(flags, real_data=True, max_drop=1.0).precisions == expected


def test_without_real_data_only_what_needs_no_calibration():
    choice = resolve_auto(AMX_FP16, real_data=False, max_drop=1.0)
    assert choice.precisions == ["fp32", "bf16", "fp16"]
    assert any("no INT8" in n for n in choice.notes)
    assert resolve_auto(AVX2, real_data=False, max_drop=1.0).precisions == ["fp32"]


def test_a_zero_budget_keeps_fp32_only():
    assert resolve_auto(AMX, real_data=True, max_drop=0.0).precisions == ["fp32"]


def test_auto_is_the_default_and_explicit_lists_are_kept():
    assert expand_precisions(None, AVX512_BF16, True, 1.0).precisions == ["fp32", "bf16", "int8"]
    assert expand_precisions(["fp32", "fp16"], AMX, True, 1.0).precisions == ["fp32", "fp16"]
    assert expand_precisions(["fp16", "auto"], AVX2, True, 1.0).precisions == [
        "fp16",
        "fp32",
        "int8",
    ]


def test_int8_weights_use_8_bits_only_with_vnni_or_amx():
    assert not int8_full_range(AVX2)
    assert int8_full_range(AVX512_BF16) and int8_full_range(AMX)
    assert int8_full_range(AVX2 | {"avx_vnni"})


def test_the_features_a_choice_depends_on():
    assert features_for("bf16", {"inference_precision": "bf16"}, AMX) == ("amx_bf16", "avx512_bf16")
    assert features_for("bf16", {}, AVX512_BF16) == ("avx512_bf16",)
    assert features_for("fp16", {}, AMX_FP16) == ()  # FP16 weights only: nothing special needed
    assert features_for("fp16", {"inference_precision": "f16"}, AMX_FP16) == (
        "amx_fp16",
        "avx512_fp16",
    )
    assert features_for("int8", {}, AVX2) == ()  # 7-bit weights run anywhere
    assert features_for("int8", {}, AMX) == ("amx_int8", "avx512_vnni")
    assert features_for("fp32", {}, AMX) == ()


def _timed(backend: str, precision: str, p50: float, **runtime) -> Candidate:
    candidate = Candidate(
        backend, precision, Recipe().then("export", format="onnx"), runtime=runtime
    )
    candidate.timing = Timing(p50, p50, p50, p50, 10)
    from shipyard.records import Verification

    candidate.verification = Verification("agreement", 100.0, 100.0, 0.0, True, 10)
    return candidate


def test_requirements_say_what_running_without_them_costs():
    fp32 = _timed("openvino", "fp32", 20.0, inference_precision="f32")
    bf16 = _timed("openvino", "bf16", 12.5, inference_precision="bf16")
    needs = cpu_requirements(bf16, [fp32, bf16], AVX512_BF16)
    assert needs["any_of"] == ["amx_bf16", "avx512_bf16"] and needs["built_with"] == ["avx512_bf16"]
    assert "20.00 ms" in needs["without"] and "1.60×" in needs["without"]
    assert cpu_requirements(fp32, [fp32, bf16], AVX512_BF16) is None
    assert missing(needs, AVX2) and not missing(needs, AMX)


def test_loading_on_a_cpu_without_them_warns_once():
    bf16 = _timed("openvino", "bf16", 12.5, inference_precision="bf16")
    needs = cpu_requirements(bf16, [bf16], AMX)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert warn_if_missing("/pkg/a", needs, AVX2)
        assert not warn_if_missing("/pkg/a", needs, AVX2)
        assert not warn_if_missing("/pkg/b", needs, AVX512_BF16)
    assert (
        len(caught) == 1
        and "amx_bf16" in str(caught[0].message)
        and "FP32" in str(caught[0].message)
    )


def test_shipyard_load_warns_once_when_this_cpu_lacks_what_the_package_needs(
    digits_package, tmp_path
):
    import json
    import shutil

    import shipyard

    package = tmp_path / "pkg"
    shutil.copytree(digits_package, package)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["cpu_requirements"] = {
        "precision": "bf16",
        "any_of": ["no_such_flag"],
        "built_with": ["no_such_flag"],
        "without": "it runs at the FP32 speed, 9.99 ms instead of 5.00 ms",
    }
    (package / "manifest.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shipyard.load(package).close()
        shipyard.load(package).close()
    messages = [str(w.message) for w in caught if "no_such_flag" in str(w.message)]
    assert len(messages) == 1 and "9.99 ms instead of 5.00 ms" in messages[0]
