"""The terms of every source of corpus audio, in one table: each TTS engine (and each voice whose terms
differ from its engine's) and each recorded source (:data:`voiceclap.corpus.recorded.SOURCES`).

``commercial_use`` answers one question: may a model trained on the source's audio be sold? The
licenses are as each Debian package's ``/usr/share/doc/<package>/copyright`` states them. The
build's ``--commercial-only`` switch and the ``SOURCES.md`` table both read :func:`terms_of`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from voiceclap.corpus.recorded import SOURCES as RECORDED_SOURCES
from voiceclap.corpus.tts import Voice

__all__ = ["TERMS", "Terms", "commercial", "terms_of"]


@dataclass(frozen=True)
class Terms:
    license: str
    commercial_use: bool  # may a model trained on this audio be sold?


# MBROLA diphone databases (mbrola-<voice>): "may not be sold or incorporated into any product which
# is sold without prior permission" of the database owner, and usable only with the MBROLA program.
_MBROLA = Terms(
    "MBROLA database license (Faculte Polytechnique de Mons): use with the MBROLA program only; may not be "
    "sold or incorporated into a product that is sold without the database owner's permission",
    False,
)

# Synthetic sources by engine (the clip's ``source``), then voices whose terms differ (``Voice.id``).
_SYNTHETIC: dict[str, Terms] = {
    # The program's license; GPL does not extend to the speech a program outputs.
    "espeak": Terms("GPL-3+ (eSpeak NG program and data)", True),
    "mbrola": _MBROLA,
    "pico": Terms("Apache-2.0 (SVOX Pico; the language files are redistributable, their sources unpublished)", True),
    "flite": Terms(
        "CMU flite license (use, modify, distribute and sell freely; keep the notice, mark modifications, "
        "no endorsement); its voices kal, awb, rms, slt included",
        True,
    ),
    # en1 encodes the University of Edinburgh's ROGER database, whose terms allow any purpose.
    "mbrola:en1": Terms(
        "University of Edinburgh ROGER database terms: any purpose, keep the notice, no endorsement "
        "(plus the MBROLA program's terms where they do not contradict)",
        True,
    ),
}

TERMS: dict[str, Terms] = {
    **_SYNTHETIC,
    **{name: Terms(info.license, info.commercial_use) for name, info in RECORDED_SOURCES.items()},
}


def terms_of(source: str, speaker: str | None = None) -> Terms:
    """The terms of a clip's audio: its voice's own (``speaker`` is a voice id) or its source's."""
    if speaker in TERMS:
        return TERMS[speaker]
    try:
        return TERMS[source]
    except KeyError:
        raise ValueError(f"no license recorded for source {source!r}; add it to voiceclap.corpus.licenses") from None


def commercial(voices: Iterable[Voice]) -> list[Voice]:
    """The voices whose terms allow selling a model trained on their speech."""
    return [voice for voice in voices if terms_of(voice.engine, voice.id).commercial_use]
