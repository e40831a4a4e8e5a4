import pytest

from shipyard.records import Recipe, Signature, TensorSpec, dtype_of_kserve, kserve_datatype


def test_kserve_datatypes_round_trip():
    for dtype in ("float32", "float16", "int64", "int8", "uint8", "bool", "bytes"):
        assert dtype_of_kserve(kserve_datatype(dtype)) == dtype
    assert kserve_datatype("float32") == "FP32"
    assert kserve_datatype("bytes") == "BYTES"


def test_unknown_dtype_names_the_choices():
    with pytest.raises(ValueError, match="complex64"):
        kserve_datatype("complex64")


def test_spec_json_keeps_symbolic_dims_and_writes_minus_one():
    spec = TensorSpec("image", "float32", ("batch", 3, 224, 224))
    data = spec.to_json()
    assert data["shape"] == [-1, 3, 224, 224]
    assert data["datatype"] == "FP32"
    assert TensorSpec.from_json(data) == spec
    signature = Signature((spec,), (TensorSpec("logits", "float32", ("batch", 10)),))
    assert Signature.from_json(signature.to_json()) == signature


def test_recipe_is_ordered_and_serialisable():
    recipe = Recipe().then("export", format="onnx").then("optimize", optimizer="onnxslim")
    assert str(recipe) == "export(format=onnx) → optimize(optimizer=onnxslim)"
    assert recipe.to_json() == [
        {"step": "export", "format": "onnx"},
        {"step": "optimize", "optimizer": "onnxslim"},
    ]
