import pickle
from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import SourceError
from shipyard.sources import InputHint, load_source

torch = pytest.importorskip("torch")

IMAGE = [InputHint("image", "float32", (3, 16, 16))]


def test_factory_with_safetensors_gives_signature_and_stable_hash(small_cnn):
    spec = f"{small_cnn['model']}:make"
    source = load_source(spec, small_cnn["weights"], IMAGE, ["logits"])
    assert source.kind == "torch" and source.task == "classification"
    assert source.signature.inputs[0].shape == ("batch", 3, 16, 16)
    assert source.signature.outputs[0].shape == ("batch", 4)
    again = load_source(spec, small_cnn["weights"], IMAGE, ["logits"])
    assert again.content_hash == source.content_hash
    untrained = load_source(spec, None, IMAGE, ["logits"])
    assert untrained.content_hash != source.content_hash


def test_state_dict_pt_file_is_read_with_weights_only(small_cnn, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(small_cnn["weights"]))
    pt = tmp_path / "weights.pt"
    torch.save(state, pt)
    source = load_source(f"{small_cnn['model']}:make", pt, IMAGE)
    assert source.kind == "torch"


class _Evil:
    def __reduce__(self):
        return (Path("/tmp/shipyard-pwned").write_text, ("pwned",))


def test_a_pickle_that_runs_code_is_refused(small_cnn, tmp_path):
    evil = tmp_path / "evil.pt"
    with evil.open("wb") as handle:
        pickle.dump({"x": _Evil()}, handle)
    with pytest.raises(SourceError, match="cannot read weights"):
        load_source(f"{small_cnn['model']}:make", evil, IMAGE)
    assert not Path("/tmp/shipyard-pwned").exists()


def test_weights_that_do_not_fit_name_the_keys(small_cnn, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(small_cnn["weights"]))
    state.pop("head.2.bias")
    state["extra.weight"] = torch.zeros(2)
    state["head.2.weight"] = torch.zeros(5, 32)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(SourceError) as error:
        load_source(f"{small_cnn['model']}:make", bad, IMAGE)
    message = str(error.value)
    assert "missing keys head.2.bias" in message
    assert "unexpected keys extra.weight" in message
    assert "head.2.weight [5, 32] vs model [4, 32]" in message


@pytest.mark.parametrize(
    "factory, expected",
    [
        ("nope", "has no function 'nope'"),
        ("broken", "raised RuntimeError: cannot build this model"),
        ("not_a_module", "returned int; expected a torch.nn.Module"),
    ],
)
def test_bad_factories_get_one_clear_sentence(small_cnn, factory, expected):
    with pytest.raises(SourceError, match=expected):
        load_source(f"{small_cnn['model']}:{factory}", None, IMAGE)


def test_missing_and_corrupt_model_files(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        load_source(str(tmp_path / "missing.onnx"))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf at all")
    with pytest.raises(SourceError, match="not a valid ONNX model"):
        load_source(str(corrupt))
    with pytest.raises(SourceError, match="cannot tell what model"):
        load_source("model.h5")
    with pytest.raises(SourceError, match="unknown example"):
        load_source("example:nothing")


def test_factory_without_input_shapes_says_how_to_give_them(small_cnn):
    with pytest.raises(SourceError, match="--input-shape"):
        load_source(f"{small_cnn['model']}:make", small_cnn["weights"], [])


def test_onnx_and_torchscript_sources(small_cnn, tmp_path):
    source = load_source(f"{small_cnn['model']}:make", small_cnn["weights"], IMAGE, ["logits"])
    onnx_path = tmp_path / "cnn.onnx"
    x = torch.zeros(1, 3, 16, 16)
    torch.onnx.export(
        source.module,
        (x,),
        str(onnx_path),
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    from_onnx = load_source(str(onnx_path))
    assert from_onnx.kind == "onnx"
    assert from_onnx.signature.inputs[0].shape == ("batch", 3, 16, 16)
    assert from_onnx.signature.outputs[0].name == "logits"
    ts_path = tmp_path / "cnn.pt"
    torch.jit.save(torch.jit.trace(source.module, (x,)), str(ts_path))
    from_ts = load_source(str(ts_path), None, IMAGE)
    assert from_ts.kind == "torchscript"
    state_dict_as_model = tmp_path / "state.pt"
    torch.save(source.module.state_dict(), state_dict_as_model)
    with pytest.raises(SourceError, match="not a TorchScript archive"):
        load_source(str(state_dict_as_model), None, IMAGE)


def test_example_digits_is_trained_and_held_out():
    source = load_source("example:digits")
    data = source.example_data
    assert data.labels is not None and len(data) > 500
    with torch.no_grad():
        predicted = source.module(torch.from_numpy(data.inputs["image"])).argmax(1).numpy()
    assert (predicted == data.labels).mean() > 0.95


@pytest.mark.slow
def test_hf_folder_carries_tokenizer_and_pooling():
    from shipyard.sources.examples.minilm import model_folder

    source = load_source(f"hf:{model_folder()}")
    assert source.task == "embedding"
    assert source.text is not None and source.text.tokenizer_file.name == "tokenizer.json"
    assert source.signature.input_names == ["input_ids", "attention_mask"]
    assert source.signature.outputs[0].shape == ("batch", 384)
    assert np.isfinite(float(source.text.max_length))
