"""``tf:DIR`` and ``.keras``: a Keras model saved both ways, taken the whole road and compared with
TensorFlow.

Marked ``tf``: importing TensorFlow alone takes seconds; ``pytest -m tf`` runs this group alone.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf2onnx") is None:
    pytest.skip(
        "the tf extra is not installed: pip install 'shipyard[tf]'", allow_module_level=True
    )

from framework_models import assert_matches_framework, keras_mlp, random_npz  # noqa: E402

import shipyard  # noqa: E402
from shipyard.bench import BenchConfig  # noqa: E402
from shipyard.errors import SourceError  # noqa: E402
from shipyard.pipeline.build import BuildOptions, build  # noqa: E402
from shipyard.sources import load_source  # noqa: E402

pytestmark = [pytest.mark.tf, pytest.mark.slow]
QUICK = BenchConfig(rounds=1, block_seconds=0.05, max_block=10)


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras")
    model = keras_mlp()
    model.save(folder / "mlp.keras")
    model.export(str(folder / "saved"), verbose=False)
    return folder, model


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIPYARD_CACHE", str(tmp_path / "cache"))  # every test converts for real


@pytest.mark.parametrize("form", ["saved_model", "keras"])
def test_keras_model_takes_the_whole_road(keras_files, tmp_path, form):
    folder, model = keras_files
    spec = f"tf:{folder / 'saved'}" if form == "saved_model" else str(folder / "mlp.keras")
    data = random_npz(tmp_path / "d.npz", "features", (12,))
    result = build(
        BuildOptions.create(
            spec,
            data=tmp_path / "d.npz",
            out=tmp_path / "pkg",
            precisions=["fp32", "int8"],
            bench=QUICK,
            max_drop=5,
        )
    )
    assert result.baseline.name.startswith("baseline: source in TensorFlow ")
    tried = {(c.backend, c.precision) for c in result.candidates if not c.error}
    assert {("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32")} <= tried
    manifest = json.loads((tmp_path / "pkg" / "manifest.json").read_text())
    assert [i["name"] for i in manifest["inputs"]] == ["features"] and manifest["inputs"][0][
        "shape"
    ] == [-1, 12]
    assert manifest["outputs"][0]["shape"] == [-1, 4]
    predictor = shipyard.load(tmp_path / "pkg")
    got = predictor.run({"features": data})[predictor.signature.output_names[0]]
    assert_matches_framework(result, got, model(data).numpy(), manifest["precision"])


def test_reference_is_tensorflow_running_the_serving_signature(keras_files):
    folder, model = keras_files
    from shipyard.frameworks import reference_session
    from shipyard.frameworks.tensorflow import TensorFlowSession

    source = load_source(f"tf:{folder / 'saved'}")
    assert source.signature.input_names == ["features"] and source.signature.outputs[0].shape == (
        "batch",
        4,
    )
    session = reference_session(source, threads=1)
    assert isinstance(session, TensorFlowSession)
    x = np.random.default_rng(3).standard_normal((5, 12)).astype(np.float32)
    np.testing.assert_allclose(
        session.run({"features": x})[source.signature.output_names[0]],
        model(x).numpy(),
        rtol=1e-5,
        atol=1e-6,
    )


def test_a_keras_file_with_python_code_is_refused(keras_files, tmp_path):
    import keras

    inputs = keras.Input((3,), name="x")
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(SourceError, match="safe mode"):
        load_source(str(tmp_path / "lambda.keras"))


def test_torch_compilers_still_load_after_tensorflow(keras_files):
    # Triton's LLVM loaded after TensorFlow's segfaulted the process; import_tensorflow loads it
    # first
    if importlib.util.find_spec("triton") is None:
        pytest.skip("torch's Triton is not installed")
    import subprocess
    import sys

    code = (
        "from shipyard.sources.tensorflow import import_tensorflow; import_tensorflow(); "
        "import transformers, triton._C.libtriton; print('alive')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "alive" in done.stdout, done.stderr[-500:]


def test_tensorflow_mistakes_get_one_sentence(tmp_path):
    with pytest.raises(
        SourceError, match="not a TensorFlow SavedModel; expected a folder with saved_model.pb"
    ):
        load_source(f"tf:{tmp_path}")
    with pytest.raises(SourceError, match="does not exist"):
        load_source(str(tmp_path / "missing.keras"))
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="cannot load .*bad.keras"):
        load_source(str(tmp_path / "bad.keras"))
