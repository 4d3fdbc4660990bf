"""Text cleaning, the project's single WER normalizer, and word/character unit splitting.

Every WER/CER in VoiceCLAP (corruption labels, metrics, gold set, evaluation) goes through
:func:`normalize_for_wer` and :func:`units`, so numbers from different parts of the project are
comparable.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

import ftfy

__all__ = ["clean_text", "normalize_for_wer", "primary_language", "units", "uses_characters"]

_WHITESPACE = re.compile(r"\s+")

# Apostrophe look-alikes folded to ASCII "'" so that "don't" and "don’t" (U+2019, what word
# processors and many TTS front-ends emit) are the same word; NFKC does not unify them.
# U+02BC is a letter (category Lm) used as an apostrophe, e.g. in Ukrainian orthography.
# (The full-width U+FF07 needs no entry: NFKC already maps it to "'".)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u02bc": "'"})
# Once other punctuation is a space, an apostrophe is inside a word iff both neighbours are
# neither whitespace nor another apostrophe; every other apostrophe is a quote mark.
_STRAY_APOSTROPHE = re.compile(r"(?<![^\s'])'|'(?![^\s'])")

# Languages written without spaces between words: a whitespace split yields whole phrases, so
# errors are counted per character (CER). Keys are primary language subtags, ISO 639-1 and -3.
#   zh/zho/chi/cmn, yue: Chinese (Mandarin, Cantonese); ja/jpn: Japanese.
#   th/tha, lo/lao, km/khm, my/mya/bur: Thai, Lao, Khmer, Burmese are not space-delimited either,
#   so the seed card's rule (words only for space-delimited languages) puts them here too.
# Korean (ko) is deliberately NOT here: it is space-delimited into eojeol (a word plus its
# particles), and the seed model's hard negatives for ko were word-level, so word-level WER keeps
# the evaluation aligned with the training signal. Eojeol-WER is harsher than CER (a wrong particle
# costs a whole eojeol), so Korean WERs are not comparable with published Korean CERs.
_CHARACTER_LANGUAGES = frozenset(
    {"zh", "zho", "chi", "cmn", "yue", "ja", "jpn", "th", "tha", "lo", "lao", "km", "khm", "my", "mya", "bur"}
)


def clean_text(text: str) -> str:
    """The seed's caption cleaning: repair mojibake, unescape HTML (twice, for double-escaped
    corpora such as ``&amp;amp;``), collapse whitespace runs to one space, strip."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return _WHITESPACE.sub(" ", text).strip()


def primary_language(language: str) -> str:
    """The primary subtag of a language tag: "zh-CN", "zh_Hant", "JA" -> "zh", "zh", "ja" (what decides
    the error unit, and what Whisper names its languages by)."""
    return language.strip().lower().replace("_", "-").split("-", 1)[0]


def uses_characters(language: str) -> bool:
    """True when errors for ``language`` are counted per character (CER) rather than per word."""
    return primary_language(language) in _CHARACTER_LANGUAGES


@functools.cache
def _is_punctuation(char: str) -> bool:
    # Cached: the distinct characters of a corpus are few, and this runs once per character.
    return unicodedata.category(char).startswith("P")


def normalize_for_wer(text: str, language: str) -> str:
    """Normalize ``text`` for error-rate computation.

    Unicode NFKC (full-width and compatibility forms folded), casefold, every Unicode punctuation
    character (category P*) replaced by a space -- except an apostrophe between two word
    characters ("don't", "l'homme"), which is part of the word -- and whitespace collapsed.
    Punctuation becomes a space rather than vanishing so "hello,world" is two words, as it would be
    for a listener. ``language`` is accepted so every call site states it; the same rules apply to
    all languages (unit splitting, which does depend on it, is :func:`units`).
    """
    del language  # same normalization everywhere; see docstring
    text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
    text = "".join(" " if char != "'" and _is_punctuation(char) else char for char in text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    return _WHITESPACE.sub(" ", text).strip()


def units(text: str, language: str) -> list[str]:
    """The error-rate units of ``text``: normalized words, or for character languages
    (:func:`uses_characters`) normalized characters with whitespace dropped."""
    normalized = normalize_for_wer(text, language)
    if uses_characters(language):
        return [char for char in normalized if not char.isspace()]
    return normalized.split()
