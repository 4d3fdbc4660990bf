"""The voices part: the better TTS voices (every engine beyond the synthetic part's, see
:data:`voiceclap.corpus.materials.BETTER_ENGINES`) speaking the sentences of every language they
speak, in two splits:

* ``heldout``: held-out voices (one per language that has several) speaking held-out sentences;
* ``train``: the other voices speaking training sentences.

Voices and sentences are held out exactly as for the other parts (:mod:`voiceclap.corpus.materials`),
prosody and augmentation are drawn as in the synthetic part. Clip ids start with ``voices/``.
"""

from __future__ import annotations

from voiceclap.corpus.config import BuildConfig
from voiceclap.corpus.materials import BETTER_ENGINES, SYNTHETIC_ENGINES, Materials
from voiceclap.corpus.parts.base import PartPlan
from voiceclap.corpus.speech import per_language, plan_clips
from voiceclap.corpus.tts import Voice

__all__ = ["SPLITS", "plan_voices"]

SPLITS = ("heldout", "train")
_PREFIX = "voices/"


def _plan(split: str, total: int, voices: dict[str, list[Voice]], sentences, config: BuildConfig) -> list[list[dict]]:
    languages = [lang for lang in config.languages if voices.get(lang)]
    if not languages or not total:
        return []
    counts = per_language(total, languages)
    clips = plan_clips(
        split, counts, sentences, voices, config.seed, config.augment, prefix=_PREFIX, stream=f"voices:{split}"
    )
    return [[clip] for clip in clips]


def plan_voices(config: BuildConfig, materials: Materials) -> PartPlan:
    if not BETTER_ENGINES:
        return PartPlan.nothing(
            "voiceclap.corpus.tts has no engine beyond the synthetic part's "
            f"({', '.join(SYNTHETIC_ENGINES)}): the better voices are not in this installation"
        )
    train_voices, heldout_voices = materials.better_voice_split
    if not train_voices:
        return PartPlan.nothing(
            f"no voice of {', '.join(BETTER_ENGINES)} speaks {', '.join(config.languages)} here "
            "(scripts/install_corpus_tools.sh installs them)"
        )
    splits = {lang: materials.sentence_split(lang) for lang in train_voices}
    units = {
        "heldout": _plan(
            "heldout", config.voices_heldout_clips, heldout_voices, {k: s.held for k, s in splits.items()}, config
        ),
        "train": _plan("train", config.voices_clips, train_voices, {k: s.train for k, s in splits.items()}, config),
    }
    description = {
        "train_voices": {lang: [v.id for v in vs] for lang, vs in train_voices.items()},
        "heldout_voices": {lang: [v.id for v in vs] for lang, vs in heldout_voices.items() if vs},
        "no_heldout_voice": sorted(lang for lang, vs in heldout_voices.items() if not vs),
        "augment": config.augment,
    }
    return PartPlan(units, description)
