"""The synthetic part: the first corpus's robotic voices (espeak-ng, MBROLA, Pico, flite) speaking the
sentences, in three splits, planned exactly as the first corpus was (its shards count as done).

* ``heldout``: held-out voices speaking held-out sentences (or, in ``clip-hash`` mode, clips held
  out by a hash of their id, voices and sentences shared with training: the seed's protocol);
* ``gold``: held-out voices speaking *corrupted* held-out sentences, with the true WER of what the
  audio says against the intended sentence; never degraded, so that no noise masks a word;
* ``train``: each shard mixes languages, engines and voices.

Per clip, ``<key>.json`` carries ``id``, ``text`` (what the audio says), ``language``, ``speaker``
(the voice id, e.g. ``pico:de-DE``), ``source`` (the engine) and ``duration``, plus ``engine``,
``split``, ``rate``, ``pitch``, ``volume``, ``augmentation``; gold clips add ``intended_text``,
``true_wer``, ``edit_fraction`` and ``ops``.
"""

from __future__ import annotations

import random

from voiceclap.corpus.config import SPLIT_MODES, BuildConfig
from voiceclap.corpus.materials import Materials
from voiceclap.corpus.parts.base import PartPlan
from voiceclap.corpus.speech import Cycler, hash_int, per_language, pick_voice, plan_clips, planned_clip
from voiceclap.corpus.tts import Voice

__all__ = ["GOLD_FRACTIONS", "SPLITS", "plan_synthetic"]

SPLITS = ("heldout", "gold", "train")  # also the build order: evaluation splits first
# Requested corruption fractions of gold clips, cycled per language so each level (clean
# included) is equally represented; the measured WER then spreads around each level.
GOLD_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75)


def _plan_gold(
    counts: dict[str, int],
    sentences: dict[str, list[str]],
    voices: dict[str, list[Voice]],
    vocab_sentences: dict[str, list[str]],
    seed: int,
) -> list[dict]:
    # Imported here: the corruption stack (jiwer, scipy) is only needed for gold clips.
    from voiceclap.corruption import build_vocabulary, corrupt_transcript
    from voiceclap.metrics import error_rate

    rng = random.Random(f"{seed}:gold")
    clips = []
    for language, count in counts.items():
        vocabulary = build_vocabulary(vocab_sentences[language], language, max_size=20000)
        cycler = Cycler(sentences[language], rng)
        for i in range(count):
            intended = cycler.next()
            fraction = GOLD_FRACTIONS[i % len(GOLD_FRACTIONS)]
            if fraction > 0:
                corruption = corrupt_transcript(intended, language, fraction, vocabulary, rng)
                spoken, edit_fraction, ops = corruption.text, corruption.edit_fraction, list(corruption.ops)
            else:
                spoken, edit_fraction, ops = intended, 0.0, []
            voice = pick_voice(voices[language], rng)
            key = f"{language.upper()}_gold_{len(clips):07d}"
            # No added noise/reverb/codec on gold clips: their label is what the voice says, and
            # heavy noise could mask a word and make the by-construction WER wrong.
            clip = planned_clip(key, "gold", language, voice, intended, rng, seed, strength=None)
            clip.update(
                intended_text=intended,
                spoken_text=spoken,
                true_wer=error_rate(intended, spoken, language),
                edit_fraction=edit_fraction,
                ops=ops,
            )
            clips.append(clip)
    return clips


def _voice_ids(voices: dict[str, list[Voice]]) -> dict[str, list[str]]:
    return {lang: [v.id for v in vs] for lang, vs in voices.items()}


def plan_synthetic(config: BuildConfig, materials: Materials) -> PartPlan:
    """The clip plan per split (units of one clip) and a description of it (voices, sentence pools)."""
    languages = materials.synthetic_languages
    if not languages:
        return PartPlan.nothing(f"none of its languages ({', '.join(config.languages)}) is one of the synthetic part's")
    sentences = {lang: materials.sentences[lang] for lang in languages}
    heldout_counts = per_language(config.heldout_clips, languages)
    gold_counts = per_language(config.gold_clips, languages)
    train_counts = per_language(config.train_clips, languages)
    info: dict = {"split_mode": config.split_mode, "languages": languages}
    if config.split_mode not in SPLIT_MODES:
        raise ValueError(f"split mode must be one of {SPLIT_MODES}, got {config.split_mode!r}")

    if config.split_mode == "voice-sentence":
        train_voices, heldout_voices = materials.synthetic_voice_split
        splits = {lang: materials.sentence_split(lang) for lang in languages}
        plan = {
            "heldout": plan_clips(
                "heldout",
                heldout_counts,
                {lang: s.heldout for lang, s in splits.items()},
                heldout_voices,
                config.seed,
                config.augment,
            ),
            "gold": _plan_gold(
                gold_counts, {lang: s.gold for lang, s in splits.items()}, heldout_voices, sentences, config.seed
            ),
            "train": plan_clips(
                "train",
                train_counts,
                {lang: s.train for lang, s in splits.items()},
                train_voices,
                config.seed,
                config.augment,
            ),
        }
        info["heldout_voices"] = _voice_ids(heldout_voices)
        info["train_voices"] = _voice_ids(train_voices)
        info["sentences"] = {
            lang: {"train": len(s.train), "heldout": len(s.heldout), "gold": len(s.gold)} for lang, s in splits.items()
        }
    else:
        # The seed's protocol: one pool of clips, held out by a hash of the clip id, so voices and
        # sentences are shared between the splits (measures fit, not generalisation).
        voices = materials.synthetic_voices
        counts = {lang: train_counts[lang] + heldout_counts[lang] for lang in languages}
        pooled = plan_clips("all", counts, sentences, voices, config.seed, config.augment)
        fraction = config.heldout_clips / max(1, config.train_clips + config.heldout_clips)
        plan = {"heldout": [], "train": []}
        for clip in pooled:
            split = "heldout" if hash_int(config.seed, "clip-split", clip["id"]) / 2**64 < fraction else "train"
            clip["split"] = split
            clip["id"] = clip["id"].replace("_all_", f"_{split}_")
            plan[split].append(clip)
        gold_sentences = {
            # A language with no held-out clip (tiny builds) falls back to all its sentences.
            lang: sorted({c["text"] for c in plan["heldout"] if c["language"] == lang}) or sentences[lang]
            for lang in languages
        }
        plan["gold"] = _plan_gold(gold_counts, gold_sentences, voices, sentences, config.seed)
        info["voices"] = _voice_ids(voices)
        info["sentences"] = {lang: len(sentences[lang]) for lang in languages}
    info.update(max_sentences=config.max_sentences, augment=config.augment)
    return PartPlan({split: [[clip] for clip in plan[split]] for split in SPLITS}, info)
