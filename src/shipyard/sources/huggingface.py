"""``hf:DIR`` sources: a Hugging Face transformers or sentence-transformers folder.

The tokenizer travels into the package and, for sentence-transformers folders, so do the pooling
and normalisation (inside the exported graph), so the package takes text and returns what
``SentenceTransformer.encode`` returns.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from shipyard.errors import SourceError
from shipyard.records import Signature, TensorSpec
from shipyard.sources.base import Source, TextFrontend, hash_files

TEXT_INPUTS = ("input_ids", "attention_mask")


@dataclass(frozen=True)
class Pooling:
    mode: str  # "mean" or "cls"
    normalize: bool


def load_hf_source(folder: Path, name: str | None = None) -> Source:
    if not folder.is_dir():
        raise SourceError(f"hf:{folder} is not a folder; expected a Hugging Face model folder")
    tokenizer_file = folder / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise SourceError(
            f"{folder} has no tokenizer.json; expected a folder saved with a fast tokenizer"
        )
    pooling = _read_pooling(folder)
    model, output = _load_model(folder, pooling)
    signature = Signature(
        tuple(TensorSpec(n, "int64", ("batch", "sequence")) for n in TEXT_INPUTS),
        (TensorSpec(output, "float32", ("batch", model.output_size)),),
    )
    frontend = TextFrontend(tokenizer_file, _max_length(folder), TEXT_INPUTS)
    return Source(
        name=name or folder.name,
        kind="torch",
        signature=signature,
        content_hash=hash_files(folder),
        task="embedding" if pooling else "classification",
        module=model,
        path=folder,
        text=frontend,
    )


def _read_pooling(folder: Path) -> Pooling | None:
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    kinds = [m.get("type", "") for m in modules]
    pooling_dir = next((m["path"] for m in modules if m.get("type", "").endswith("Pooling")), None)
    config = json.loads((folder / pooling_dir / "config.json").read_text()) if pooling_dir else {}
    mode = "cls" if config.get("pooling_mode_cls_token") else "mean"
    return Pooling(mode, normalize=any(k.endswith("Normalize") for k in kinds))


def _max_length(folder: Path) -> int:
    for file, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        path = folder / file
        if path.is_file():
            value = json.loads(path.read_text()).get(key)
            if isinstance(value, int) and 0 < value <= 8192:
                return value
    return 512


def _load_model(folder: Path, pooling: Pooling | None) -> tuple[Any, str]:
    try:
        import transformers
    except ImportError as exc:
        raise SourceError("hf: models need transformers: pip install 'shipyard[text]'") from exc
    auto = transformers.AutoModel if pooling else transformers.AutoModelForSequenceClassification
    safetensors = _uses_safetensors(folder)
    try:
        # weights_only: a pytorch_model.bin is read by torch's restricted unpickler, never a full
        # unpickle
        backbone = auto.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=safetensors, weights_only=True
        )
    except Exception as exc:
        if "Weights only load failed" in str(exc):
            raise SourceError(
                f"{folder}/pytorch_model.bin holds more than tensors (objects a full unpickle "
                "would "
                f"run code to build), so it is refused; expected a state dict of tensors, or "
                f"model.safetensors"
            ) from exc
        raise SourceError(
            f"cannot load {folder} with transformers ({type(exc).__name__}: {str(exc)[:300]}); "
            f"expected a folder with config.json and model.safetensors (or pytorch_model.bin "
            f"holding only tensors)"
        ) from exc
    backbone.eval()
    if pooling:
        return _Embedder(backbone, pooling), "sentence_embedding"
    return _Classifier(backbone), "logits"


def _uses_safetensors(folder: Path) -> bool:
    """Safetensors when the folder has them; else the older ``pytorch_model.bin`` (sharded or
    not)."""
    if any(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").is_file():
        return True
    if (folder / "pytorch_model.bin").is_file() or (
        folder / "pytorch_model.bin.index.json"
    ).is_file():
        return False
    raise SourceError(
        f"{folder} has no weights; expected model.safetensors or pytorch_model.bin beside "
        "config.json"
    )


class _Embedder(torch.nn.Module):
    """Transformer + pooling (+ L2 normalisation), as sentence-transformers computes it."""

    def __init__(self, backbone: Any, pooling: Pooling) -> None:
        super().__init__()
        self.backbone = backbone
        self.pooling = pooling
        self.output_size = int(backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        if self.pooling.mode == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.pooling.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled


class _Classifier(torch.nn.Module):
    def __init__(self, backbone: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.output_size = int(backbone.config.num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
