"""Pronunciations of words from espeak-ng, to tell words that only differ in writing.

A negative meant to be told apart by listening must *sound* different from what was said: "their"
for "there", "parle" for "parlent", "das" for "dass" differ in writing (so WER counts an error) but
not in sound, and no audio model can or should notice them. :func:`espeak_phonemes` gives each word
its phoneme string (espeak-ng's ASCII notation, stress and pause marks removed), so equal strings
mean "homophones for a TTS engine".
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence

from voiceclap.text import units

__all__ = ["espeak_available", "espeak_phonemes"]

_ESPEAK = "espeak-ng"
# Stress (' ,), pauses (_ with :, !, | or ^ after it) and language-switch tags such as "(en)" are
# about delivery, not identity: "'record" and "re'cord" differ, but by stress only, which TTS
# engines do not reliably realise, so they count as the same sound here.
_DELIVERY_MARKS = re.compile(r"\([a-z-]+\)|['ˈˌ,]|_[:!|^]*")


def espeak_available() -> bool:
    return shutil.which(_ESPEAK) is not None


def espeak_phonemes(words: Sequence[str], language: str) -> list[str]:
    """The phoneme string of each word (one espeak-ng process for the whole list: about 1 ms a word).

    Each word is fed as its own sentence ("word.") so espeak-ng answers one line per word instead of
    joining words into phrases. Words must be single units of ``language``
    (:func:`voiceclap.text.units`), so none contains the full stop used as separator.
    Raises ``FileNotFoundError`` when espeak-ng is not installed.
    """
    for word in words:
        if units(word, language) != [word]:
            raise ValueError(f"{word!r} is not one normalized word of {language!r}")
    if not words:
        return []
    binary = shutil.which(_ESPEAK)
    if binary is None:
        raise FileNotFoundError(f"{_ESPEAK} is not installed (apt-get install espeak-ng)")
    voice = language.strip().lower().replace("_", "-").split("-", 1)[0]
    result = subprocess.run(
        [binary, "-q", "-x", "-v", voice],
        input="".join(f"{word}.\n" for word in words),
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    if len(lines) != len(words):
        raise RuntimeError(f"espeak-ng gave {len(lines)} lines for {len(words)} words ({language})")
    return [_DELIVERY_MARKS.sub("", line).strip() for line in lines]
