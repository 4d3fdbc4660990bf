"""The frozen / trainable split of the two towers, and the module the trainer optimizes (and DDP wraps).

Each tower is cut at a layer index: everything below it is frozen (and can be computed once into the
feature cache), everything above trains. What crosses the cut is a ``Features``: hidden states with
their mask, or -- when a whole encoder is frozen -- one pooled vector per item, so that training then
only runs the projections:

- audio, encoder frozen: ``AudioTower.pool`` per clip; only ``AudioTower.project`` trains.
- text, encoder frozen: ``TextTower.pool`` over the tower's token mask; only ``TextTower.project`` trains.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from voiceclap.model import VoiceCLAP


@dataclass
class Features:
    """What the frozen part of a tower hands to the trainable part, for a batch of items."""

    values: torch.Tensor  # hidden states [B, T, d], or pooled vectors [B, d] when mask is None
    mask: torch.Tensor | None  # [B, T] bool: real frames / tokens

    @property
    def pooled(self) -> bool:
        return self.mask is None

    def to(self, device: torch.device) -> Features:
        return Features(self.values.to(device), None if self.mask is None else self.mask.to(device))


@dataclass(frozen=True)
class FreezePlan:
    """Where each tower is cut: layers [0, audio_from) and [0, text_from) are frozen."""

    audio_from: int
    audio_layers: int
    text_from: int
    text_layers: int
    text_embeddings: bool  # the text token embeddings train (only with text_from == 0)

    @property
    def audio_frozen(self) -> bool:
        return self.audio_from == self.audio_layers

    @property
    def text_frozen(self) -> bool:
        return self.text_from == self.text_layers

    @property
    def cacheable(self) -> bool:
        """The frozen parts can be precomputed: neither input-side front end trains."""
        return self.audio_from > 0 and not self.text_embeddings


def _layer_index(value: int, n_layers: int, name: str) -> int:
    index = value + n_layers if value < 0 else value
    if not 0 <= index <= n_layers:
        raise ValueError(f"{name}={value} is outside [-{n_layers}, {n_layers}]")
    return index


def make_plan(
    model: VoiceCLAP, audio_trainable_from_layer: int, text_trainable_from_layer: int, train_text_embeddings: bool
) -> FreezePlan:
    audio_layers = len(model.audio.encoder.layers)
    text_layers = len(model.text.layers)
    plan = FreezePlan(
        audio_from=_layer_index(audio_trainable_from_layer, audio_layers, "audio_trainable_from_layer"),
        audio_layers=audio_layers,
        text_from=_layer_index(text_trainable_from_layer, text_layers, "text_trainable_from_layer"),
        text_layers=text_layers,
        text_embeddings=train_text_embeddings,
    )
    if plan.text_embeddings and plan.text_from != 0:
        raise ValueError("train_text_embeddings needs text_trainable_from_layer=0: layers between would be frozen")
    return plan


def trainable_modules(model: VoiceCLAP, plan: FreezePlan) -> dict[str, nn.Module]:
    """The modules that train under ``plan``, by state-dict prefix (these prefixes, with
    logit_scale/logit_bias, are what ``save_pretrained(weights="trained")`` keeps)."""
    audio, text = model.audio, model.text
    modules = {"audio.frame_proj.": audio.frame_proj, "audio.proj.": audio.proj, "text.proj.": text.proj}
    if plan.audio_from == 0:
        for name in ("conv1", "conv2", "embed_positions"):
            modules[f"audio.encoder.{name}."] = getattr(audio.encoder, name)
    for i in range(plan.audio_from, plan.audio_layers):
        modules[f"audio.encoder.layers.{i}."] = audio.encoder.layers[i]
    if not plan.audio_frozen:
        modules["audio.encoder.layer_norm."] = audio.encoder.layer_norm
    if plan.text_embeddings:
        modules["text.encoder.embeddings."] = text.encoder.embeddings
    for i in range(plan.text_from, plan.text_layers):
        modules[f"text.encoder.encoder.layer.{i}."] = text.layers[i]
    return modules


def apply_freezing(model: VoiceCLAP, plan: FreezePlan) -> list[str]:
    """Set requires_grad from the plan; returns the trained parameter prefixes."""
    modules = trainable_modules(model, plan)
    model.requires_grad_(False)
    for module in modules.values():
        module.requires_grad_(True)
    model.logit_scale.requires_grad_(True)
    model.logit_bias.requires_grad_(True)
    return [*modules, "logit_scale", "logit_bias"]


class TrainableTowers(nn.Module):
    """``forward(batch)`` -> L2-normalized (audio [B, D], texts [B, 1 + K, D]).

    A batch holds either raw inputs (``mel``, ``mel_lengths``, ``input_ids``, ``attention_mask``) or
    cached ``Features`` (``audio``, ``text``); texts come flattened clip-major, 1 + K per clip.
    The frozen parts always run in eval mode (no dropout), as the feature cache saw them.
    """

    def __init__(self, model: VoiceCLAP, plan: FreezePlan):
        super().__init__()
        self.model = model
        self.plan = plan

    def train(self, mode: bool = True) -> TrainableTowers:
        super().train(False)
        for module in trainable_modules(self.model, self.plan).values():
            module.train(mode)
        return self

    # ----- frozen parts -----

    def frozen_audio(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> Features:
        audio = self.model.audio
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.plan.audio_from == 0):
            hidden, frame_mask = audio.embed(mel, mel_lengths)
            hidden = audio.run_layers(hidden, frame_mask, 0, self.plan.audio_from)
        return Features(hidden, frame_mask)

    def frozen_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Features:
        mask = self.model.text.token_mask(input_ids, attention_mask).bool()
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.plan.text_embeddings):
            text = self.model.text
            hidden = text.run_layers(text.embed(input_ids), mask, 0, self.plan.text_from)
        return Features(hidden, mask)

    def pool_audio(self, features: Features) -> Features:
        """What the feature cache stores for audio: pooled when the whole encoder is frozen."""
        if not self.plan.audio_frozen:
            return features
        return Features(self.model.audio.pool(features.values, features.mask), None)

    def pool_text(self, features: Features) -> Features:
        """What the feature cache stores for text: pooled when the whole encoder is frozen."""
        if not self.plan.text_frozen:
            return features
        return Features(self.model.text.pool(features.values, features.mask), None)

    # ----- trainable parts -----

    def audio_head(self, features: Features) -> torch.Tensor:
        audio = self.model.audio
        if features.pooled:
            return audio.project(features.values)
        hidden = audio.run_layers(features.values, features.mask, self.plan.audio_from)
        return audio.head(hidden, features.mask)

    def text_head(self, features: Features) -> torch.Tensor:
        text = self.model.text
        if features.pooled:
            return text.project(features.values)
        hidden = text.run_layers(features.values, features.mask, self.plan.text_from)
        return text.project(text.pool(hidden, features.mask))

    def forward(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        if "audio" in batch:
            audio, text = batch["audio"], batch["text"]
        else:
            audio = self.frozen_audio(batch["mel"], batch["mel_lengths"])
            text = self.frozen_text(batch["input_ids"], batch["attention_mask"])
        audio_emb = F.normalize(self.audio_head(audio), dim=-1)
        text_emb = F.normalize(self.text_head(text), dim=-1)
        return audio_emb, text_emb.view(audio_emb.shape[0], -1, text_emb.shape[-1])
