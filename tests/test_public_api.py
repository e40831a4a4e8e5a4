"""The public API: ``shipyard.build`` beside ``shipyard.load``, and nothing else by accident."""

from __future__ import annotations

import pytest

import shipyard

PUBLIC = {
    "build",
    "load",
    "Predictor",
    "ShipyardError",
    "UsageError",
    "SourceError",
    "DataError",
    "ConversionError",
    "PackageError",
    "BackendUnavailable",
    "__version__",
}


def test_all_is_the_public_api():
    assert set(shipyard.__all__) == PUBLIC
    assert all(hasattr(shipyard, name) for name in shipyard.__all__)


def test_build_settings_are_routed_to_their_stage_and_frozen():
    from shipyard.pipeline.options import BuildOptions

    options = BuildOptions.create(
        "example:digits", max_drop=0.5, prune=0.3, out="pkg", seed=3, backends=["onnxruntime"]
    )
    assert options.search.max_drop == 0.5 and options.search.backends == ("onnxruntime",)
    assert options.training.prune == 0.3 and options.output.out.name == "pkg"
    assert options.data.seed == options.training.seed == 3
    with pytest.raises(AttributeError):
        options.search.max_drop = 2  # type: ignore[misc]
    assert options.replace(max_drop=2).search.max_drop == 2 and options.search.max_drop == 0.5


def test_an_unknown_setting_is_refused():
    with pytest.raises(TypeError, match="unknown setting 'max_dorp'"):
        shipyard.build("example:digits", max_dorp=1)


@pytest.mark.slow
def test_shipyard_build_runs_the_road_without_changing_what_it_was_given(tmp_path):
    from shipyard.bench import BenchConfig

    result = shipyard.build(
        "example:digits",
        backends=["onnxruntime"],
        out=tmp_path / "pkg",
        bench=BenchConfig(rounds=1, block_seconds=0.05),
    )
    assert result.chosen is not None and result.chosen.passed
    assert (
        result.options.search.backends == ("onnxruntime",)
        and result.options.search.precisions is None
    )
    assert shipyard.load(result.package).signature.inputs[0].name == "image"
