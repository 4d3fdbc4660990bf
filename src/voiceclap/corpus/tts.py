"""Offline TTS engines, driven by subprocess: espeak-ng, espeak-ng + MBROLA, SVOX Pico, flite.

Every engine has the same call, ``synthesize(text, voice, rate, pitch, volume) -> (waveform, sr)``:

* ``rate``: speaking-rate factor, 1.0 = the engine's default tempo;
* ``pitch``: factor on the voice's base pitch, 1.0 = default (flite's voices have per-voice pitch
  models, so flite ignores it);
* ``volume``: linear gain applied to the peak-normalised waveform (engines differ wildly in level;
  normalising first makes the gain mean the same thing for every engine).

A :class:`Voice` is one engine + one engine-level voice name; its ``id`` (``espeak:de+m3``,
``mbrola:de4``, ``pico:de-DE``, ``flite:slt``) is the clip's ``speaker`` in the corpus.
:func:`discover_voices` lists the voices that really produce audio on this machine.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf

__all__ = [
    "ENGINES",
    "SynthesisError",
    "Voice",
    "discover_voices",
    "get_engine",
    "synthesize",
]

_TIMEOUT_S = 60


class SynthesisError(RuntimeError):
    """The engine failed or produced no audio for this text."""


@dataclass(frozen=True, order=True)
class Voice:
    engine: str
    name: str  # the engine's own voice argument
    language: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"

    @classmethod
    def from_id(cls, voice_id: str, language: str) -> Voice:
        engine, name = voice_id.split(":", 1)
        return cls(engine, name, language)


def _run(command: list[str], stdin: str | None = None) -> bytes:
    try:
        done = subprocess.run(
            command,
            input=None if stdin is None else stdin.encode("utf-8"),
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SynthesisError(f"{command[0]}: {error}") from error
    if done.returncode != 0:
        raise SynthesisError(
            f"{command[0]} exited {done.returncode}: {done.stderr.decode(errors='replace')[:300]}"
        )
    return done.stdout


def _read_wav(data: bytes | Path) -> tuple[np.ndarray, int]:
    try:
        audio, sr = sf.read(
            io.BytesIO(data) if isinstance(data, bytes) else data,
            dtype="float32",
            always_2d=False,
        )
    except (sf.LibsndfileError, RuntimeError) as error:
        raise SynthesisError(f"unreadable engine output: {error}") from error
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio, sr


class _Engine:
    name = ""
    binary = ""
    # language -> engine voice names (before probing which are installed)
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {}

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def voices(self, language: str) -> list[Voice]:
        return [
            Voice(self.name, name, language)
            for name in self.catalogue.get(language, ())
        ]

    def raw(
        self, text: str, voice: Voice, rate: float, pitch: float
    ) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def synthesize(
        self,
        text: str,
        voice: Voice,
        rate: float = 1.0,
        pitch: float = 1.0,
        volume: float = 1.0,
    ) -> tuple[np.ndarray, int]:
        audio, sr = self.raw(text, voice, rate, pitch)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if audio.size < sr // 5 or peak < 1e-4:
            raise SynthesisError(f"{voice.id} produced no audible speech for {text!r}")
        return (audio * (volume * 0.95 / peak)).astype(np.float32), sr


class EspeakEngine(_Engine):
    """espeak-ng formant synthesis; a voice is ``<language voice>+<variant>`` (variants change
    formants, breathiness and pitch range, the closest thing espeak has to speakers)."""

    name = "espeak"
    binary = "espeak-ng"
    _DEFAULT_WPM = 175
    _DEFAULT_PITCH = 50  # espeak's 0-99 scale
    # Variants that stay intelligible; whisper/announcer/robot-style ones are left out.
    VARIANTS = (
        "m1",
        "m2",
        "m3",
        "m4",
        "m5",
        "m6",
        "m7",
        "f1",
        "f2",
        "f3",
        "f4",
        "f5",
        "klatt",
        "klatt2",
        "klatt3",
        "croak",
        "steph",
        "linda",
        "Andy",
        "Annie",
    )
    _LANGUAGE_VOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "de": ("de",),
        "en": ("en-us", "en-gb"),
        "fr": ("fr",),
        "es": ("es", "es-419"),
        "it": ("it",),
    }

    def voices(self, language: str) -> list[Voice]:
        return [
            Voice(self.name, f"{base}+{variant}", language)
            for base in self._LANGUAGE_VOICES.get(language, ())
            for variant in self.VARIANTS
        ]

    def _command(self, espeak_voice: str, rate: float, pitch: float) -> list[str]:
        return [
            self.binary,
            "-b",
            "1",
            "-v",
            espeak_voice,
            "-s",
            str(round(self._DEFAULT_WPM * rate)),
            "-p",
            str(int(np.clip(round(self._DEFAULT_PITCH * pitch), 0, 99))),
            "--stdout",
        ]

    def raw(self, text, voice, rate, pitch):
        # Text goes through stdin so that nothing in it can be taken for an option.
        return _read_wav(_run(self._command(voice.name, rate, pitch), stdin=text))


class MbrolaEngine(EspeakEngine):
    """MBROLA diphone voices, with espeak-ng as the front end (``espeak-ng -v mb-de4``)."""

    name = "mbrola"
    binary = "espeak-ng"
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {
        "de": ("de1", "de2", "de3", "de4", "de5", "de6", "de7", "de8"),
        "en": ("us1", "us2", "us3", "en1"),
        "fr": ("fr1", "fr2", "fr3", "fr4", "fr5", "fr6", "fr7"),
        "es": ("es1", "es2", "es3", "es4"),
        "it": ("it1", "it2", "it3", "it4"),
    }

    def available(self) -> bool:
        return super().available() and shutil.which("mbrola") is not None

    def voices(self, language: str) -> list[Voice]:
        return _Engine.voices(self, language)

    def raw(self, text, voice, rate, pitch):
        return _read_wav(
            _run(self._command(f"mb-{voice.name}", rate, pitch), stdin=text)
        )


class _FileOutputEngine(_Engine):
    """Engines that only write to a named .wav file: one scratch directory per process.

    Keyed by process id because build workers are forked from a parent that has already used the
    engine (voice discovery): an inherited directory would be shared, and two workers writing the
    same file would swap each other's audio.
    """

    def __init__(self) -> None:
        self._scratch: dict[int, tempfile.TemporaryDirectory] = {}

    def _wav_path(self) -> Path:
        pid = os.getpid()
        if pid not in self._scratch:
            self._scratch[pid] = tempfile.TemporaryDirectory(
                prefix=f"voiceclap-{self.name}-"
            )
        return Path(self._scratch[pid].name) / "out.wav"


class PicoEngine(_FileOutputEngine):
    """SVOX Pico (``pico2wave``); rate and pitch through its SSML-like ``speed``/``pitch`` tags
    (percent of default)."""

    name = "pico"
    binary = "pico2wave"
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {
        "de": ("de-DE",),
        "en": ("en-US", "en-GB"),
        "fr": ("fr-FR",),
        "es": ("es-ES",),
        "it": ("it-IT",),
    }

    def raw(self, text, voice, rate, pitch):
        path = self._wav_path()
        # Pico parses markup: escape what the sentence filter lets through anyway.
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        markup = f"<speed level='{round(100 * rate)}'><pitch level='{round(100 * pitch)}'>{escaped}</pitch></speed>"
        _run([self.binary, "-l", voice.name, "-w", str(path), markup])
        return _read_wav(path)


class FliteEngine(_FileOutputEngine):
    """CMU flite, English only; rate through ``duration_stretch``."""

    name = "flite"
    binary = "flite"
    # awb_time is a limited-domain (talking clock) voice: it cannot say arbitrary text.
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {
        "en": ("kal", "kal16", "awb", "rms", "slt")
    }

    def raw(self, text, voice, rate, pitch):
        path = self._wav_path()
        _run(
            [
                self.binary,
                "-voice",
                voice.name,
                "--setf",
                f"duration_stretch={1.0 / rate:.3f}",
                "-t",
                text,
                "-o",
                str(path),
            ]
        )
        return _read_wav(path)


ENGINES: dict[str, _Engine] = {
    engine.name: engine
    for engine in (EspeakEngine(), MbrolaEngine(), PicoEngine(), FliteEngine())
}


def get_engine(name: str) -> _Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(
            f"unknown TTS engine {name!r}; known: {', '.join(ENGINES)}"
        ) from None


def synthesize(
    text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0, volume: float = 1.0
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``: (float32 mono waveform at the engine's rate, sample rate)."""
    return get_engine(voice.engine).synthesize(text, voice, rate, pitch, volume)


# A short sentence per language to check that a voice really speaks (a missing MBROLA database,
# for instance, makes espeak-ng exit 0 with no audio, or fail only at synthesis time).
_PROBE_TEXT = {
    "de": "Guten Morgen, wie geht es dir?",
    "en": "Good morning, how are you?",
    "fr": "Bonjour, comment allez-vous ?",
    "es": "Buenos días, ¿cómo estás?",
    "it": "Buongiorno, come stai?",
}


def discover_voices(
    languages: Iterable[str], engines: Iterable[str] | None = None
) -> dict[str, list[Voice]]:
    """Per language, the sorted voices of the selected engines that speak on this machine."""
    selected = [
        get_engine(name) for name in (engines if engines is not None else ENGINES)
    ]
    result: dict[str, list[Voice]] = {}
    for language in languages:
        found = []
        for engine in selected:
            if not engine.available():
                continue
            for voice in engine.voices(language):
                try:
                    engine.synthesize(_PROBE_TEXT[language], voice)
                except SynthesisError:
                    continue
                found.append(voice)
        result[language] = sorted(found)
    return result
