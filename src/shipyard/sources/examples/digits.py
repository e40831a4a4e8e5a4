"""``example:digits``: a small RepVGG-style classifier trained in seconds on sklearn's digits.

Training-time blocks are multi-branch (3×3 conv+BN, 1×1 conv+BN, identity BN, summed), as in
RepVGG, so re-parameterisation has something real to fuse. 60% of the images train the model;
the other 40% never touch training and come with the source as its labelled data set.
The trained weights are cached (safetensors) so later builds skip training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from shipyard import machine
from shipyard.dataset import Dataset
from shipyard.sources.base import Source, hash_state_dict
from shipyard.sources.torch_module import InputHint, describe_module

SEED = 0
TRAIN_FRACTION = 0.6
EPOCHS = 30
CACHE_VERSION = "v1"


class RepBlock(nn.Module):
    """3×3 conv+BN + 1×1 conv+BN (+ identity BN when shapes allow), then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv3 = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        )
        self.conv1 = nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout)
        )
        self.identity = nn.BatchNorm2d(cout) if cin == cout and stride == 1 else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv3(x) + self.conv1(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)


class DigitsNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            RepBlock(1, 32),
            RepBlock(32, 32),
            RepBlock(32, 64, 2),
            RepBlock(64, 64),
            RepBlock(64, 128, 2),
            RepBlock(128, 128),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


def make() -> DigitsNet:
    """The untrained architecture (usable as a ``file.py:function`` factory)."""
    return DigitsNet()


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's 1,797 8×8 digit images as float32 [N, 1, 8, 8] in [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    return images, digits.target.astype(np.int64)


def split_indices(count: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(SEED).permutation(count)
    cut = int(count * TRAIN_FRACTION)
    return np.sort(order[:cut]), np.sort(order[cut:])


def train(model: nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int = EPOCHS) -> None:
    torch.manual_seed(SEED)
    x, y = torch.from_numpy(images), torch.from_numpy(labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 3e-3, total_steps=epochs * ((len(x) + 63) // 64)
    )
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            schedule.step()
    model.eval()


def trained_model() -> DigitsNet:
    """The trained model, from the cache when it is there."""
    from safetensors.torch import load_file, save_file

    model = make()
    cache = _cache_dir() / f"digits-{CACHE_VERSION}-{torch.__version__}.safetensors"
    if cache.is_file():
        model.load_state_dict(load_file(str(cache)))
        return model.eval()
    images, labels = digits_arrays()
    train_idx, _ = split_indices(len(images))
    train(model, images[train_idx], labels[train_idx])
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(cache))
    return model


def _cache_dir() -> Path:
    return machine.examples_cache()


def held_out() -> Dataset:
    images, labels = digits_arrays()
    _, test_idx = split_indices(len(images))
    return Dataset(
        {"image": images[test_idx]},
        labels[test_idx],
        description=f"{len(test_idx)} held-out sklearn digits (never used in training)",
    )


def load() -> Source:
    model = trained_model()
    signature = describe_module(model, [InputHint("image", "float32", (1, 8, 8))], ["logits"])
    return Source(
        name="digits",
        kind="torch",
        signature=signature,
        content_hash=hash_state_dict(model.state_dict(), extra="digits"),
        task="classification",
        module=model,
        example_data=held_out(),
    )
