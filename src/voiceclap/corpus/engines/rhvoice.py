"""RHVoice (Debian ``rhvoice`` + ``rhvoice-<language>``, non-free): HTS voices at 24 kHz."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from .base import FileOutputEngine, SynthesisError, Voice, read_wav, run_command

__all__ = ["RHVoiceEngine"]


class RHVoiceEngine(FileOutputEngine):
    """RHVoice through ``RHVoice-test``; rate and pitch in percent of the voice's default.

    Voices are read from the installed voice packages (``voices/<name>/voice.info``), not from a
    fixed list: RHVoice silently falls back to another voice for a profile it does not know, so a
    name that is not installed would "work" with the wrong speaker.
    """

    name = "rhvoice"
    binary = "RHVoice-test"
    VOICES_DIR = Path("/usr/share/RHVoice/voices")
    # voice.info's language names (Debian's rhvoice-* packages) -> the corpus's language codes.
    LANGUAGE_CODES: ClassVar[dict[str, str]] = {
        "Albanian": "sq",
        "Brazilian-Portuguese": "pt",
        "English": "en",
        "Esperanto": "eo",
        "Kyrgyz": "ky",
        "Macedonian": "mk",
        "Polish": "pl",
        "Russian": "ru",
        "Tatar": "tt",
        "Ukrainian": "uk",
    }

    def _installed(self) -> dict[str, str]:
        """Voice directory name -> language code, for every installed voice of a known language."""
        found = {}
        for info in sorted(self.VOICES_DIR.glob("*/voice.info")):
            fields = dict(line.split("=", 1) for line in info.read_text(encoding="utf-8").splitlines() if "=" in line)
            language = self.LANGUAGE_CODES.get(fields.get("language", ""))
            if language is not None:
                found[info.parent.name] = language
        return found

    def voices(self, language: str) -> list[Voice]:
        return [Voice(self.name, name, language) for name, code in self._installed().items() if code == language]

    def raw(self, text, voice, rate, pitch):
        if voice.name not in self._installed():
            raise SynthesisError(f"{voice.id} is not installed under {self.VOICES_DIR}")
        path = self._wav_path()
        command = [self.binary, "-p", voice.name, "-r", str(round(100 * rate)), "-t", str(round(100 * pitch))]
        # Text goes through stdin so that nothing in it can be taken for an option.
        run_command([*command, "-o", str(path)], stdin=text)
        return read_wav(path)
