"""What the TTS parts plan from: the sentences, the voices that speak on this machine, their split
into training and held-out, and the fluent context of each language's training sentences.

Engines are data: the synthetic part speaks with :data:`SYNTHETIC_ENGINES` (the first corpus's
voices), the voices part with every other engine of :data:`voiceclap.corpus.tts.ENGINES`, and
spoken negatives and minimal pairs with :data:`INTELLIGIBLE_ENGINES` plus those. One split serves
every part: a sentence or voice held out of one part's training is held out of all of them.

* Sentences: per language, the held-out ones are those with the smallest seeded hash; a language of
  the synthetic part holds out as many as its held-out and gold clips (the first corpus's rule),
  any other language as many as the first of them.
* Voices: the synthetic part holds out one voice of every engine with several voices in a
  language and two whole espeak-ng variants; the voices part holds out one voice of every language
  that has several (a language with one voice has no held-out voice).

Everything is loaded on first use, so a build of the recorded part alone probes no voice.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from voiceclap.corpus.config import BuildConfig
from voiceclap.corpus.licenses import commercial
from voiceclap.corpus.sentences import LANGUAGES, load_sentences
from voiceclap.corpus.speech import hash_int, per_language
from voiceclap.corpus.tts import ENGINES, Voice, discover_voices
from voiceclap.fluent import FluentContext
from voiceclap.text import uses_characters

__all__ = [
    "BETTER_ENGINES",
    "INTELLIGIBLE_ENGINES",
    "MIN_CONTEXT_SENTENCES",
    "SYNTHETIC_ENGINES",
    "SYNTHETIC_LANGUAGES",
    "UNCLEAR_VOICES",
    "Materials",
    "SentenceSplit",
]

#: The synthetic part's engines and languages: the first corpus's robotic voices.
SYNTHETIC_ENGINES = ("espeak", "mbrola", "pico", "flite")
SYNTHETIC_LANGUAGES = LANGUAGES
#: The voices part's engines: every other engine the build knows.
BETTER_ENGINES = tuple(name for name in ENGINES if name not in SYNTHETIC_ENGINES)
#: Voices that carry a one-word difference (spoken negatives, minimal pairs). whisper-base's CER on
#: clean speech, 10 sentences per voice (docs/CORPUS.md): Pico 0.005-0.07, flite (en) 0.003-0.06,
#: MBROLA de/en 0.05-0.14 and fr 0.16-0.29, against 0.06-0.10 (en) and 0.20-0.57 (de, fr, es, it)
#: for espeak-ng's formant voices, which are left out.
INTELLIGIBLE_ENGINES = ("mbrola", "pico", "flite", *BETTER_ENGINES)
#: Voices of those engines that do not say their text: with espeak-ng 1.51 as front end, MBROLA
#: reports diphones its database lacks ("unknown, replaced with _-_": silence instead) in 73-100 % of
#: sentences for es1-es4 and it1-it4 and in 60 % for de8 (at most 7 % for every other voice; 30
#: sentences per voice), and whisper-base's CER is 0.21-0.58 on them.
UNCLEAR_VOICES = frozenset(
    {"mbrola:de8", "mbrola:es1", "mbrola:es2", "mbrola:es3", "mbrola:es4", "mbrola:it1", "mbrola:it2",
     "mbrola:it3", "mbrola:it4"}
)
#: A language's fluent context needs at least this many training sentences: with fewer, hardly a
#: word is seen MIN_COUNT times in one context, and no substitution can be drawn.
MIN_CONTEXT_SENTENCES = 100
# espeak-ng variants held out from training, per language (they apply to every language voice).
_HELDOUT_ESPEAK_VARIANTS = 2


@dataclass(frozen=True)
class SentenceSplit:
    train: list[str]
    heldout: list[str]
    gold: list[str]

    @property
    def held(self) -> list[str]:
        """Every sentence unseen in training."""
        return self.heldout + self.gold


def split_synthetic_voices(
    voices: dict[str, list[Voice]], seed: int
) -> tuple[dict[str, list[Voice]], dict[str, list[Voice]]]:
    """(train voices, held-out voices) per language: one voice of every engine that has several
    voices in a language (MBROLA, flite, English Pico), and for espeak-ng two whole variants."""
    rng = random.Random(f"{seed}:voices")
    variants = sorted({v.name.split("+", 1)[1] for vs in voices.values() for v in vs if v.engine == "espeak"})
    heldout_variants = set(rng.sample(variants, min(_HELDOUT_ESPEAK_VARIANTS, max(0, len(variants) - 1))))
    train, heldout = {}, {}
    for language, language_voices in voices.items():
        held = set()
        for engine in sorted({v.engine for v in language_voices}):
            engine_voices = [v for v in language_voices if v.engine == engine]
            if engine == "espeak":
                held.update(v for v in engine_voices if v.name.split("+", 1)[1] in heldout_variants)
            elif len(engine_voices) >= 2:
                held.add(engine_voices[rng.randrange(len(engine_voices))])
        train[language] = [v for v in language_voices if v not in held]
        heldout[language] = [v for v in language_voices if v in held]
        if not train[language] or not heldout[language]:
            raise RuntimeError(
                f"{language}: {len(language_voices)} voice(s) cannot give both training and held-out voices; "
                "install more engines (scripts/install_corpus_tools.sh)"
            )
    return train, heldout


def split_better_voices(
    voices: dict[str, list[Voice]], seed: int
) -> tuple[dict[str, list[Voice]], dict[str, list[Voice]]]:
    """(train voices, held-out voices) per language: one seeded voice held out where there are several."""
    train, heldout = {}, {}
    for language, language_voices in voices.items():
        held = []
        if len(language_voices) >= 2:
            held = [random.Random(f"{seed}:better-voices:{language}").choice(language_voices)]
        train[language] = [v for v in language_voices if v not in held]
        heldout[language] = held
    return train, heldout


def _split_sentences(sentences: list[str], n_heldout: int, seed: int, language: str) -> tuple[list[str], list[str]]:
    """(train, held-out) sentences: the held-out ones are those with the smallest seeded hash."""
    ranked = sorted(sentences, key=lambda s: hash_int(seed, "sentence", language, s))
    n_heldout = min(n_heldout, len(ranked) // 4)
    if n_heldout < 2:
        raise RuntimeError(f"{language}: only {len(sentences)} sentences; too few for a held-out set")
    return ranked[n_heldout:], ranked[:n_heldout]


def _merge(*splits: dict[str, list[Voice]]) -> dict[str, list[Voice]]:
    merged: dict[str, list[Voice]] = {}
    for split in splits:
        for language, voices in split.items():
            merged.setdefault(language, []).extend(voices)
    return merged


class Materials:
    """Sentences, voices and splits for one :class:`BuildConfig`, loaded when first asked for."""

    def __init__(self, config: BuildConfig) -> None:
        self.config = config
        self._sentence_splits: dict[str, SentenceSplit] = {}
        self._contexts: dict[str, FluentContext | None] = {}

    @property
    def synthetic_languages(self) -> list[str]:
        """The synthetic part's languages, in the order given (per-language counts follow it)."""
        return [lang for lang in self.config.languages if lang in SYNTHETIC_LANGUAGES]

    @cached_property
    def sentences(self) -> dict[str, list[str]]:
        return load_sentences(self.config.languages, self.config.sources, max_sentences=self.config.max_sentences)

    @cached_property
    def voices(self) -> dict[str, list[Voice]]:
        """Per language, the voices of the selected engines that speak here (sorted), only those whose
        terms allow commercial use under ``commercial_only``."""
        found = discover_voices(self.config.languages, self.config.engines)
        if self.config.commercial_only:
            found = {language: commercial(voices) for language, voices in found.items()}
        return found

    def engine_voices(self, engines: tuple[str, ...], languages: list[str]) -> dict[str, list[Voice]]:
        return {lang: [v for v in self.voices[lang] if v.engine in engines] for lang in languages}

    @cached_property
    def synthetic_voices(self) -> dict[str, list[Voice]]:
        voices = self.engine_voices(SYNTHETIC_ENGINES, self.synthetic_languages)
        missing = [lang for lang, found in voices.items() if not found]
        if missing:
            raise RuntimeError(f"no working TTS voice for {missing}; run scripts/install_corpus_tools.sh")
        return voices

    @cached_property
    def synthetic_voice_split(self) -> tuple[dict[str, list[Voice]], dict[str, list[Voice]]]:
        return split_synthetic_voices(self.synthetic_voices, self.config.seed)

    @cached_property
    def better_voice_split(self) -> tuple[dict[str, list[Voice]], dict[str, list[Voice]]]:
        voices = self.engine_voices(BETTER_ENGINES, list(self.config.languages))
        return split_better_voices({lang: found for lang, found in voices.items() if found}, self.config.seed)

    def intelligible_voices(self, split: str) -> dict[str, list[Voice]]:
        """Per language, the ``train`` or ``heldout`` voices of :data:`INTELLIGIBLE_ENGINES` but
        :data:`UNCLEAR_VOICES` (languages without one left out)."""
        index = ("train", "heldout").index(split)
        voices = _merge(self.synthetic_voice_split[index], self.better_voice_split[index])
        intelligible = {
            lang: [v for v in found if v.engine in INTELLIGIBLE_ENGINES and v.id not in UNCLEAR_VOICES]
            for lang, found in voices.items()
        }
        return {lang: sorted(found) for lang, found in intelligible.items() if found}

    def sentence_split(self, language: str) -> SentenceSplit:
        if language not in self._sentence_splits:
            config = self.config
            base = self.synthetic_languages or list(config.languages)
            heldout_counts = per_language(config.heldout_clips, base)
            gold_counts = per_language(config.gold_clips, base)
            key = language if language in heldout_counts else base[0]
            n_eval = heldout_counts[key] + gold_counts[key]
            train, held = _split_sentences(self.sentences[language], n_eval, config.seed, language)
            # Gold and held-out clips use different held-out sentences where the pool allows.
            n_gold = max(1, round(len(held) * gold_counts[key] / max(1, n_eval)))
            n_gold = min(n_gold, len(held) - 1)
            self._sentence_splits[language] = SentenceSplit(train, held[n_gold:], held[:n_gold])
        return self._sentence_splits[language]

    def fluent_context(self, language: str) -> FluentContext | None:
        """The fluent context of the language's training sentences, built once and kept as
        ``OUT/fluent/<language>.npz``; None for a language without one (no or too few sentences, or
        written without spaces)."""
        if language not in self._contexts:
            self._contexts[language] = self._load_or_build_context(language)
        return self._contexts[language]

    def _load_or_build_context(self, language: str) -> FluentContext | None:
        if language not in self.config.languages or uses_characters(language):
            return None
        path = context_path(self.config.out, language)
        if path.exists():
            return FluentContext.load(path)
        train = self.sentence_split(language).train
        if len(train) < MIN_CONTEXT_SENTENCES:
            return None
        # Imported here: espeak-ng pronunciations keep homophones out of the substitutions.
        from voiceclap.phonemes import espeak_available, espeak_phonemes

        context = FluentContext.build(train, language, espeak_phonemes if espeak_available() else None)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        context.save(tmp)
        os.replace(tmp, path)
        return context


def context_path(out: Path, language: str) -> Path:
    return Path(out) / "fluent" / f"{language}.npz"
