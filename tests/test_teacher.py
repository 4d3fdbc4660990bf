"""Tests of voiceclap.teacher on a tiny random Whisper (always) and its parity with CTranslate2 on the real
offline Whisper base (when the weights, ctranslate2 and espeak-ng are installed)."""

import shutil
import subprocess

import numpy as np
import pytest
import torch
from conftest import tiny_whisper, whisper_byte_tokenizer

from voiceclap import audio as A
from voiceclap.teacher import EncodedAudio, WhisperTeacher, normalized_scores

MAX_TARGET_POSITIONS = 24  # 4 prompt tokens + 20 text tokens: a short text already overflows


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return whisper_byte_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    model = tiny_whisper(tokenizer, d_model=16, layers=2, heads=2, ffn=32, max_target_positions=MAX_TARGET_POSITIONS)
    with torch.no_grad():  # larger than the default init, so that texts and clips differ clearly in likelihood
        for parameter in model.parameters():
            parameter.normal_(0, 0.3)
    return model


def teacher_for(model, tokenizer, **kwargs):
    return WhisperTeacher(model, tokenizer, **kwargs)


def clip(seconds=1.7, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(int(seconds * A.SAMPLE_RATE))).astype(np.float32)


TEXTS = ["hello there", "a", "", "where are you going"]  # the last one fills the 20 text positions


def test_batching_does_not_change_log_likelihoods(model, tokenizer):
    teacher = teacher_for(model, tokenizer)
    batched = teacher.log_likelihoods(clip(), TEXTS, "en").token_log_probs
    for text, together in zip(TEXTS, batched):
        alone = teacher.log_likelihoods(clip(), [text], "en").token_log_probs[0]
        assert alone.shape == together.shape == (len(text.encode()) + 2,)  # leading space, the bytes, end-of-text
        np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)


def test_matches_a_plain_forward_of_the_whole_model(model, tokenizer):
    """Full context: the teacher's own encoder and its shared prompt cache give what transformers' model
    computes from the mel and the whole decoder sequence."""
    teacher = teacher_for(model, tokenizer, context="full")
    waveform = clip()
    got = teacher.log_likelihoods(waveform, TEXTS, "de").token_log_probs
    mel = A.log_mel_spectrogram(A.pad_or_trim(waveform))[None]
    for text, values in zip(TEXTS, got):
        ids = teacher.prompt("de") + tokenizer(" " + text, add_special_tokens=False).input_ids
        with torch.no_grad():
            logits = model(input_features=mel, decoder_input_ids=torch.tensor([ids])).logits[0]
        targets = torch.tensor(ids[4:] + [teacher.end_of_text])
        expected = logits[3:].log_softmax(-1).gather(-1, targets[:, None])[:, 0].numpy()
        np.testing.assert_allclose(values, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("context", ["short", "full"])
def test_shared_encoder_pass_equals_separate_passes(model, tokenizer, context):
    teacher = teacher_for(model, tokenizer, context=context)
    waveform = clip()
    encoded = teacher.encode(waveform)
    assert isinstance(encoded, EncodedAudio)
    frames = 1500 if context == "full" else 100  # 1.7 s padded to 2 s: 200 mel frames, 100 encoder frames
    assert encoded.states.shape == (1, frames, 16)
    shared = teacher.log_likelihoods(encoded, TEXTS, "en").token_log_probs
    for text, values in zip(TEXTS, shared):
        separate = teacher.log_likelihoods(waveform, [text], "en").token_log_probs[0]
        np.testing.assert_allclose(values, separate, atol=1e-5, rtol=0)
    grouped = teacher.score_grouped([waveform, clip(seed=1)], [TEXTS, TEXTS[:2]], ["en", "en"])
    np.testing.assert_allclose(grouped[0], [v.mean() for v in shared], atol=1e-5, rtol=0)


def test_long_text_is_truncated_and_flagged(model, tokenizer):
    teacher = teacher_for(model, tokenizer)
    assert teacher.max_text_tokens == MAX_TARGET_POSITIONS - 4
    long_text = "x" * 40
    result = teacher.log_likelihoods(clip(), ["fits", long_text], "en")
    assert result.text_truncated == [False, True]
    assert len(result.token_log_probs[0]) == len(" fits") + 1
    assert len(result.token_log_probs[1]) == teacher.max_text_tokens  # no end-of-text: the text goes on
    assert np.isfinite(result.token_log_probs[1]).all()


@pytest.mark.parametrize("context", ["short", "full"])
def test_long_audio_is_scored_on_its_first_30_seconds(model, tokenizer, context):
    teacher = teacher_for(model, tokenizer, context=context)
    long_clip = clip(seconds=31.5)
    result = teacher.log_likelihoods(long_clip, ["hello"], "en")
    start = teacher.log_likelihoods(long_clip[: A.N_SAMPLES], ["hello"], "en")
    assert result.audio_truncated and not start.audio_truncated
    np.testing.assert_allclose(result.token_log_probs[0], start.token_log_probs[0], atol=1e-6, rtol=0)


def test_silent_and_empty_audio_are_flagged_and_scored(model, tokenizer):
    teacher = teacher_for(model, tokenizer)
    for waveform in (np.zeros(A.SAMPLE_RATE, np.float32), np.zeros(0, np.float32),
                     np.full(A.SAMPLE_RATE, 1e-4, np.float32)):
        result = teacher.log_likelihoods(waveform, ["hello"], "en")
        assert result.silent
        assert np.isfinite(result.token_log_probs[0]).all()
    assert not teacher.log_likelihoods(clip(), ["hello"], "en").silent


def test_pmi_is_the_difference_of_the_two_likelihoods(model, tokenizer):
    teacher = teacher_for(model, tokenizer)
    audio, other = clip(seed=0), clip(seconds=2.5, seed=1)
    with_audio = teacher.log_likelihoods(audio, TEXTS, "en")
    with_other = teacher.log_likelihoods(other, TEXTS, "en")
    with_silence = teacher.log_likelihoods(np.zeros_like(audio), TEXTS, "en")
    mean = lambda result: np.array([v.mean() for v in result.token_log_probs])
    pmi_other = teacher.score_clip(audio, TEXTS, "en", reference_waveform=other, normalization="pmi_other")
    np.testing.assert_allclose(pmi_other, mean(with_audio) - mean(with_other), atol=1e-5, rtol=0)
    pmi_silence = teacher.score_clip(audio, TEXTS, "en", normalization="pmi_silence")
    np.testing.assert_allclose(pmi_silence, mean(with_audio) - mean(with_silence), atol=1e-5, rtol=0)
    assert np.abs(pmi_other).max() > 1e-3  # the two clips are told apart at all
    np.testing.assert_allclose(normalized_scores(with_audio, "sum"), [v.sum() for v in with_audio.token_log_probs])
    with pytest.raises(ValueError, match="reference"):
        normalized_scores(with_audio, "pmi_other")


def test_score_pairs_groups_by_clip_and_defaults_pmi_to_the_next_clip(model, tokenizer):
    teacher = teacher_for(model, tokenizer)
    a, b = clip(seed=0), clip(seconds=1.2, seed=1)
    pairs = teacher.score_pairs([a, b, a], ["hello", "a", "hi"], ["en", "en", "en"])
    grouped = teacher.score_grouped([a, b], [["hello", "hi"], ["a"]], ["en", "en"])
    np.testing.assert_allclose(pairs, [grouped[0][0], grouped[1][0], grouped[0][1]], atol=1e-6, rtol=0)
    pmi = teacher.score_grouped([a, b], [["hello"], ["a"]], ["en", "en"], normalization="pmi_other")
    np.testing.assert_allclose(pmi[0], teacher.score_clip(a, ["hello"], "en", b, "pmi_other"), atol=1e-6)
    np.testing.assert_allclose(pmi[1], teacher.score_clip(b, ["a"], "en", a, "pmi_other"), atol=1e-6)
    with pytest.raises(ValueError, match="language token"):
        teacher.score_pairs([a], ["hello"], ["fr"])


def test_calibration_travels_as_json_with_the_scoring_settings(model, tokenizer, tmp_path):
    teacher = teacher_for(model, tokenizer, normalization="sum")
    assert teacher.estimate_wer([-3.0]) is None
    teacher.calibrate([-10.0, -5.0, -2.0, -1.0], [0.9, 0.5, 0.2, 0.0])
    teacher.save_calibration(tmp_path / "teacher-calibration.json")
    again = teacher_for(model, tokenizer, normalization="sum")
    again.load_calibration(tmp_path / "teacher-calibration.json")
    np.testing.assert_allclose(again.estimate_wer([-10.0, -1.5, 0.0]), teacher.estimate_wer([-10.0, -1.5, 0.0]))
    with pytest.raises(ValueError, match="sum scores"):
        teacher_for(model, tokenizer, normalization="mean").load_calibration(tmp_path / "teacher-calibration.json")


# ------------------------------------------------------------------------------------------------
# Real weights: parity with CTranslate2 (needs the [offline] extra and espeak-ng; uses the real cache)
# ------------------------------------------------------------------------------------------------

PARITY_CLIPS = [
    ("en", "The quick brown fox jumps over the lazy dog near the river bank."),
    ("de", "Der Zug nach Berlin fährt heute später ab."),
    ("fr", "Nous irons à la plage demain matin."),
]


@pytest.fixture(scope="module")
def real_teacher_and_ct2():
    from voiceclap.weights import MissingBaseWeights, resolve_encoder_source

    ctranslate2 = pytest.importorskip("ctranslate2")
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    try:
        teacher = WhisperTeacher.from_pretrained("offline:whisper-base-full")
        ct2_dir = resolve_encoder_source("offline:whisper-base-ct2")
    except MissingBaseWeights as exc:
        pytest.skip(str(exc))
    reference = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32", intra_threads=2)
    return teacher, reference, ctranslate2


def espeak(tmp_path, language, text):
    wav = tmp_path / f"{language}.wav"
    subprocess.run(["espeak-ng", "-v", language, "-w", str(wav), text], check=True)
    return A.load_audio(wav)


@pytest.mark.parametrize("context", ["full", "short"])
def test_real_teacher_matches_ctranslate2(real_teacher_and_ct2, tmp_path, context):
    """Teacher-forced log-probabilities of each text token and of end-of-text against CTranslate2's: its
    generate() with the transcript forced as the prompt returns the logits of every forced step."""
    teacher, reference, ctranslate2 = real_teacher_and_ct2
    teacher.context = context
    worst = 0.0
    # Both 30-s encoders cost seconds per clip on a CPU: the full context is checked on one clip.
    for language, text in PARITY_CLIPS if context == "short" else PARITY_CLIPS[:1]:
        waveform = espeak(tmp_path, language, text)
        ours = teacher.log_likelihoods(waveform, [text], language).token_log_probs[0]
        samples = A.pad_or_trim(waveform, teacher._padded_length(len(waveform)))
        mel = A.log_mel_spectrogram(samples).numpy()[None]
        prompt = teacher.prompt(language)
        tokens = teacher._text_ids([text])[0]
        result = reference.generate(ctranslate2.StorageView.from_array(mel), [prompt + tokens], beam_size=1,
                                    return_logits_vocab=True, suppress_blank=False, suppress_tokens=[])[0]
        # One row of vocabulary logits per step after the prompt's special tokens: the forced text, then on.
        steps = np.asarray(result.logits[0], dtype=np.float64).reshape(-1, len(teacher.tokenizer))
        logits = torch.from_numpy(steps[: len(tokens) + 1])
        targets = torch.tensor([*tokens, teacher.end_of_text])
        theirs = logits.log_softmax(-1).gather(-1, targets[:, None])[:, 0].numpy()
        worst = max(worst, float(np.abs(ours - theirs).max()))
    # float32 rounding: measured at most 4.6e-5 on five espeak-ng clips (en, de, fr, es), both contexts
    assert worst < 5e-4, worst


def test_scoring_engine_scores_rows_with_the_teacher_and_asks_for_the_language(model, tokenizer):
    from voiceclap.clips import Clip
    from voiceclap.scoring import ScoringEngine, TeacherBackend

    teacher = teacher_for(model, tokenizer)
    rows = [Clip("a", "hello there", audio=clip(1.7, 0), language="en"),
            Clip("b", "where are you going", audio=clip(2.3, 1), language="de"),
            Clip("c", "hello there", audio=clip(1.0, 2))]  # no language: Whisper must be told
    records = {r["id"]: r for batch in ScoringEngine(TeacherBackend(teacher)).score_rows(rows) for r in batch}
    for row in rows[:2]:
        expected = teacher.score_clip(row.audio, [row.text], row.language)[0]
        assert records[row.id]["score"] == pytest.approx(expected, abs=1e-5) and not records[row.id]["error"]
    assert records["c"]["score"] is None and "language" in records["c"]["error"]
