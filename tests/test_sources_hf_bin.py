"""``hf:DIR`` folders that carry only ``pytorch_model.bin``: read with weights_only, never a full
unpickle."""

from __future__ import annotations

import shutil

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from shipyard.errors import SourceError  # noqa: E402
from shipyard.sources import load_source  # noqa: E402


@pytest.fixture
def bin_folder(tmp_path):
    from safetensors.torch import load_file

    from shipyard.sources.examples.minilm import model_folder

    original = model_folder()
    folder = tmp_path / "minilm-bin"
    shutil.copytree(
        original, folder, ignore=shutil.ignore_patterns("*.safetensors", "onnx", "openvino")
    )
    torch.save(load_file(original / "model.safetensors"), folder / "pytorch_model.bin")
    return original, folder


@pytest.mark.slow
def test_a_pytorch_model_bin_folder_loads_like_its_safetensors_twin(bin_folder):
    original, folder = bin_folder
    with_safetensors, with_bin = load_source(f"hf:{original}"), load_source(f"hf:{folder}")
    assert with_bin.signature == with_safetensors.signature and with_bin.task == "embedding"
    assert with_bin.content_hash != with_safetensors.content_hash
    ids = torch.randint(0, 1000, (2, 9))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.testing.assert_close(with_bin.module(ids, mask), with_safetensors.module(ids, mask))


def test_a_pytorch_model_bin_that_would_run_code_is_refused(bin_folder, tmp_path):
    _, folder = bin_folder
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("unpickled",))

    torch.save({"embeddings.word_embeddings.weight": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(SourceError, match="pytorch_model.bin holds more than tensors .* refused"):
        load_source(f"hf:{folder}")
    assert not marker.exists()


def test_a_folder_without_weights_says_which_files_it_expects(bin_folder):
    _, folder = bin_folder
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(
        SourceError, match="no weights; expected model.safetensors or pytorch_model.bin"
    ):
        load_source(f"hf:{folder}")
