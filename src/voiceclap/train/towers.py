"""The frozen / trainable split of the two towers, and the module the trainer optimizes (and DDP wraps).

Each tower is cut at a layer index: everything below it is frozen (and can be computed once into the
feature cache), everything above trains, with the head. The cut is where
:meth:`voiceclap.towers.AudioTower.front` hands over to ``back``, so the full model, a partly frozen
one and a cached one all run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from voiceclap.model import VoiceCLAP
from voiceclap.towers import AudioBatch, Features, TextBatch
from voiceclap.train.data import TrainBatch


@dataclass(frozen=True)
class FreezePlan:
    """Where each tower is cut: layers [0, audio_from) and [0, text_from) are frozen."""

    audio_from: int
    audio_layers: int
    text_from: int
    text_layers: int
    text_embeddings: bool  # the text token embeddings train (only with text_from == 0)

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
    audio_layers, text_layers = model.audio.n_layers, model.text.n_layers
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
    modules = {"audio.head.": audio.head, "text.head.": text.head}
    if plan.audio_from == 0:
        for name in ("conv1", "conv2", "embed_positions"):
            modules[f"audio.encoder.{name}."] = getattr(audio.encoder, name)
    for i in range(plan.audio_from, plan.audio_layers):
        modules[f"audio.encoder.layers.{i}."] = audio.encoder.layers[i]
    if plan.audio_from < plan.audio_layers:
        modules["audio.encoder.layer_norm."] = audio.encoder.layer_norm  # ln_post, after the last layer
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

    A :class:`voiceclap.train.data.TrainBatch` holds model inputs or cached :class:`Features`; either
    way the frozen parts run in eval mode (no dropout), as the feature cache saw them.
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

    def frozen_audio(self, batch: AudioBatch) -> Features:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.plan.audio_from == 0):
            return self.model.audio.front(batch, self.plan.audio_from)

    def frozen_text(self, batch: TextBatch) -> Features:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.plan.text_embeddings):
            return self.model.text.front(batch, self.plan.text_from)

    def embed_audio(self, audio: AudioBatch | Features) -> torch.Tensor:
        """L2-normalized audio embeddings from model inputs or cached features."""
        features = audio if isinstance(audio, Features) else self.frozen_audio(audio)
        return F.normalize(self.model.audio.back(features, self.plan.audio_from), dim=-1)

    def embed_text(self, texts: TextBatch | Features) -> torch.Tensor:
        features = texts if isinstance(texts, Features) else self.frozen_text(texts)
        return F.normalize(self.model.text.back(features, self.plan.text_from), dim=-1)

    def forward(self, batch: TrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio [B, D], texts [B, 1 + K, D]): each distinct text embedded once, then gathered per clip."""
        return self.embed_audio(batch.audio), self.embed_text(batch.texts)[batch.text_index]
