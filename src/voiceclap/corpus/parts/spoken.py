"""The spoken part: spoken negatives. An intelligible training voice
(:data:`voiceclap.corpus.materials.INTELLIGIBLE_ENGINES`) says a training sentence AND a corrupted
version of it, with the same prosody and the same augmentation (one draw for both clips, the same
noise seed): the two clips differ only in the words.

The corrupted text is a natural word substitution (:func:`voiceclap.fluent.substitute_words`, one
word, else two) from the language's fluent context where one exists, else the card's corruption
(:func:`voiceclap.corruption.corrupt_transcript`, an edit fraction drawn from
:data:`CARD_FRACTIONS`). Both clips share a ``group`` (the pair's id) and are adjacent in one shard,
in random order; each stores the other's text as ``Candidate(other, error_rate(said, other),
"spoken")``. The corrupted clip also has ``intended_text`` (the sentence) and ``true_wer``; both
have ``corruption`` (``fluent`` or ``card``). ``--spoken-clips`` counts clips (two per pair).
"""

from __future__ import annotations

import random
from collections import Counter

from voiceclap.clips import Candidate
from voiceclap.corpus.config import BuildConfig
from voiceclap.corpus.materials import Materials
from voiceclap.corpus.parts.base import PartPlan
from voiceclap.corpus.speech import Cycler, per_language, pick_voice, planned_clip
from voiceclap.corruption import Vocabulary, build_vocabulary, corrupt_transcript
from voiceclap.fluent import FluentContext, substitute_words
from voiceclap.metrics import error_rate

__all__ = ["CARD_FRACTIONS", "SPLITS", "plan_spoken"]

SPLITS = ("train",)
#: Edit fraction range of the card corruptions (one edit at least).
CARD_FRACTIONS = (0.1, 0.3)
_MAX_SUBSTITUTED_WORDS = 2
# Sentences drawn per wanted pair before a language gives up (a corruption may say the same thing).
_ATTEMPTS_PER_PAIR = 3


def _corrupt(
    sentence: str, language: str, context: FluentContext | None, vocabulary: Vocabulary, rng: random.Random
) -> tuple[str, dict]:
    """(corrupted text, what was done to it)."""
    if context is not None:
        for n_words in range(1, _MAX_SUBSTITUTED_WORDS + 1):
            candidate = substitute_words(sentence, context, rng, n_words)
            if candidate is not None:
                return candidate.text, {"corruption": "fluent", "words": n_words}
    corruption = corrupt_transcript(sentence, language, rng.uniform(*CARD_FRACTIONS), vocabulary, rng)
    return corruption.text, {"corruption": "card", "edit_fraction": corruption.edit_fraction, "ops": list(corruption.ops)}


def _pair(key: str, language: str, said: str, other: str, how: dict, base: dict, rng: random.Random) -> list[dict]:
    """The two planned clips of a spoken pair, in random order."""
    label = {"group": key, **how}
    original = {
        **base,
        **label,
        "id": f"{key}_a",
        "text": said,
        "candidates": [Candidate(other, error_rate(said, other, language), "spoken").to_json()],
    }
    corrupted = {
        **base,
        **label,
        "id": f"{key}_b",
        "text": other,
        "intended_text": said,
        "true_wer": error_rate(said, other, language),
        "candidates": [Candidate(said, error_rate(other, said, language), "spoken").to_json()],
    }
    pair = [original, corrupted]
    rng.shuffle(pair)  # which comes first must not tell which is the original
    return pair


def plan_spoken(config: BuildConfig, materials: Materials) -> PartPlan:
    voices = materials.intelligible_voices("train")
    languages = [lang for lang in config.languages if lang in voices]
    if not languages:
        return PartPlan.nothing("no intelligible training voice in any language")
    if config.spoken_clips < 2:
        return PartPlan.nothing("--spoken-clips asks for no pair")
    rng = random.Random(f"{config.seed}:spoken")
    units: list[list[dict]] = []
    made: dict[str, Counter] = {}
    for language, n_pairs in per_language(config.spoken_clips // 2, languages).items():
        sentences = materials.sentence_split(language).train
        context = materials.fluent_context(language)
        vocabulary = build_vocabulary(sentences, language, max_size=20000)
        cycler = Cycler(sentences, rng)
        made[language] = Counter()
        pairs = 0
        for _ in range(n_pairs * _ATTEMPTS_PER_PAIR):
            if pairs == n_pairs:
                break
            said = cycler.next()
            other, how = _corrupt(said, language, context, vocabulary, rng)
            if error_rate(said, other, language) == 0:  # e.g. two equal words swapped
                made[language]["unchanged"] += 1
                continue
            key = f"spoken/{language.upper()}_{pairs:07d}"
            voice = pick_voice(voices[language], rng)
            base = planned_clip(key, "train", language, voice, said, rng, config.seed, config.augment)
            units.append(_pair(key, language, said, other, how, base, rng))
            made[language][how["corruption"]] += 1
            pairs += 1
    rng.shuffle(units)  # every shard mixes languages
    description = {
        "pairs": {lang: dict(counts) for lang, counts in made.items()},
        "voices": {lang: [v.id for v in voices[lang]] for lang in languages},
        "augment": config.augment,
    }
    return PartPlan({"train": units}, description)
