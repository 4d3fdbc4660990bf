"""SVOX Pico (``pico2wave``)."""

from __future__ import annotations

from typing import ClassVar

from .base import FileOutputEngine, read_wav, run_command

__all__ = ["PicoEngine"]


class PicoEngine(FileOutputEngine):
    """SVOX Pico; rate and pitch through its SSML-like ``speed``/``pitch`` tags (percent of default)."""

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
        run_command([self.binary, "-l", voice.name, "-w", str(path), markup])
        return read_wav(path)
