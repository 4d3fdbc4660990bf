"""Import of the seed's published open_clip checkpoint (`model.pt`) into a VoiceCLAP model.

The file is a pickle; it is read with `torch.load(weights_only=True)`, which unpickles tensors,
numbers and strings only and refuses anything that would run code. The import is strict: every
tensor of the file lands in the model or is on the short list of tensors the seed never uses, and
every tensor of the model comes from the file.
"""

from __future__ import annotations

import os
import re

import torch

from .config import ModelConfig, get_model_config
from .model import MissingWeightsError, VoiceCLAP
from .tokenizer import load_tokenizer

SEED_CONFIG = "whisper-small-mMiniLM"

# openai-whisper block names -> transformers WhisperEncoderLayer names
_BLOCK_RENAMES = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_AUDIO_RENAMES = {
    "audio.encoder.positional_embedding": "audio.encoder.embed_positions.weight",
    "audio.encoder.ln_post.weight": "audio.encoder.layer_norm.weight",
    "audio.encoder.ln_post.bias": "audio.encoder.layer_norm.bias",
    "audio.encoder.proj.weight": "audio.head.frame_proj.weight",
    "audio.encoder.proj.bias": "audio.head.frame_proj.bias",
}
# Present in the seed's files, unused by its forward pass.
_UNUSED = {"audio.encoder.audio_bos_eos_token", "text.transformer.embeddings.position_ids"}
_BLOCK = re.compile(r"^audio\.encoder\.blocks\.(\d+)\.(.+)\.(weight|bias)$")


def read_seed_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a seed `model.pt`, `module.` prefixes (DDP) removed. Code in the pickle is refused."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise MissingWeightsError(f"{path} is not an open_clip checkpoint (no state_dict of tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _rename(key: str) -> str | None:
    if key in _UNUSED:
        return None
    if key in _AUDIO_RENAMES:
        return _AUDIO_RENAMES[key]
    block = _BLOCK.match(key)
    if block:
        layer, name, kind = block.groups()
        if name not in _BLOCK_RENAMES:
            raise MissingWeightsError(f"unknown tensor in a whisper block: {key}")
        return f"audio.encoder.layers.{layer}.{_BLOCK_RENAMES[name]}.{kind}"
    if key.startswith(("audio.encoder.conv1.", "audio.encoder.conv2.")):
        return key
    if key.startswith("text.transformer."):
        return "text.encoder." + key.removeprefix("text.transformer.")
    if key.startswith(("audio.proj.", "text.proj.")):
        tower, rest = key.split(".", 1)
        return f"{tower}.head.{rest}"
    if key in ("logit_scale", "logit_bias"):
        return key
    raise MissingWeightsError(f"tensor {key!r} has no place in the seed architecture")


def convert_seed_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    converted = {}
    for key, tensor in state.items():
        new_key = _rename(key)
        if new_key is not None:
            converted[new_key] = tensor.reshape(()) if key in ("logit_scale", "logit_bias") else tensor
    return converted


def import_seed_checkpoint(
    path: str | os.PathLike, config: str | ModelConfig = SEED_CONFIG, tokenizer: str | None = None
) -> VoiceCLAP:
    """Build the seed architecture and fill it from `model.pt`; `tokenizer` is a directory or hub id
    (the seed ships its XLM-R tokenizer files beside model.pt), by default the config's own."""
    config = get_model_config(config) if isinstance(config, str) else config
    model = VoiceCLAP.from_config(config, load_base_weights=False)
    if tokenizer is not None:
        model.tokenizer = load_tokenizer(tokenizer)
        model.config.tokenizer = tokenizer
    weights = convert_seed_state_dict(read_seed_state_dict(path))
    # The model's own keys minus non-persistent buffers are what the file must cover, exactly.
    model._load_weights(weights, partial=False)
    return model.eval()
