"""The parts of the corpus, each planned and rendered by its own module; the shards, their pool and
their resumption are :mod:`voiceclap.corpus.shards`'s, for all of them.

* :mod:`.synthetic`: the first corpus's robotic voices (``heldout``, ``gold``, ``train``);
* :mod:`.recorded`: recorded human speech from Debian packages (``train``, ``dev``, ``test``);
* :mod:`.voices`: the better TTS voices (``heldout``, ``train``);
* :mod:`.spoken`: spoken negatives, a sentence and its corruption said alike (``train``);
* :mod:`.pairs`: the fluent minimal-pair evaluation set, spoken (``dev``, ``test``).
"""

from voiceclap.corpus.parts.base import Part, PartPlan
from voiceclap.corpus.parts.pairs import plan_pairs
from voiceclap.corpus.parts.recorded import plan_recorded, render_recorded
from voiceclap.corpus.parts.spoken import plan_spoken
from voiceclap.corpus.parts.synthetic import plan_synthetic
from voiceclap.corpus.parts.voices import plan_voices
from voiceclap.corpus.speech import render_unit

__all__ = ["SHARD_PARTS", "Part", "PartPlan"]

#: The parts that are shards, by name, in build order.
SHARD_PARTS: dict[str, Part] = {
    part.name: part
    for part in (
        Part("synthetic", "the first corpus's robotic voices (espeak-ng, MBROLA, Pico, flite): heldout, gold, train",
             plan_synthetic, render_unit),
        Part("recorded", "recorded human speech from Debian packages: train, dev, test (recorded/report.md)",
             plan_recorded, render_recorded),
        Part("voices", "the better TTS voices speaking the sentences of their languages: heldout, train",
             plan_voices, render_unit),
        Part("spoken", "spoken negatives: a sentence and its corruption said by one voice alike: train",
             plan_spoken, render_unit),
        Part("pairs", "the fluent minimal-pair evaluation set, spoken by held-out voices: dev, test",
             plan_pairs, render_unit),
    )
}
