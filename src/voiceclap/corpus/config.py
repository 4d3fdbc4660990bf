"""The corpus build's settings: one :class:`BuildConfig` for the driver and every part."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voiceclap.corpus.sentences import SENTENCE_LANGUAGES, default_sources_dir
from voiceclap.corpus.tts import ENGINES

__all__ = ["PARTS", "SPLIT_MODES", "BuildConfig"]

#: The parts of the corpus, in build order: evaluation-critical and cheap first, the annotation of
#: the finished training shards last.
PARTS = ("synthetic", "recorded", "voices", "spoken", "pairs", "annotate")
SPLIT_MODES = ("voice-sentence", "clip-hash")


@dataclass
class BuildConfig:
    out: Path = Path("data/corpus")
    parts: Sequence[str] = PARTS
    seed: int = 0
    languages: Sequence[str] = SENTENCE_LANGUAGES  # the synthetic part speaks those of sentences.LANGUAGES
    engines: Sequence[str] = tuple(ENGINES)
    commercial_only: bool = False  # only sources whose terms allow selling a model trained on them
    workers: int = 2
    shard_size: int = 500
    max_sentences: int | None = None
    augment: str = "mild"  # a key of augment.STRENGTHS
    sources: Path = field(default_factory=default_sources_dir)
    progress: bool = True
    # synthetic
    train_clips: int = 50_000
    heldout_clips: int = 2_500
    gold_clips: int = 1_000
    split_mode: str = "voice-sentence"
    # voices
    voices_clips: int = 20_000
    voices_heldout_clips: int = 1_000
    # spoken
    spoken_clips: int = 10_000
    # pairs
    pairs_per_language: int = 200
    # annotate
    fluent_k: int = 2
    annotate_shards: Sequence[str] = ()  # shards besides the build's training shards (e.g. Emilia's)
