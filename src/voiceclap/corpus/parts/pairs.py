"""The pairs part: the fluent minimal-pair evaluation set, spoken.

Per language, :func:`voiceclap.corpus.minimal_pairs.minimal_pairs` draws pairs of sentences that
differ in one or two words from the HELD-OUT sentences, with the training sentences' fluent context
and no training sentence in any pair. A held-out intelligible voice says both sentences of a pair
with the same prosody and no augmentation (as gold clips: nothing may mask the difference). Each
clip stores the other sentence as ``Candidate(other, error_rate(said, other), "variant")``, and both
share a ``group``. Symmetric by design: a scorer that reads only the texts gives the two clips of a
pair the same two scores the other way round, so it ranks exactly one of them right (0.5).

Pairs go to ``dev`` and ``test``, half each per language, by a seeded draw.
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


def _clips(key: str, split: str, language: str, pair: MinimalPair, voice: Voice, rng: random.Random, seed: int):
    base = planned_clip(key, split, language, voice, pair.said, rng, seed, strength=None)
    return [
        {
            **base,
            "id": f"{key}_{suffix}",
            "text": said,
            "group": key,
            "pair_source": pair.source,
            "candidates": [Candidate(other, error_rate(said, other, language), "variant").to_json()],
        }
        for suffix, said, other in (("a", pair.said, pair.variant), ("b", pair.variant, pair.said))
    ]


def plan_pairs(config: BuildConfig, materials: Materials) -> PartPlan:
    voices = materials.intelligible_voices("heldout")
    languages = [lang for lang in config.languages if lang in voices and materials.fluent_context(lang)]
    if not languages:
        return PartPlan.nothing("no language has both a held-out intelligible voice and a fluent context")
    units: dict[str, list[list[dict]]] = {split: [] for split in SPLITS}
    counts: dict[str, dict[str, int]] = {}
    for language in languages:
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
            units[split_name].append(_clips(key, split_name, language, pair, voice, rng, config.seed))
    description = {"pairs": counts, "voices": {lang: [v.id for v in voices[lang]] for lang in languages}}
    return PartPlan(units, description)
