import numpy as np
import pytest

from shipyard.dataset import ImageOptions, load_image_folder, load_npz, load_texts, split, synthetic
from shipyard.errors import DataError
from shipyard.records import Signature, TensorSpec

SIGNATURE = Signature(
    (TensorSpec("image", "float32", ("batch", 3, 16, 16)),),
    (TensorSpec("logits", "float32", ("batch", 4)),),
)


def test_npz_with_labels(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, image=np.zeros((10, 3, 16, 16), np.float64), labels=np.arange(10))
    data = load_npz(path, SIGNATURE)
    assert len(data) == 10 and data.inputs["image"].dtype == np.float32
    assert data.labels.tolist() == list(range(10))


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"pixels": np.zeros((4, 3, 16, 16))}, "expected one named 'image'"),
        ({"image": np.zeros((4, 3, 8, 8))}, r"expects \[-1, 3, 16, 16\] \(size 16 on axis 2\)"),
        ({"image": np.zeros((4, 16, 16))}, "expected 4 dimensions"),
        ({"image": np.zeros((4, 3, 16, 16)), "extra": np.zeros(4)}, "'extra'.* not model inputs"),
        (
            {"image": np.zeros((4, 3, 16, 16)), "labels": np.zeros(3, np.int64)},
            "expected 4 integer class indices",
        ),
    ],
)
def test_npz_that_does_not_fit_the_model(tmp_path, arrays, expected):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=expected):
        load_npz(path, SIGNATURE)


def test_not_an_npz(tmp_path):
    path = tmp_path / "d.npz"
    path.write_text("hello")
    with pytest.raises(DataError, match="cannot read"):
        load_npz(path, SIGNATURE)


def test_texts(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("first line\n\n  second line  \n")
    assert load_texts(path) == ["first line", "second line"]
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(DataError, match="no text lines"):
        load_texts(tmp_path / "empty.txt")


def test_image_folder_with_class_subfolders(tmp_path):
    skimage = pytest.importorskip("skimage")
    from PIL import Image

    for name, image in (("cat", skimage.data.chelsea()), ("coffee", skimage.data.coffee())):
        (tmp_path / name).mkdir()
        Image.fromarray(image).save(tmp_path / name / "a.jpg")
        Image.fromarray(image[::-1]).save(tmp_path / name / "b.png")
    data = load_image_folder(tmp_path, SIGNATURE, ImageOptions())
    assert data.inputs["image"].shape == (4, 3, 16, 16)
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert abs(float(data.inputs["image"].mean())) < 3


def test_split_is_seeded_and_disjoint():
    data = synthetic(SIGNATURE, samples=20)
    data.labels = np.arange(20)
    first, again = split(data, 0.25, seed=3), split(data, 0.25, seed=3)
    assert first.evaluation.labels.tolist() == again.evaluation.labels.tolist()
    assert len(first.evaluation) == 5 and len(first.calibration) == 15
    assert not set(first.evaluation.labels) & set(first.calibration.labels)
    assert synthetic(SIGNATURE).synthetic
