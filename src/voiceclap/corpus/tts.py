"""The corpus builder's TTS: the engine registry, synthesis by voice, and voice discovery.

Engines (one module each under :mod:`voiceclap.corpus.engines`): espeak-ng, espeak-ng + MBROLA,
SVOX Pico, flite, RHVoice, Festival HTS voices, Open JTalk (subprocesses), Piper and hibari (ONNX
models run in process). Every engine has the same call,
``synthesize(text, voice, rate, pitch, volume) -> (waveform, sr)``:

* ``rate``: speaking-rate factor, 1.0 = the engine's default tempo;
* ``pitch``: factor on the voice's base pitch, 1.0 = default; flite, Festival, Piper and hibari
  have no pitch control and ignore it;
* ``volume``: linear gain applied to the peak-normalised waveform (engines differ wildly in level;
  normalising first makes the gain mean the same thing for every engine).

A :class:`Voice` is one engine + one engine-level voice name; its ``id`` (``espeak:de+m3``,
``mbrola:de4``, ``pico:de-DE``, ``flite:slt``, ``rhvoice:anna``, ``festival:upc_ca_ona_hts``,
``openjtalk:nitech_jp_atr503_m001``, ``piper:joe``, ``hibari:heart``) is the clip's ``speaker`` in
the corpus. :func:`discover_voices` lists the voices that really produce audio on this machine; an
engine that is not installed simply has none.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from voiceclap.corpus.engines.base import Engine, SynthesisError, Voice
from voiceclap.corpus.engines.espeak import EspeakEngine, MbrolaEngine
from voiceclap.corpus.engines.festival import FestivalEngine
from voiceclap.corpus.engines.flite import FliteEngine
from voiceclap.corpus.engines.hibari_tts import HibariEngine
from voiceclap.corpus.engines.openjtalk import OpenJTalkEngine
from voiceclap.corpus.engines.pico import PicoEngine
from voiceclap.corpus.engines.piper_tts import PiperEngine
from voiceclap.corpus.engines.rhvoice import RHVoiceEngine

__all__ = [
    "ENGINES",
    "SynthesisError",
    "Voice",
    "discover_voices",
    "get_engine",
    "synthesize",
]

ENGINES: dict[str, Engine] = {
    engine.name: engine
    for engine in (
        EspeakEngine(),
        MbrolaEngine(),
        PicoEngine(),
        FliteEngine(),
        RHVoiceEngine(),
        FestivalEngine(),
        OpenJTalkEngine(),
        PiperEngine(),
        HibariEngine(),
    )
}


def get_engine(name: str) -> Engine:
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"unknown TTS engine {name!r}; known: {', '.join(ENGINES)}") from None


def synthesize(
    text: str, voice: Voice, rate: float = 1.0, pitch: float = 1.0, volume: float = 1.0
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice``: (float32 mono waveform at the engine's rate, sample rate)."""
    return get_engine(voice.engine).synthesize(text, voice, rate, pitch, volume)


# A short sentence per language to check that a voice really speaks (a missing MBROLA database,
# for instance, makes espeak-ng exit 0 with no audio, or fail only at synthesis time).
PROBE_TEXT = {
    "ca": "Bon dia, com estàs?",
    "de": "Guten Morgen, wie geht es dir?",
    "en": "Good morning, how are you?",
    "eo": "Bonan matenon, kiel vi fartas?",
    "es": "Buenos días, ¿cómo estás?",
    "fr": "Bonjour, comment allez-vous ?",
    "it": "Buongiorno, come stai?",
    "ja": "おはようございます、お元気ですか。",
    "ky": "Кутман таң, кандайсың?",
    "mk": "Добро утро, како си?",
    "pl": "Dzień dobry, jak się masz?",
    "pt": "Bom dia, como você está?",
    "ru": "Доброе утро, как дела?",
    "sq": "Mirëmëngjes, si jeni?",
    "tt": "Хәерле иртә, хәлләр ничек?",
    "uk": "Добрий ранок, як справи?",
}


def discover_voices(languages: Iterable[str], engines: Iterable[str] | None = None) -> dict[str, list[Voice]]:
    """Per language, the sorted voices of the selected engines that speak on this machine."""
    selected = [get_engine(name) for name in (engines if engines is not None else ENGINES)]
    result: dict[str, list[Voice]] = {}
    for language in languages:
        found = []
        for engine in selected:
            if not engine.available():
                continue
            for voice in engine.voices(language):
                try:
                    engine.synthesize(PROBE_TEXT[language], voice)
                except SynthesisError:
                    continue
                found.append(voice)
        result[language] = sorted(found)
    return result
