"""Heads: the trained part on top of each frozen encoder, from its states to one joint-space vector.

A head takes a tower's final states ``[B, T, d]`` with their mask ``[B, T]`` (real frames or
tokens) and returns an un-normalized ``[B, joint_dim]`` vector. Which head a tower has is part of
the model config (``audio_head`` / ``text_head``, a dict with a ``type``), built by :func:`build_head`.

- ``mean``: the seed's heads. A mean over the states, then an MLP; the audio one first applies the
  seed's per-frame projection (affine, so applying it after the mean is the same function).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [B, T, D] over the positions where mask [B, T] is true."""
    mask = mask.to(x.dtype).unsqueeze(-1)
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class AudioMeanHead(nn.Module):
    """Mean over frames -> the seed's frame projection (width x width) -> Linear, GELU, Linear."""

    def __init__(self, width: int, joint_dim: int):
        super().__init__()
        self.frame_proj = nn.Linear(width, width)
        self.proj = nn.Sequential(nn.Linear(width, joint_dim), nn.GELU(), nn.Linear(joint_dim, joint_dim))

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(self.frame_proj(masked_mean(states, mask)))


class TextMeanHead(nn.Module):
    """Mean over tokens -> bias-free Linear, GELU, Linear with hidden width (width + joint_dim) // 2."""

    def __init__(self, width: int, joint_dim: int):
        super().__init__()
        hidden = (width + joint_dim) // 2
        self.proj = nn.Sequential(
            nn.Linear(width, hidden, bias=False), nn.GELU(), nn.Linear(hidden, joint_dim, bias=False)
        )

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.proj(masked_mean(states, mask))


_HEADS = {("audio", "mean"): AudioMeanHead, ("text", "mean"): TextMeanHead}


def build_head(tower: str, spec: dict[str, Any], width: int, joint_dim: int) -> nn.Module:
    """The head of ``tower`` ("audio" or "text") that ``spec`` (``{"type": ..., options}``) describes."""
    options = dict(spec)
    kind = options.pop("type", "mean")
    if (tower, kind) not in _HEADS:
        known = sorted(k for t, k in _HEADS if t == tower)
        raise ValueError(f"unknown {tower} head type {kind!r}; known: {', '.join(known)}")
    return _HEADS[tower, kind](width, joint_dim, **options)
