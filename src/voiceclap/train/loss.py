"""The VoiceCLAP training loss: SigLIP over the global batch, hard negatives, calibrated margin.

For clip i with audio embedding a_i, transcript embedding t_i and corrupted transcripts t_ik whose
WER/CER against t_i is f_ik (all L2-normalized, cos = dot product), with logits
z = exp(logit_scale) * cos + logit_bias:

- ``siglip``: -sum_{i,j} log sigmoid(y_ij z(a_i, t_j)) / N over every audio-transcript pair of the
  global batch of N clips, y_ij = +1 if i == j else -1 (SigLIP's per-example normalization).
- ``hard_negative``: -sum_{i,k} log sigmoid(-z(a_i, t_ik)) / N: each clip's corruptions are extra
  negatives for that clip's audio only (another clip's corruption is no harder than its transcript).
- ``margin``: sum_{i,k} max(0, m(f_ik) - (cos(a_i, t_i) - cos(a_i, t_ik))) / (N K), the ranking hinge
  that asks the true-vs-corrupted gap to grow with the edit fraction: m(f) = margin_scale * f
  ("linear") or margin_scale * sqrt(f) ("sqrt"), f clipped to 1 (insertions can push WER past 1, but
  a cosine gap cannot exceed 2). This term is what makes the score graduate with WER.

A corruption with f = 0 (a text too short to corrupt into something new) is no negative and is
masked out of both negative terms.

Under torchrun each rank holds b_r of the N clips. The transcripts are all-gathered (gradients kept,
see distributed.all_gather_with_grad) and each rank computes the rows of its own clips, so every term
a rank returns is its share of the global-batch loss: the shares sum over ranks to the loss of the
whole global batch, and backpropagating world * share makes DDP's gradient *average* equal the
gradient of that loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from voiceclap.train.distributed import all_gather_with_grad

MARGIN_SHAPES = ("linear", "sqrt")


class VoiceCLAPLoss(nn.Module):
    def __init__(
        self,
        siglip_weight: float = 1.0,
        hard_negative_weight: float = 1.0,
        margin_weight: float = 1.0,
        margin_scale: float = 0.5,
        margin_shape: str = "linear",
    ):
        super().__init__()
        if margin_shape not in MARGIN_SHAPES:
            raise ValueError(f"margin_shape must be one of {MARGIN_SHAPES}, not {margin_shape!r}")
        self.weights = {"siglip": siglip_weight, "hard_negative": hard_negative_weight, "margin": margin_weight}
        self.margin_scale = margin_scale
        self.margin_shape = margin_shape

    def margin(self, error_rates: torch.Tensor) -> torch.Tensor:
        f = error_rates.clamp(0.0, 1.0)
        return self.margin_scale * (f if self.margin_shape == "linear" else f.sqrt())

    def forward(
        self,
        audio: torch.Tensor,
        texts: torch.Tensor,
        error_rates: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """audio [b, D] and texts [b, 1 + K, D] L2-normalized (texts[:, 0] the true transcripts,
        texts[:, k] with error_rates[:, k - 1]); returns the weighted "loss" and each unweighted term,
        terms with weight 0 included (logged, not trained)."""
        audio, texts = audio.float(), texts.float()
        local = audio.shape[0]
        positives = texts[:, 0]
        every_positive, offset = all_gather_with_grad(positives)
        n_global = every_positive.shape[0]
        scale = logit_scale.exp()

        logits = scale * audio @ every_positive.T + logit_bias  # [b, N]
        labels = torch.full_like(logits, -1.0)
        own = torch.arange(local, device=audio.device)
        labels[own, offset + own] = 1.0
        terms = {"siglip": -F.logsigmoid(labels * logits).sum() / n_global}

        negatives = texts[:, 1:]
        if negatives.shape[1] > 0:
            valid = (error_rates > 0).to(audio.dtype)
            negative_cos = torch.einsum("bd,bkd->bk", audio, negatives)
            negative_logits = scale * negative_cos + logit_bias
            terms["hard_negative"] = -(F.logsigmoid(-negative_logits) * valid).sum() / n_global
            gap = (audio * positives).sum(-1, keepdim=True) - negative_cos
            hinge = F.relu(self.margin(error_rates) - gap) * valid
            terms["margin"] = hinge.sum() / (n_global * negatives.shape[1])

        terms["loss"] = sum(self.weights[name] * value for name, value in terms.items())
        return terms
