"""Audio front end: decode anything FFmpeg can read, mono 16 kHz, Whisper's log-mel spectrogram."""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile
import soxr
import torch

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_LENGTH = 30  # seconds: Whisper's context
N_SAMPLES = CHUNK_LENGTH * SAMPLE_RATE  # 480000
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames
MIN_SAMPLES = SAMPLE_RATE // 10  # shorter than 0.1 s carries no speech worth scoring
SILENCE_PEAK = 1e-3  # -60 dBFS: below any real recording's speech peaks
# Masked pooling pads a clip to a whole number of encoder output pairs: 2 mel frames per encoder
# frame (conv2 stride) times 2 encoder frames per pooled frame.
FRAMES_PER_POOLED_FRAME = 4
SAMPLES_PER_POOLED_FRAME = FRAMES_PER_POOLED_FRAME * HOP_LENGTH
MEL_FILTERS_PATH = Path(__file__).parent / "assets" / "mel_filters.npz"

AudioSource = str | os.PathLike | bytes | BinaryIO | np.ndarray


class AudioDecodeError(ValueError):
    """The input is not decodable audio, or holds no usable signal (the message says which)."""


def _decode_soundfile(data: BinaryIO) -> tuple[np.ndarray, int]:
    audio, sr = soundfile.read(data, dtype="float32", always_2d=True)
    return audio, sr


def _decode_pyav(data: BinaryIO) -> tuple[np.ndarray, int]:
    import av  # imported lazily: only files libsndfile cannot read need FFmpeg

    with av.open(data, mode="r") as container:
        if not container.streams.audio:
            raise AudioDecodeError("no audio stream")
        stream = container.streams.audio[0]
        # Resampling to planar float keeps every codec's sample format out of our code.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name if stream.layout else None)
        chunks, sr = [], stream.rate
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks or sr is None:
        raise AudioDecodeError("no audio samples decoded")
    return np.concatenate(chunks, axis=1).T.astype(np.float32), int(sr)


def _open_bytes(source: AudioSource) -> BinaryIO:
    if isinstance(source, (bytes, bytearray)):
        return io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise AudioDecodeError(f"file not found: {path}")
        if os.path.getsize(path) == 0:
            raise AudioDecodeError(f"empty file: {path}")
        with open(path, "rb") as f:
            return io.BytesIO(f.read())
    return source  # already a binary file object


def decode_native(source: AudioSource) -> tuple[np.ndarray, int]:
    """Decode to float32 [samples, channels] at the file's own rate.

    libsndfile first (fast, exact for wav/flac/ogg); FFmpeg through PyAV for everything else and for
    the files libsndfile mis-reads, such as streaming FLACs whose header gives no sample count.
    """
    data = _open_bytes(source)
    try:
        audio, sr = _decode_soundfile(data)
        if audio.shape[0] > 0:
            return audio, sr
    # ValueError/MemoryError: a streaming FLAC's header gives no length, which libsndfile reports as
    # an astronomically long file that numpy cannot allocate; FFmpeg reads it fine.
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError, MemoryError):
        pass
    data.seek(0)
    try:
        return _decode_pyav(data)
    except AudioDecodeError:
        raise
    except Exception as error:  # PyAV raises many FFmpeg error types; all mean "not audio we can read"
        raise AudioDecodeError(f"cannot decode audio: {error}") from error


def to_mono_16k(audio: np.ndarray, sr: int) -> np.ndarray:
    """Downmix [samples] or [samples, channels] to mono and resample to 16 kHz with soxr."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    elif audio.ndim != 1:
        raise AudioDecodeError(f"expected a 1-D or 2-D [samples, channels] array, got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise AudioDecodeError("audio contains NaN or infinite samples")
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return audio


def load_audio(source: AudioSource, sr: int | None = None) -> np.ndarray:
    """Any audio file, bytes, file object or array -> mono float32 at 16 kHz.

    An array is [samples] or [samples, channels] at `sr` (16 kHz when `sr` is None).
    Raises AudioDecodeError for anything that is not usable audio.
    """
    if isinstance(source, np.ndarray) or torch.is_tensor(source):
        audio, rate = np.asarray(source, dtype=np.float32), sr or SAMPLE_RATE
    else:
        audio, rate = decode_native(source)
    audio = to_mono_16k(audio, rate)
    if audio.shape[0] < MIN_SAMPLES:
        raise AudioDecodeError(f"audio is {audio.shape[0] / SAMPLE_RATE:.3f} s long; at least 0.1 s is needed")
    return audio


def is_silent(audio: np.ndarray) -> bool:
    """No sample reaches SILENCE_PEAK (an empty clip is silent too)."""
    return audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK


def pad_or_trim(audio: np.ndarray, length: int = N_SAMPLES) -> np.ndarray:
    if audio.shape[0] >= length:
        return audio[:length]
    return np.pad(audio, (0, length - audio.shape[0]))


@cache
def mel_filters(n_mels: int) -> torch.Tensor:
    """Slaney-style mel filterbank [n_mels, N_FFT // 2 + 1], as librosa and Whisper build it.

    Read from the package's assets (80 and 128 bands, transformers' ``mel_filter_bank`` saved once,
    as Whisper ships its own): computing them would import transformers, a second or more of a first
    score's start (tests/test_audio.py checks the file against transformers)."""
    with np.load(MEL_FILTERS_PATH) as banks:
        key = f"mel_{n_mels}"
        if key not in banks:
            raise ValueError(f"no mel filterbank with {n_mels} bands (have: {', '.join(sorted(banks))})")
        return torch.from_numpy(banks[key])


def log_mel_spectrogram(audio: np.ndarray | torch.Tensor, n_mels: int = 80) -> torch.Tensor:
    """Whisper's log-mel of one clip: [n_mels, samples // HOP_LENGTH]."""
    audio = torch.as_tensor(audio, dtype=torch.float32)
    window = torch.hann_window(N_FFT)
    stft = torch.stft(audio, N_FFT, HOP_LENGTH, window=window, center=True, return_complex=True)
    power = stft[..., :-1].abs() ** 2  # Whisper drops the last (partial) frame
    mel = mel_filters(n_mels) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)  # 80 dB dynamic range, per clip
    return (log_spec + 4.0) / 4.0
