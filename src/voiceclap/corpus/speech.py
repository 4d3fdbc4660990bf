"""Synthesized clips, planned and rendered: what every TTS part of the corpus shares.

A planned clip is a JSON-able dict drawn up front from the build's seed (:func:`planned_clip`): its
id, text, language, voice, prosody (rate, pitch, volume) and augmentation. :func:`render_unit` turns
planned clips into clip records with 16 kHz FLAC audio, in a build worker. The dict may carry
``spoken_text`` (what the audio says, when that differs from ``text``: gold clips), ``intended_text``,
``true_wer``, ``group`` and ``candidates`` (clip record fields); its other keys are kept as the
record's ``extra``. Everything here reproduces the first corpus's plan and bytes exactly.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from voiceclap.audio import SAMPLE_RATE, AudioDecodeError, to_mono_16k
from voiceclap.clips import Candidate, Clip
from voiceclap.corpus import augment
from voiceclap.corpus.shards import UnitFailed, flac
from voiceclap.corpus.tts import SynthesisError, Voice, synthesize

__all__ = [
    "Cycler",
    "hash_int",
    "per_language",
    "pick_voice",
    "plan_clips",
    "planned_clip",
    "render_unit",
]

# Prosody ranges: wide enough to vary speakers, narrow enough to stay intelligible.
_RATE = (0.85, 1.25)
_PITCH = (0.85, 1.2)
_VOLUME = (0.3, 1.0)
# Keys of a planned clip that are clip record fields rather than extra metadata.
_RECORD_KEYS = ("id", "text", "language", "speaker", "seed", "spoken_text", "intended_text", "true_wer", "group",
                "candidates")


def hash_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha1(":".join(map(str, parts)).encode("utf-8")).digest()[:8], "big")


def per_language(total: int, languages: Sequence[str]) -> dict[str, int]:
    """``total`` split over ``languages`` as evenly as integers allow (the first ones get the rest)."""
    base, extra = divmod(total, len(languages))
    return {lang: base + (i < extra) for i, lang in enumerate(languages)}


class Cycler:
    """Draws from a list without replacement, reshuffling when exhausted, so every sentence is used
    once before any is repeated."""

    def __init__(self, items: Sequence, rng: random.Random) -> None:
        self.items, self.rng, self.pool = list(items), rng, []

    def next(self):
        if not self.pool:
            self.pool = self.items[:]
            self.rng.shuffle(self.pool)
        return self.pool.pop()


def pick_voice(voices: list[Voice], rng: random.Random) -> Voice:
    # Engine first, uniformly, then a voice of it: otherwise espeak's many variants would swamp
    # the four MBROLA voices and the single Pico voice of a language.
    engines = sorted({v.engine for v in voices})
    engine = engines[rng.randrange(len(engines))]
    of_engine = [v for v in voices if v.engine == engine]
    return of_engine[rng.randrange(len(of_engine))]


def planned_clip(
    key: str,
    split: str,
    language: str,
    voice: Voice,
    text: str,
    rng: random.Random,
    seed: int,
    strength: str | None,
) -> dict:
    """A clip's plan: prosody and augmentation (none when ``strength`` is None) drawn from ``rng``."""
    return {
        "id": key,
        "text": text,
        "language": language,
        "speaker": voice.id,
        "engine": voice.engine,
        "split": split,
        "rate": round(rng.uniform(*_RATE), 3),
        "pitch": round(rng.uniform(*_PITCH), 3),
        "volume": round(rng.uniform(*_VOLUME), 3),
        "augmentation": augment.draw(rng, strength).as_json() if strength else {},
        "seed": hash_int(seed, "clip", key) & 0x7FFFFFFF,
    }


def plan_clips(
    split: str,
    counts: dict[str, int],
    sentences: dict[str, list[str]],
    voices: dict[str, list[Voice]],
    seed: int,
    strength: str | None,
    prefix: str = "",
    stream: str | None = None,
) -> list[dict]:
    """``counts[language]`` clips per language, each a sentence (every one used before any repeats)
    spoken by a voice of the language, shuffled so that every shard mixes languages and voices.
    Ids are ``<prefix><LANGUAGE>_<split>_<n>``; ``stream`` names the random stream (default: the split)."""
    rng = random.Random(f"{seed}:{stream or split}")
    clips = []
    for language, count in counts.items():
        cycler = Cycler(sentences[language], rng)
        for _ in range(count):
            clips.append((language, pick_voice(voices[language], rng), cycler.next()))
    # Shuffle so that every shard mixes languages and voices (training reads shards in order).
    rng.shuffle(clips)
    return [
        planned_clip(f"{prefix}{language.upper()}_{split}_{i:07d}", split, language, voice, text, rng, seed, strength)
        for i, (language, voice, text) in enumerate(clips)
    ]


def _render(clip: dict) -> tuple[bytes, float]:
    """Synthesize one planned clip: (FLAC bytes, duration in seconds)."""
    voice = Voice.from_id(clip["speaker"], clip["language"])
    text = clip.get("spoken_text", clip["text"])
    audio = to_mono_16k(*synthesize(text, voice, clip["rate"], clip["pitch"], clip["volume"]))
    audio = augment.apply(audio, SAMPLE_RATE, augment.Augmentation(**clip["augmentation"]), clip["seed"])
    return flac(audio), len(audio) / SAMPLE_RATE


def _record(clip: dict, duration: float) -> Clip:
    """A planned clip as the shared clip record: the text is what the audio says."""
    return Clip(
        clip["id"],
        clip.get("spoken_text", clip["text"]),
        clip["language"],
        duration=round(duration, 3),
        speaker=clip["speaker"],
        source=clip["engine"],
        intended_text=clip.get("intended_text"),
        true_wer=clip.get("true_wer"),
        group=clip.get("group"),
        candidates=[Candidate(**c) for c in clip.get("candidates", ())],
        extra={k: v for k, v in clip.items() if k not in _RECORD_KEYS},
    )


def render_unit(unit: list[dict]) -> list[tuple[Clip, bytes]]:
    """The planned clips of a unit synthesized, or :class:`UnitFailed` when any one cannot be."""
    rendered = []
    for clip in unit:
        try:
            audio, duration = _render(clip)
        except (SynthesisError, AudioDecodeError) as error:  # no audio, or audio that is not finite
            raise UnitFailed(f"{clip['id']}: {error}", clip["engine"]) from error
        rendered.append((_record(clip, duration), audio))
    return rendered
