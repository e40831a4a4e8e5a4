"""Small models made on the spot in each framework, for the framework source tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from shipyard.verify.agreement import CONFIDENT_MARGIN, confidence_margin

HERE = Path(__file__).parent


def save_paddle_cnn(folder: Path, old_program: bool = False):
    """A conv + BN + pooling + linear classifier saved with ``paddle.jit.save`` (``model.json``, or
    with
    ``old_program`` the pre-3.0 ``inference.pdmodel`` most model zoos ship); returns its eager
    function."""
    import contextlib

    import paddle

    paddle.seed(0)

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
            self.bn = paddle.nn.BatchNorm2D(8)
            self.fc = paddle.nn.Linear(8, 5)

        def forward(self, image):
            hidden = paddle.nn.functional.relu(self.bn(self.conv(image)))
            return self.fc(hidden.mean(axis=[2, 3]))

    net = Net()
    # a freshly initialised head is unsure of every row (softmax margins under 0.1): scaled up,
    # most rows are confident, so the precision checks have rows where the class must hold
    net.fc.weight.set_value(net.fc.weight * 8)
    net.fc.bias.set_value(net.fc.bias * 8)
    net.eval()
    spec = [paddle.static.InputSpec([None, 3, 16, 16], "float32", "image")]
    with paddle.pir_utils.OldIrGuard() if old_program else contextlib.nullcontext():
        paddle.jit.save(
            net, str(folder / ("inference" if old_program else "model")), input_spec=spec
        )
    return lambda x: net(paddle.to_tensor(x)).numpy()


def keras_mlp():
    """A two-layer Keras classifier with named input ``features``."""
    from shipyard.sources.tensorflow import import_tensorflow

    import_tensorflow()  # before keras imports TensorFlow: it orders the LLVM libraries (see there)
    import keras

    keras.utils.set_random_seed(0)
    features = keras.Input((12,), name="features")
    hidden = keras.layers.Dense(16, activation="relu")(features)
    return keras.Model(features, keras.layers.Dense(4, name="scores")(hidden))


def write_caffe_net(folder: Path, variant: str = "plain") -> tuple[Path, Path]:
    """``net.prototxt`` + ``net.caffemodel`` written from Caffe's protobuf definition
    (caffe_net_writer.py)."""
    from shipyard.sources.caffe.converter import child_env

    subprocess.run(
        [sys.executable, str(HERE / "caffe_net_writer.py"), str(folder), variant],
        env=child_env(),
        check=True,
        capture_output=True,
    )
    return folder / "net.prototxt", folder / "net.caffemodel"


def random_npz(
    path: Path, name: str, shape: tuple[int, ...], count: int = 48, channel_shift: float = 0.0
) -> np.ndarray:
    """Standard-normal samples; ``channel_shift`` adds a per-sample, per-channel offset of that
    spread, so that a model that pools over space still sees samples that differ."""
    rng = np.random.default_rng(1)
    data = rng.standard_normal((count, *shape)).astype(np.float32)
    if channel_shift:
        offsets = rng.standard_normal((count, shape[0]) + (1,) * (len(shape) - 1))
        data += (channel_shift * offsets).astype(np.float32)
    np.savez(path, **{name: data})
    return data


def assert_matches_framework(result, got: np.ndarray, expected: np.ndarray, precision: str) -> None:
    """FP32 candidates agree with the framework's reference to float rounding; the package's
    outputs agree with the framework's own (exactly at FP32; by class and direction at reduced
    precision), and so does every reduced-precision candidate that passed, shipped or not."""
    fp32 = [c for c in result.candidates if c.precision == "fp32" and not c.error]
    assert fp32 and all(c.verification.outputs[0].max_abs < 1e-4 for c in fp32), [
        (c.key, c.verification.outputs[0].max_abs) for c in fp32
    ]
    reduced = [
        c.verification
        for c in result.candidates
        if c.precision != "fp32" and not c.error and c.verification.passed
    ]
    assert reduced, "no reduced-precision candidate passed"
    for check in reduced:
        assert check.cosine > 98 and check.confident_samples > 0, check  # cosine in %
        assert check.confident_agreement >= 95, check
    if precision == "fp32":
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
        return
    # reduced precision may flip a near-tie, which turns that one row's probabilities (the test
    # Caffe net's mixed INT8 package: one row at cosine 0.94, mean 0.997); where the framework is
    # sure of its class, the package must agree
    cosine = (got * expected).sum(1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    agrees = got.argmax(1) == expected.argmax(1)
    confident = confidence_margin(expected) > CONFIDENT_MARGIN
    assert cosine.mean() > 0.98 and agrees.mean() >= 0.8, (cosine.mean(), agrees.mean())
    assert confident.any() and agrees[confident].mean() >= 0.95, agrees[confident].mean()
