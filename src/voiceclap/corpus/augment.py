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

__all__ = ["Augmentation", "apply", "draw"]

# Probabilities and ranges: mild enough that every clip stays intelligible (the text must remain
# what is heard), varied enough that "clean espeak" is not a shortcut feature.
_P_NOISE, _SNR_DB = 0.35, (5.0, 30.0)
_P_REVERB, _RT60_S = 0.25, (0.15, 0.6)
_P_CODEC, _MP3_KBPS = 0.2, (24, 32, 48, 64)


@dataclass(frozen=True)
class Augmentation:
    snr_db: float | None = None  # additive noise at this SNR; None = no noise
    noise_color: str = "white"  # white, pink or brown
    rt60_s: float | None = None  # synthetic room reverberation with this decay time
    mp3_kbps: int | None = None  # MP3 encode/decode round trip at this bit rate

    def as_json(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


def draw(rng: random.Random) -> Augmentation:
    """A random augmentation (often none)."""
    snr = round(rng.uniform(*_SNR_DB), 1) if rng.random() < _P_NOISE else None
    color = rng.choice(("white", "pink", "brown"))
    rt60 = round(rng.uniform(*_RT60_S), 3) if rng.random() < _P_REVERB else None
    kbps = rng.choice(_MP3_KBPS) if rng.random() < _P_CODEC else None
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
