"""``shipyard export triton``: the repository parses as Triton's own ModelConfig and holds the
model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import shipyard
from shipyard.backends.fake import write_fake_package
from shipyard.cli.main import main
from shipyard.errors import PackageError
from shipyard.export.triton import TritonOptions, export_triton

pytestmark = pytest.mark.backend("tritonclient")


def parse_config(folder):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


@pytest.mark.backend("onnxruntime")
def test_onnx_package_exports_a_repository_triton_accepts(digits_package, tmp_path):
    import onnxruntime as ort

    assert (
        main(
            [
                "export",
                "triton",
                str(digits_package),
                "--out",
                str(tmp_path / "repo"),
                "--max-batch-size",
                "16",
                "--instances",
                "2",
                "--max-queue-delay-ms",
                "3",
            ]
        )
        == 0
    )
    folder = tmp_path / "repo" / "digits"
    config = parse_config(folder)
    assert (config.name, config.backend, config.platform) == (
        "digits",
        "onnxruntime",
        "onnxruntime_onnx",
    )
    assert (
        config.max_batch_size == 16 and config.dynamic_batching.max_queue_delay_microseconds == 3000
    )
    assert (
        config.instance_group[0].count == 2
        and config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    )
    from tritonclient.grpc import model_config_pb2

    fp32 = model_config_pb2.DataType.Value("TYPE_FP32")
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("image", fp32, [1, 8, 8])
    ]
    assert [(t.name, list(t.dims)) for t in config.output] == [("logits", [10])]
    session = ort.InferenceSession(
        str(folder / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).random((2, 1, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(
        session.run(None, {"image": x})[0],
        shipyard.load(digits_package).run({"image": x})["logits"],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.backend("openvino")
def test_openvino_package_exports_xml_and_bin(digits_package, tmp_path):
    import openvino as ov

    from shipyard.package.trust import seal

    package = tmp_path / "digits_ov"
    shutil.copytree(digits_package, package)
    manifest = json.loads((package / "manifest.json").read_text())
    ov.save_model(
        ov.convert_model(str(package / manifest["model_file"])),
        str(package / "model" / "model.xml"),
        compress_to_fp16=False,
    )
    manifest.update(backend="openvino", artifact_format="openvino", model_file="model/model.xml")
    seal(
        package, manifest
    )  # files were added: a package is read only with digests of all its files
    folder = export_triton(package, tmp_path / "repo", TritonOptions(max_batch_size=8))
    config = parse_config(folder)
    assert config.backend == "openvino" and config.default_model_filename == "model.xml"
    assert {p.name for p in (folder / "1").iterdir()} == {"model.xml", "model.bin"}
    compiled = ov.Core().compile_model(
        str(folder / "1" / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"}
    )
    x = np.random.default_rng(1).random((2, 1, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(
        compiled(x)[0],
        shipyard.load(digits_package).run({"image": x})["logits"],
        rtol=1e-4,
        atol=1e-4,
    )


def test_what_no_native_backend_runs_gets_the_python_backend(tmp_path):
    """A text package: Triton's Python backend, the package copied in, ``model.py`` the fixed
    template."""
    from shipyard.export import triton_model

    package = write_fake_package(tmp_path / "words", "words", text=True)
    folder = export_triton(package, tmp_path / "repo", TritonOptions(max_batch_size=8, instances=2))
    config = parse_config(folder)
    assert (config.backend, config.platform, config.max_batch_size) == ("python", "", 8)
    from tritonclient.grpc import model_config_pb2

    string = model_config_pb2.DataType.Value("TYPE_STRING")
    assert [(t.name, t.data_type, list(t.dims), t.HasField("reshape")) for t in config.input] == [
        ("text", string, [1], True)
    ]
    assert config.instance_group[0].count == 2
    version = folder / "1"
    assert (version / "model.py").read_bytes() == open(triton_model.__file__, "rb").read()
    assert json.loads((version / "shipyard.json").read_text()) == {
        "package": "package",
        "threads": 1,
        "trust_code": False,
    }
    assert json.loads((version / "package" / "manifest.json").read_text())["name"] == "words"
    assert (version / "package" / "tokenizer.json").is_file()
    readme = (tmp_path / "repo" / "README.md").read_text()
    assert "| `words` | `python` |" in readme and "numpy<2" in readme
    assert "this package runs on `fake`" in readme


@pytest.mark.backend("onnxruntime")
@pytest.mark.backend("onnxruntime")
def test_a_package_whose_batch_rows_are_not_its_samples_is_exported_unbatched(tmp_path, caplog):
    """Triton's dynamic batcher would join such a model's requests and hand each client rows that
    depend on the others': the export proves the batch axis as ``shipyard serve`` does."""
    from tiny_packages import linear_package

    repo = tmp_path / "repo"
    for name, mixing in (("apart", False), ("mixing", True)):
        package = linear_package(tmp_path / name, name, mixing=mixing)
        export_triton(package, repo, TritonOptions(max_batch_size=8))
    apart, mixing = parse_config(repo / "apart"), parse_config(repo / "mixing")
    assert apart.max_batch_size == 8 and apart.HasField("dynamic_batching")
    assert mixing.max_batch_size == 8 and not mixing.HasField("dynamic_batching")
    assert "model 'mixing': Triton runs each request alone: output 'y': row 0" in caplog.text
    rows = (repo / "README.md").read_text().splitlines()
    assert [("dynamic_batching" in row) for row in rows if row.startswith("| `")] == [False, True]


@pytest.mark.backend("onnxruntime")
def test_python_backend_is_chosen_on_request_and_a_reexport_replaces_the_version(
    digits_package, tmp_path
):
    repo = tmp_path / "repo"
    export_triton(digits_package, repo)
    assert (repo / "digits" / "1" / "model.onnx").is_file()
    export_triton(digits_package, repo, TritonOptions(python_backend=True))
    assert parse_config(repo / "digits").backend == "python"
    assert sorted(p.name for p in (repo / "digits" / "1").iterdir()) == [
        "model.py",
        "package",
        "shipyard.json",
    ]


def test_names_triton_cannot_use_and_links_out_of_the_package_are_refused(tmp_path):
    package = write_fake_package(tmp_path / "fake", "fake")
    manifest = json.loads((package / "manifest.json").read_text())
    (package / "manifest.json").write_text(json.dumps({**manifest, "name": "../escape"}))
    with pytest.raises(
        PackageError, match="name '../escape' is not allowed"
    ):  # the manifest check, first
        export_triton(package, tmp_path / "repo")
    (package / "manifest.json").write_text(json.dumps(manifest))
    (package / "model" / "secret").symlink_to("/etc/hostname")
    with pytest.raises(PackageError, match="holds a symlink model/secret"):
        export_triton(package, tmp_path / "repo")
    assert not (tmp_path / "escape").exists()


def test_one_value_per_sample_is_written_as_triton_documents_it():
    """Triton refuses empty ``dims``: a (batch,) tensor is ``dims: [1]`` reshaped to no dims."""
    pytest.importorskip("tritonclient.grpc")
    from shipyard.export.triton import config_text
    from shipyard.records import Signature, TensorSpec
    from shipyard.triton_config import parse_config

    signature = Signature(
        (TensorSpec("x", "float32", ("batch", 4)),), (TensorSpec("label", "int64", ("batch",)),)
    )
    config = parse_config(config_text("m", "onnx", signature, TritonOptions(), threads=1))
    (output,) = config.output
    assert (
        list(output.dims) == [1] and output.HasField("reshape") and list(output.reshape.shape) == []
    )
    assert list(config.input[0].dims) == [4] and not config.input[0].HasField("reshape")


def test_a_package_that_carries_code_exports_to_python_only_with_consent(tmp_path):
    from shipyard.errors import PackageError
    from shipyard.package.trust import seal

    package = write_fake_package(tmp_path / "words", "words", text=True)
    (package / "model" / "custom_op.py").write_text("print('runs at load')\n")
    seal(package, json.loads((package / "manifest.json").read_text()))
    with pytest.raises(PackageError, match="trust"):
        export_triton(package, tmp_path / "repo")
    folder = export_triton(package, tmp_path / "repo", TritonOptions(trust_code=True))
    assert json.loads((folder / "1" / "shipyard.json").read_text())["trust_code"] is True
