"""Open JTalk (Debian ``open-jtalk`` + ``open-jtalk-mecab-naist-jdic`` + ``hts-voice-*``): Japanese HTS."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from .base import FileOutputEngine, SynthesisError, Voice, read_wav, run_command

__all__ = ["OpenJTalkEngine"]


class OpenJTalkEngine(FileOutputEngine):
    """Open JTalk, Japanese only; rate through its speed option ``-r``, pitch as half-tones (``-fm``).

    A voice is an installed ``/usr/share/hts-voice/<package>/<name>.htsvoice`` (Debian's
    ``hts-voice-*`` packages are all Open JTalk's Japanese voices), named by its file stem.
    """

    name = "openjtalk"
    binary = "open_jtalk"
    DICTIONARY = Path("/var/lib/mecab/dic/open-jtalk/naist-jdic")
    VOICES_DIR = Path("/usr/share/hts-voice")
    LANGUAGE = "ja"

    def available(self) -> bool:
        return shutil.which(self.binary) is not None and self.DICTIONARY.is_dir()

    def _voice_files(self) -> dict[str, Path]:
        return {path.stem: path for path in sorted(self.VOICES_DIR.glob("*/*.htsvoice"))}

    def voices(self, language: str) -> list[Voice]:
        if language != self.LANGUAGE:
            return []
        return [Voice(self.name, name, language) for name in self._voice_files()]

    def raw(self, text, voice, rate, pitch):
        voice_file = self._voice_files().get(voice.name)
        if voice_file is None:
            raise SynthesisError(f"{voice.id} is not installed under {self.VOICES_DIR}")
        path = self._wav_path()
        half_tones = 12 * math.log2(pitch)
        command = [self.binary, "-x", str(self.DICTIONARY), "-m", str(voice_file)]
        command += ["-r", f"{rate:.3f}", "-fm", f"{half_tones:.3f}", "-ow", str(path)]
        run_command(command, stdin=text)
        return read_wav(path)
