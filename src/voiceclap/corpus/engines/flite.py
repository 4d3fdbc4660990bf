"""CMU flite (English only)."""

from __future__ import annotations

from typing import ClassVar

from .base import FileOutputEngine, read_wav, run_command

__all__ = ["FliteEngine"]


class FliteEngine(FileOutputEngine):
    """CMU flite; rate through ``duration_stretch``. flite's voices have per-voice pitch models, so
    it ignores ``pitch``."""

    name = "flite"
    binary = "flite"
    # awb_time is a limited-domain (talking clock) voice: it cannot say arbitrary text.
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {"en": ("kal", "kal16", "awb", "rms", "slt")}

    def raw(self, text, voice, rate, pitch):
        path = self._wav_path()
        run_command(
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
        return read_wav(path)
