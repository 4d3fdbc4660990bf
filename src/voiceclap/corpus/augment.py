"""Acoustic variation added after synthesis, so the model cannot key on one engine's clean sound.

Each clip's :class:`Augmentation` is drawn once, from a seeded RNG, when the build is planned (and
stored in the clip's JSON); :func:`apply` then only replays it, seeded by the clip, so a shard
rebuilt after an interruption is byte-for-byte what it would have been.
"""

from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass

import av
import numpy as np
from scipy.signal import fftconvolve

__all__ = ["STRENGTHS", "Augmentation", "Strength", "apply", "draw"]


@dataclass(frozen=True)
class Strength:
    """How often and how hard clips are degraded."""

    p_noise: float
    snr_db: tuple[float, float]
    p_reverb: float
    rt60_s: tuple[float, float]
    p_codec: float = 0.2
    mp3_kbps: tuple[int, ...] = (24, 32, 48, 64)


# "mild" (the default) keeps every clip intelligible (the text must remain what is heard) while
# varied enough that "clean espeak" is not a shortcut feature. Measured with whisper-base on
# Pico/MBROLA voices: white noise at 5 dB SNR took WER from ~0.05 to ~0.8 and an RT60 of 0.6 s to
# 0.2-0.5, while 15 dB and 0.3 s cost little. "strong" is the first corpus's setting (kept so that
# corpus can be resumed and reproduced); "none" gives clean TTS output.
STRENGTHS = {
    "mild": Strength(
        p_noise=0.35, snr_db=(12.0, 35.0), p_reverb=0.25, rt60_s=(0.1, 0.4)
    ),
    "strong": Strength(
        p_noise=0.35, snr_db=(5.0, 30.0), p_reverb=0.25, rt60_s=(0.15, 0.6)
    ),
    "none": Strength(
        p_noise=0.0, snr_db=(0.0, 0.0), p_reverb=0.0, rt60_s=(0.0, 0.0), p_codec=0.0
    ),
}


@dataclass(frozen=True)
class Augmentation:
    snr_db: float | None = None  # additive noise at this SNR; None = no noise
    noise_color: str = "white"  # white, pink or brown
    rt60_s: float | None = None  # synthetic room reverberation with this decay time
    mp3_kbps: int | None = None  # MP3 encode/decode round trip at this bit rate

    def as_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


def draw(rng: random.Random, strength: str = "mild") -> Augmentation:
    """A random augmentation of the named :data:`STRENGTHS` (often none at all)."""
    # The same random calls for every strength, so strengths differ only in their ranges.
    s = STRENGTHS[strength]
    snr = round(rng.uniform(*s.snr_db), 1) if rng.random() < s.p_noise else None
    color = rng.choice(("white", "pink", "brown"))
    rt60 = round(rng.uniform(*s.rt60_s), 3) if rng.random() < s.p_reverb else None
    kbps = rng.choice(s.mp3_kbps) if rng.random() < s.p_codec else None
    return Augmentation(snr, color if snr is not None else "white", rt60, kbps)


def _colored_noise(n: int, color: str, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if color == "white":
        return white
    # Shape the spectrum: 1/f power (pink) or 1/f^2 (brown) by scaling the rFFT magnitudes.
    spectrum = np.fft.rfft(white)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    exponent = 0.5 if color == "pink" else 1.0
    return np.fft.irfft(spectrum / freqs**exponent, n)


def _room_impulse_response(
    rt60_s: float, sr: int, rng: np.random.Generator
) -> np.ndarray:
    # Exponentially decaying noise (-60 dB after rt60) after a unit direct path: the textbook
    # late-reverberation model, without any geometry.
    n = max(2, int(rt60_s * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s) * 0.3
    tail[0] = 1.0
    return tail / np.sqrt(np.sum(tail**2))


def _mp3_round_trip(audio: np.ndarray, sr: int, kbps: int) -> np.ndarray:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sr, layout="mono")
        stream.bit_rate = kbps * 1000
        frame = av.AudioFrame.from_ndarray(audio[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        decoded = [
            frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
        ]
    return np.concatenate(decoded).astype(np.float32)[: len(audio)]


def apply(
    audio: np.ndarray, sr: int, augmentation: Augmentation, seed: int
) -> np.ndarray:
    """``audio`` (float32 mono) with ``augmentation`` applied; peak level is preserved."""
    rng = np.random.default_rng(seed)
    peak = float(np.max(np.abs(audio))) or 1.0
    out = audio.astype(np.float64)
    if augmentation.rt60_s is not None:
        out = fftconvolve(out, _room_impulse_response(augmentation.rt60_s, sr, rng))[
            : len(out)
        ]
    if augmentation.snr_db is not None:
        noise = _colored_noise(len(out), augmentation.noise_color, rng)
        signal_power = np.mean(out**2)
        noise *= np.sqrt(
            signal_power / (np.mean(noise**2) * 10 ** (augmentation.snr_db / 10))
        )
        out = out + noise
    out *= peak / (np.max(np.abs(out)) or 1.0)
    out = out.astype(np.float32)
    if augmentation.mp3_kbps is not None:
        out = _mp3_round_trip(out, sr, augmentation.mp3_kbps)
    return np.clip(out, -1.0, 1.0)
