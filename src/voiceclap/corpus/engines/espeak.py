"""espeak-ng formant synthesis, and MBROLA diphone voices with espeak-ng as their front end."""

from __future__ import annotations

import shutil
from typing import ClassVar

import numpy as np

from .base import Engine, Voice, read_wav, run_command

__all__ = ["EspeakEngine", "MbrolaEngine"]


class EspeakEngine(Engine):
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
        return read_wav(run_command(self._command(voice.name, rate, pitch), stdin=text))


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
        return Engine.voices(self, language)

    def raw(self, text, voice, rate, pitch):
        return read_wav(run_command(self._command(f"mb-{voice.name}", rate, pitch), stdin=text))
