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
- ``cross_clip_margin``: the same hinge between the candidates of *different* clips. Each clip brings
  its transcript (f = 0), its corruptions, and ``cross_clip_other_transcripts`` other clips'
  transcripts paired with its audio (f = 1: fluent sentences it does not say). Every candidate of
  the global batch is ranked against every one whose margin is larger: sum max(0, m(f_q) - m(f_p) -
  (cos_p - cos_q)) over the P pairs with m(f_p) < m(f_q), divided by P. Not in the card: weight 0
  by default, and computed only when weighted (its pair matrix slows cached training by a fifth).
  The card's margin orders each clip's own candidates, but the score is judged pooled over clips,
  and a clip's whole score level drifts with its voice and length. The other clips' transcripts are
  there because corruptions read as less fluent than transcripts: without them a text-only prior
  satisfies the ranking as well as listening does, and the score learns to read (measured:
  MODEL_CARD.md, "Reading, not listening").
- ``distill``: for clips the teacher (Whisper's decoder) labelled, KL(p_teacher || p_student) over the
  clip's transcript and candidates, p_teacher = softmax(teacher score / distill_temperature),
  p_student = softmax(distill_scale * cos), summed over labelled clips / N: the student learns the
  teacher's ranking of each clip's candidates, and how far apart it puts them.

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
        cross_clip_margin_weight: float = 0.0,
        cross_clip_other_transcripts: int = 5,
        distill_weight: float = 0.0,
        distill_temperature: float = 1.0,
        distill_scale: float = 20.0,
    ):
        super().__init__()
        if margin_shape not in MARGIN_SHAPES:
            raise ValueError(f"margin_shape must be one of {MARGIN_SHAPES}, not {margin_shape!r}")
        self.weights = {
            "siglip": siglip_weight,
            "hard_negative": hard_negative_weight,
            "margin": margin_weight,
            "cross_clip_margin": cross_clip_margin_weight,
            "distill": distill_weight,
        }
        self.distill_temperature = distill_temperature
        self.distill_scale = distill_scale
        self.margin_scale = margin_scale
        self.margin_shape = margin_shape
        self.cross_clip_other_transcripts = cross_clip_other_transcripts

    def margin(self, error_rates: torch.Tensor) -> torch.Tensor:
        f = error_rates.clamp(0.0, 1.0)
        return self.margin_scale * (f if self.margin_shape == "linear" else f.sqrt())

    def cross_clip_margin(
        self,
        audio: torch.Tensor,
        every_positive: torch.Tensor,
        offset: int,
        own_cos: torch.Tensor,
        error_rates: torch.Tensor,
    ) -> torch.Tensor:
        """audio [b, D]; every_positive [N, D], the global batch's transcripts (this rank's from
        offset); own_cos [b, 1 + K], each local clip's cosine with its transcript, then with its
        corruptions. This rank's share: its candidates ranked against every candidate of the batch."""
        local, n_others = error_rates.shape[0], self.cross_clip_other_transcripts
        n_global = every_positive.shape[0]
        # Each clip's audio against the transcripts of the next n_others clips of the batch, at f = 1.
        shifts = torch.arange(1, n_others + 1, device=audio.device)
        rows = offset + torch.arange(local, device=audio.device)
        other_cos = torch.einsum("bd,bkd->bk", audio, every_positive[(rows[:, None] + shifts) % n_global])
        cos = torch.cat([own_cos, other_cos], dim=1)
        true = torch.zeros_like(own_cos[:, :1])
        rates = torch.cat([true, error_rates, torch.ones_like(other_cos)], dim=1)
        # A slot that holds no candidate (a zero-error corruption; another clip's transcript when the
        # batch has too few clips) gets a margin of -inf: it is in no ordered pair.
        always = torch.ones_like(true, dtype=torch.bool)
        candidate = torch.cat([always, error_rates > 0, (shifts < n_global).expand(local, n_others)], dim=1)
        margins = self.margin(rates).masked_fill(~candidate, -torch.inf)

        every_cos, _ = all_gather_with_grad(cos)
        every_margin, _ = all_gather_with_grad(margins)
        m_p, m_q = margins.reshape(-1, 1), every_margin.reshape(1, -1)
        ordered = (m_p < m_q) & m_p.isfinite()
        gap = cos.reshape(-1, 1) - every_cos.reshape(1, -1)
        hinge = F.relu(torch.where(ordered, m_q - m_p - gap, 0.0))
        pairs, _ = all_gather_with_grad(ordered.sum().reshape(1).to(cos.dtype))  # each rank's count
        return hinge.sum() / pairs.sum().clamp(min=1.0)

    def forward(
        self,
        audio: torch.Tensor,
        texts: torch.Tensor,
        error_rates: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
        teacher: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """audio [b, D] and texts [b, 1 + K, D] L2-normalized (texts[:, 0] the true transcripts,
        texts[:, k] with error_rates[:, k - 1]); teacher [b, 1 + K] the teacher's scores (NaN rows: not
        labelled). Returns the weighted "loss" and each unweighted term, terms with weight 0 included
        (logged, not trained) except the cross-clip margin and the distillation."""
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
            positive_cos = (audio * positives).sum(-1, keepdim=True)
            hinge = F.relu(self.margin(error_rates) - (positive_cos - negative_cos)) * valid
            terms["margin"] = hinge.sum() / (n_global * negatives.shape[1])
            if self.weights["cross_clip_margin"]:
                terms["cross_clip_margin"] = self.cross_clip_margin(
                    audio, every_positive, offset, torch.cat([positive_cos, negative_cos], dim=1), error_rates
                )

            if self.weights["distill"] and teacher is not None:
                terms["distill"] = self.distillation(torch.cat([positive_cos, negative_cos], dim=1), teacher,
                                                     error_rates, n_global)

        terms["loss"] = sum(self.weights[name] * value for name, value in terms.items())
        return terms

    def distillation(self, cos: torch.Tensor, teacher: torch.Tensor, error_rates: torch.Tensor,
                     n_global: int) -> torch.Tensor:
        """This rank's share of the distillation term; cos and teacher [b, 1 + K]. Slots that hold no
        candidate (a zero-error repeat of the transcript) take no part in either softmax."""
        labelled = torch.isfinite(teacher).all(dim=1)
        slot = torch.cat([torch.ones_like(error_rates[:, :1], dtype=torch.bool), error_rates > 0], dim=1)
        cos, teacher, slot = cos[labelled], teacher[labelled].to(cos.dtype), slot[labelled]
        target = (teacher / self.distill_temperature).masked_fill(~slot, -torch.inf).softmax(dim=1)
        log_student = (self.distill_scale * cos).masked_fill(~slot, -torch.inf).log_softmax(dim=1)
        kl = target * (target.clamp(min=1e-12).log() - log_student)
        return kl.masked_fill(~slot, 0.0).sum() / n_global
