"""The same pipeline in PyTorch (PIL decode, torchvision transforms, the source module, softmax,
top-k): what a package with processing is verified against."""

from __future__ import annotations

from typing import Any

import numpy as np

from shipyard.processing.config import ImagePre, ProcessingConfig


def torch_preprocess(pixels: np.ndarray, image: ImagePre) -> Any:
    """One decoded RGB image → the model's input tensor [1, …], with torchvision's functions."""
    import torch
    from torchvision.transforms.v2 import functional as F

    tensor = torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float()[None]
    if image.resize is not None:
        size = list(image.resize) if len(image.resize) == 2 else image.resize[0]
        tensor = F.resize(tensor, size, antialias=image.antialias)
    if image.crop is not None:
        tensor = F.center_crop(tensor, list(image.crop))
    tensor = F.normalize(tensor * image.scale, list(image.mean), list(image.std))
    if image.layout == "NHWC":
        tensor = tensor.permute(0, 2, 3, 1)
    return tensor.to(torch.float16 if image.dtype == "float16" else torch.float32)


def torch_classify(
    module: Any, images: list[np.ndarray], config: ProcessingConfig
) -> dict[str, np.ndarray]:
    """Top-k label indices and scores of ``module`` on decoded images, computed in PyTorch."""
    import torch

    batch = torch.cat([torch_preprocess(p, config.image) for p in images])
    with torch.inference_mode():
        logits = module(batch)
        logits = logits[0] if isinstance(logits, (tuple, list)) else logits
        scores, indices = torch.softmax(logits.float(), dim=-1).topk(config.post.top_k, dim=-1)
    return {"scores": scores.numpy(), "indices": indices.numpy()}
