"""The pairs part: the fluent minimal-pair evaluation set, spoken.

Per language, :func:`voiceclap.corpus.minimal_pairs.minimal_pairs` draws pairs of sentences that
differ in one or two words from the HELD-OUT sentences, with the training sentences' fluent context
and no training sentence in any pair. A held-out intelligible voice says both sentences of a pair
with the same prosody and no augmentation (as gold clips: nothing may mask the difference). Each
clip stores the other sentence as ``Candidate(other, error_rate(said, other), "variant")``, and both
share a ``group``. Symmetric by design: a scorer that reads only the texts gives the two clips of a
pair the same two scores the other way round, so it ranks exactly one of them right (0.5).

Pairs go to ``dev`` and ``test``, half each per language, by a seeded draw.

A language without a held-out intelligible voice (Spanish and Italian: their held-out voices are
MBROLA voices that do not say their text, :data:`voiceclap.corpus.materials.UNCLEAR_VOICES`) is
spoken by its intelligible training voices instead: its sentences are still unseen, its voices not.
Every clip says which (``voice_held_out``), and ``plan.json`` lists such languages.
"""

from __future__ import annotations

import random

from voiceclap.clips import Candidate
from voiceclap.corpus.config import BuildConfig
from voiceclap.corpus.materials import Materials
from voiceclap.corpus.minimal_pairs import MinimalPair, minimal_pairs
from voiceclap.corpus.parts.base import PartPlan
from voiceclap.corpus.speech import pick_voice, planned_clip
from voiceclap.corpus.tts import Voice
from voiceclap.metrics import error_rate

__all__ = ["SPLITS", "plan_pairs"]

SPLITS = ("dev", "test")


def _clips(
    key: str, split: str, language: str, pair: MinimalPair, voice: Voice, held_out: bool, rng: random.Random, seed: int
) -> list[dict]:
    """The two planned clips of a pair: one voice, one prosody, each labelled with the other's text."""
    base = planned_clip(key, split, language, voice, pair.said, rng, seed, strength=None)
    return [
        {
            **base,
            "id": f"{key}_{suffix}",
            "text": said,
            "group": key,
            "pair_source": pair.source,
            "voice_held_out": held_out,
            "candidates": [Candidate(other, error_rate(said, other, language), "variant").to_json()],
        }
        for suffix, said, other in (("a", pair.said, pair.variant), ("b", pair.variant, pair.said))
    ]


def plan_pairs(config: BuildConfig, materials: Materials) -> PartPlan:
    heldout, train = materials.intelligible_voices("heldout"), materials.intelligible_voices("train")
    voices = {lang: heldout.get(lang) or train[lang] for lang in config.languages if lang in heldout or lang in train}
    languages = [lang for lang in voices if materials.fluent_context(lang)]
    if not languages:
        return PartPlan.nothing("no language has both an intelligible voice and a fluent context")
    units: dict[str, list[list[dict]]] = {split: [] for split in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    for language in languages:
        held_out = language in heldout
        split = materials.sentence_split(language)
        pairs = minimal_pairs(
            split.held, language, config.pairs_per_language, config.seed, materials.fluent_context(language),
            exclude=split.train,
        )
        rng = random.Random(f"{config.seed}:pairs:{language}")
        order = list(range(len(pairs)))
        rng.shuffle(order)
        dev = set(order[: len(pairs) // 2])
        counts[language] = {"dev": len(dev), "test": len(pairs) - len(dev),
                            "substitution": sum(p.source == "substitution" for p in pairs)}
        for i, pair in enumerate(pairs):
            split_name = "dev" if i in dev else "test"
            key = f"pairs/{language.upper()}_{i:05d}"
            voice = pick_voice(voices[language], rng)
            units[split_name].append(_clips(key, split_name, language, pair, voice, held_out, rng, config.seed))
    description = {
        "pairs": counts,
        "voices": {lang: [v.id for v in voices[lang]] for lang in languages},
        "voices_seen_in_training": [lang for lang in languages if lang not in heldout],
    }
    return PartPlan(units, description)
