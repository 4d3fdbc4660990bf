"""VoiceCLAPLoss on hand-computed two-clip cases (2-d embeddings, so every cosine is exact)."""

import math

import pytest
import torch

from voiceclap.train.loss import VoiceCLAPLoss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# Clip 1: audio (1, 0), transcript (1, 0), one corruption (0, 1) with WER 0.5.
# Clip 2: audio (0, 1), transcript (0.6, 0.8), one corruption (0.8, 0.6) with WER 1.0.
# logit scale exp(log 2) = 2, bias -1: logit = 2 cos - 1.
AUDIO = [[1.0, 0.0], [0.0, 1.0]]
TEXTS = [[[1.0, 0.0], [0.0, 1.0]], [[0.6, 0.8], [0.8, 0.6]]]
ERROR_RATES = [[0.5], [1.0]]


def run(audio=AUDIO, texts=TEXTS, error_rates=ERROR_RATES, **weights):
    audio = torch.tensor(audio, requires_grad=True)
    texts = torch.tensor(texts, requires_grad=True)
    loss = VoiceCLAPLoss(margin_scale=0.5, **weights)
    terms = loss(audio, texts, torch.tensor(error_rates), torch.tensor(math.log(2.0)), torch.tensor(-1.0))
    return terms, audio, texts


def test_siglip_term_by_hand():
    terms, _, _ = run()
    # cosines [[1, 0.6], [0, 0.8]] -> logits [[1, 0.2], [-1, 0.6]]; labels +1 on the diagonal.
    expected = -(log_sigmoid(1.0) + log_sigmoid(-0.2) + log_sigmoid(1.0) + log_sigmoid(0.6)) / 2
    assert terms["siglip"].item() == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.93108, abs=1e-5)


def test_hard_negative_term_by_hand():
    terms, _, _ = run()
    # cos(a1, n1) = 0 -> logit -1; cos(a2, n2) = 0.6 -> logit 0.2; label -1; normalized by N = 2.
    expected = -(log_sigmoid(1.0) + log_sigmoid(-0.2)) / 2
    assert terms["hard_negative"].item() == pytest.approx(expected, abs=1e-6)


def test_margin_inactive_and_active():
    terms, audio, texts = run(siglip_weight=0.0, hard_negative_weight=0.0)
    # Clip 1: gap 1 - 0 = 1 >= margin 0.5 * 0.5: inactive. Clip 2: gap 0.8 - 0.6 = 0.2 < 0.5 * 1.0:
    # hinge 0.3. Normalized by N K = 2.
    assert terms["margin"].item() == pytest.approx(0.15, abs=1e-6)
    assert terms["loss"].item() == pytest.approx(0.15, abs=1e-6)
    terms["loss"].backward()
    # d/da2 of 0.5 - (a2.t2 - a2.n2), over N K = 2: -(t2 - n2) / 2.
    assert audio.grad.flatten().tolist() == pytest.approx([0.0, 0.0, 0.1, -0.1], abs=1e-6)
    # The inactive clip sends no gradient to its texts.
    assert texts.grad[0].abs().sum().item() == 0.0


def test_margin_shapes_and_clipping():
    linear = VoiceCLAPLoss(margin_scale=0.4)
    sqrt = VoiceCLAPLoss(margin_scale=0.4, margin_shape="sqrt")
    f = torch.tensor([0.25, 1.0, 1.5])
    assert linear.margin(f).tolist() == pytest.approx([0.1, 0.4, 0.4])
    assert sqrt.margin(f).tolist() == pytest.approx([0.2, 0.4, 0.4])
    with pytest.raises(ValueError):
        VoiceCLAPLoss(margin_shape="cubic")


def test_cross_clip_margin_by_hand():
    terms, _, texts = run(siglip_weight=0.0, hard_negative_weight=0.0, margin_weight=0.0, cross_clip_margin_weight=1.0)
    # Candidates (cos, margin): A clip 1's transcript (1, 0), B its corruption (0, 0.25), E clip 2's
    # transcript against clip 1's audio (0.6, 0.5); C clip 2's transcript (0.8, 0), D its corruption
    # (0.6, 0.5), F clip 1's transcript against clip 2's audio (0, 0.5). The 11 pairs with a larger
    # margin on the right, hinge m_q - m_p - (c_p - c_q): A<B 0, A<D 0.1, A<E 0.1, A<F 0, C<B 0,
    # C<D 0.3, C<E 0.3, C<F 0, B<D 0.85, B<E 0.85, B<F 0.25. B<D is what the per-clip margin cannot
    # see: clip 2's worse corruption outscores clip 1's milder one.
    assert terms["cross_clip_margin"].item() == pytest.approx(2.75 / 11, abs=1e-6)
    assert terms["loss"].item() == pytest.approx(2.75 / 11, abs=1e-6)
    terms["loss"].backward()
    # B (cos a1.n1) sits left in three active pairs: pushed up, towards a1. D (cos a2.n2) sits right in
    # three: pushed down, away from a2.
    assert texts.grad[0, 1].tolist() == pytest.approx([-3 / 11, 0.0], abs=1e-6)
    assert texts.grad[1, 1].tolist() == pytest.approx([0.0, 3 / 11], abs=1e-6)


def test_cross_clip_margin_without_other_transcripts():
    terms, _, _ = run(cross_clip_margin_weight=1.0, cross_clip_other_transcripts=0)
    # E and F gone: A<B 0, A<D 0.1, C<B 0, C<D 0.3, B<D 0.85 over 5 pairs.
    assert terms["cross_clip_margin"].item() == pytest.approx(1.25 / 5, abs=1e-6)


def test_cross_clip_margin_skips_zero_error_corruptions():
    terms, _, _ = run(error_rates=[[0.0], [1.0]], cross_clip_margin_weight=1.0)
    # B drops out: A<D 0.1, A<E 0.1, A<F 0, C<D 0.3, C<E 0.3, C<F 0.
    assert terms["cross_clip_margin"].item() == pytest.approx(0.8 / 6, abs=1e-6)


def test_cross_clip_margin_needs_a_second_clip_for_mismatched_transcripts():
    terms, _, _ = run(audio=AUDIO[:1], texts=TEXTS[:1], error_rates=ERROR_RATES[:1], cross_clip_margin_weight=1.0)
    # One clip: no other transcript to pair its audio with; A<B alone, inactive.
    assert terms["cross_clip_margin"].item() == 0.0


def test_hard_negatives_change_the_gradient():
    with_negatives, audio_a, _ = run(margin_weight=0.0)
    without, audio_b, _ = run(margin_weight=0.0, hard_negative_weight=0.0)
    with_negatives["loss"].backward()
    without["loss"].backward()
    # The difference is the hard-negative term's gradient: sigmoid(z) * scale * n / N per clip.
    difference = audio_a.grad - audio_b.grad
    sigmoid = lambda z: 1 / (1 + math.exp(-z))
    expected = [0.0, sigmoid(-1.0), sigmoid(0.2) * 0.8, sigmoid(0.2) * 0.6]
    assert difference.flatten().tolist() == pytest.approx(expected, abs=1e-6)


def test_zero_error_corruptions_are_masked():
    # A "corruption" equal to the transcript (WER 0) is no negative: both negative terms ignore it.
    terms, _, _ = run(error_rates=[[0.0], [1.0]])
    assert terms["hard_negative"].item() == pytest.approx(-log_sigmoid(-0.2) / 2, abs=1e-6)
    assert terms["margin"].item() == pytest.approx(0.15, abs=1e-6)


def test_weights_and_terms_reported():
    terms, _, _ = run(siglip_weight=2.0, hard_negative_weight=0.5, margin_weight=0.0)
    expected = 2.0 * terms["siglip"] + 0.5 * terms["hard_negative"]
    assert terms["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    # a 0-weight term is still logged, except the costly cross-clip margin
    assert set(terms) == {"siglip", "hard_negative", "margin", "loss"}


def test_no_negatives():
    terms, _, _ = run(texts=[[t[0]] for t in TEXTS], error_rates=[[], []])
    assert set(terms) == {"siglip", "loss"}
    assert terms["loss"].item() == pytest.approx(terms["siglip"].item())


def test_distillation_term_by_hand():
    # Clip 1 is labelled: teacher scores [0, -ln 3] -> p_teacher = [3/4, 1/4]; cosines [1, 0] with
    # scale 2 -> p_student = softmax([2, 0]). Clip 2 is not labelled (NaN): no part in the term.
    audio = torch.tensor(AUDIO)
    texts = torch.tensor(TEXTS)
    teacher = torch.tensor([[0.0, -math.log(3.0)], [float("nan"), float("nan")]])
    loss = VoiceCLAPLoss(distill_weight=1.0, distill_scale=2.0, distill_temperature=1.0)
    terms = loss(audio, texts, torch.tensor(ERROR_RATES), torch.tensor(math.log(2.0)), torch.tensor(-1.0), teacher)
    student = [math.exp(2) / (math.exp(2) + 1), 1 / (math.exp(2) + 1)]
    target = [0.75, 0.25]
    kl = sum(p * (math.log(p) - math.log(q)) for p, q in zip(target, student))
    assert terms["distill"].item() == pytest.approx(kl / 2, abs=1e-6)  # / N clips of the global batch
    # A slot that holds no candidate (error rate 0) takes no part: with it masked, one slot remains, KL 0.
    masked = loss(audio, texts, torch.tensor([[0.0], [1.0]]), torch.tensor(math.log(2.0)), torch.tensor(-1.0), teacher)
    assert masked["distill"].item() == pytest.approx(0.0, abs=1e-7)
    # Off by default, and without labels the term is not computed.
    assert "distill" not in VoiceCLAPLoss()(audio, texts, torch.tensor(ERROR_RATES), torch.tensor(0.0),
                                            torch.tensor(0.0), teacher)
