"""Heads: the trained part on top of each frozen encoder, from its states to one joint-space vector.

A head takes a tower's final states ``[B, T, d]`` with their mask ``[B, T]`` (real frames or
tokens) and returns an un-normalized ``[B, joint_dim]`` vector. Which head a tower has is part of
the model config (``audio_head`` / ``text_head``, a dict with a ``type``), built by :func:`build_head`.

- ``mean``: the seed's heads. A mean over the states, then an MLP; the audio one first applies the
  seed's per-frame projection (affine, so applying it after the mean is the same function).
- ``attention``: a head that sees the sequence. A down-projection, a few transformer layers over the
  states, then attention pooling: a few learned queries attend to the states, and the joint vector
  is a projection of their outputs side by side. What was said where survives into the vector,
  where a mean keeps little more than a bag of sounds.
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


class AttentionPoolHead(nn.Module):
    """Down-projection to ``dim``, ``layers`` pre-norm transformer layers (``heads`` heads, GELU, 4x
    feed-forward), ``queries`` learned queries attending to the result, their outputs concatenated,
    normalized and projected to ``joint_dim``. Padding is masked as attention keys throughout, so a
    sequence's vector does not depend on the batch it is in."""

    def __init__(
        self, width: int, joint_dim: int, dim: int = 256, layers: int = 2, heads: int = 4, queries: int = 4,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.down = nn.Linear(width, dim)
        layer = nn.TransformerEncoderLayer(
            dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        # enable_nested_tensor off: the nested fast path zeroes padded positions in eval mode only,
        # and the two modes must compute the same function. No layers: the queries pool the
        # (already contextual) encoder states directly.
        self.layers = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers else None
        self.queries = nn.Parameter(torch.randn(queries, dim) * dim**-0.5)
        self.pool = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(queries * dim)
        self.out = nn.Linear(queries * dim, joint_dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        padding = ~mask.bool()
        x = self.down(states)
        if self.layers is not None:
            x = self.layers(x, src_key_padding_mask=padding)
        queries = self.queries.expand(x.shape[0], -1, -1)
        pooled, _ = self.pool(queries, x, x, key_padding_mask=padding, need_weights=False)
        return self.out(self.norm(pooled.flatten(1)))


_HEADS = {
    ("audio", "mean"): AudioMeanHead,
    ("text", "mean"): TextMeanHead,
    ("audio", "attention"): AttentionPoolHead,
    ("text", "attention"): AttentionPoolHead,
}


def build_head(tower: str, spec: dict[str, Any], width: int, joint_dim: int) -> nn.Module:
    """The head of ``tower`` ("audio" or "text") that ``spec`` (``{"type": ..., options}``) describes."""
    options = dict(spec)
    kind = options.pop("type", "mean")
    if (tower, kind) not in _HEADS:
        known = sorted(k for t, k in _HEADS if t == tower)
        raise ValueError(f"unknown {tower} head type {kind!r}; known: {', '.join(known)}")
    return _HEADS[tower, kind](width, joint_dim, **options)
