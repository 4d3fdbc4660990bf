"""Audio front end: every format decodes, resampling and downmixing are right, log-mel is Whisper's."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import FORMATS, LOSSLESS, SR, dominant_frequency, tone, write_audio
from transformers import WhisperFeatureExtractor

from voiceclap import audio as A


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_decodes(tmp_path, fmt):
    original = tone(440, 1.5)
    path = write_audio(tmp_path / f"clip.{fmt}", original)
    decoded = A.load_audio(path)
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    if fmt in LOSSLESS:
        np.testing.assert_allclose(decoded, original, atol=1e-4)
    else:
        # Lossy codecs add encoder delay and pad to whole frames (AAC: 1024 priming samples + the
        # last frame, 0.1 s here), never whole seconds.
        assert abs(len(decoded) - len(original)) <= 0.15 * SR
        assert dominant_frequency(decoded) == pytest.approx(440, abs=2)


def test_streaming_flac_needs_the_ffmpeg_fallback(tmp_path):
    path = write_audio(tmp_path / "clip.streaming.flac", tone(440, 1.0))
    with pytest.raises((ValueError, RuntimeError, MemoryError)):  # libsndfile alone: the unknown length breaks its read
        soundfile.read(str(path), dtype="float32")
    np.testing.assert_allclose(A.load_audio(path), tone(440, 1.0), atol=1e-4)


def test_bytes_and_file_objects_decode_like_paths(tmp_path):
    path = write_audio(tmp_path / "clip.flac", tone(440, 1.0))
    from_path = A.load_audio(path)
    np.testing.assert_array_equal(A.load_audio(path.read_bytes()), from_path)
    with open(path, "rb") as f:
        np.testing.assert_array_equal(A.load_audio(f), from_path)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resampling_keeps_pitch_and_length(tmp_path, sr):
    seconds = 1.25
    from_array = A.load_audio(tone(440, seconds, sr=sr), sr=sr)
    from_file = A.load_audio(write_audio(tmp_path / "clip.wav", tone(440, seconds, sr=sr), sr=sr))
    for decoded in (from_array, from_file):
        assert abs(len(decoded) - seconds * SR) <= 1
        assert dominant_frequency(decoded) == pytest.approx(440, abs=1)
        assert np.abs(decoded).max() == pytest.approx(0.3, abs=0.02)  # soxr keeps the level


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_averaged_to_mono(tmp_path, channels):
    samples = np.zeros((SR, channels), np.float32)
    samples[:, 0] = tone(440, 1.0)  # only the first channel carries the tone
    decoded = A.load_audio(write_audio(tmp_path / "clip.wav", samples))
    np.testing.assert_allclose(decoded, tone(440, 1.0) / channels, atol=1e-4)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_transformers_whisper_feature_extractor(n_mels):
    rng = np.random.default_rng(0)
    audio = tone(330, 7.0) + 0.1 * rng.standard_normal(7 * SR).astype(np.float32)
    padded = A.pad_or_trim(audio)
    ours = A.log_mel_spectrogram(padded, n_mels).numpy()
    extractor = WhisperFeatureExtractor(feature_size=n_mels)  # numpy STFT in float64: independent of ours
    reference = extractor(audio, sampling_rate=SR, return_tensors="np")["input_features"][0]
    assert ours.shape == reference.shape == (n_mels, A.N_FRAMES)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_pad_or_trim():
    assert len(A.pad_or_trim(np.ones(10, np.float32), 16)) == 16
    assert len(A.pad_or_trim(np.ones(20, np.float32), 16)) == 16


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.wav", "file not found"),
        (lambda d: _file(d / "empty.wav", b""), "empty file"),
        (lambda d: _file(d / "text.wav", b"this is not audio at all" * 40), "cannot decode"),
        (lambda d: write_audio(d / "short.wav", tone(440, 0.05)), "at least 0.1 s"),
        (lambda d: write_audio(d / "nan.wav", np.full(SR, np.nan, np.float32), subtype="FLOAT"), "NaN"),
    ],
)
def test_unusable_audio_raises_audio_decode_error(tmp_path, make, message):
    with pytest.raises(A.AudioDecodeError, match=message):
        A.load_audio(make(tmp_path))


def test_infinite_samples_in_an_array_are_refused():
    samples = tone(440, 1.0)
    samples[100] = np.inf
    with pytest.raises(A.AudioDecodeError, match="infinite"):
        A.load_audio(samples)


def test_mel_filters_come_only_in_whisper_band_counts():
    with pytest.raises(ValueError, match="no mel filterbank with 64 bands"):
        A.mel_filters(64)
