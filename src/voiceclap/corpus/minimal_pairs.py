"""The fluent minimal-pair set: natural sentences paired with natural sentences that differ from them
in one or two words.

A clip says ``said``; a faithful score must rank ``said`` above ``variant``. Both read as real
sentences of the language, so reading cannot decide which one was spoken: this set measures
listening, where the card's corruptions also reward a text prior (corruptions read worse).

Pairs come from the corpus where it has them: Tatoeba is full of sentences that differ in a word
("I like cats." / "I like dogs."), and then neither side is machine-made. Where a language has too
few (Italian's sentences are fortunes only), natural substitutions
(:func:`voiceclap.fluent.substitute_words`) make up the rest. Excluded throughout: differences a
listener cannot hear or that are no difference of content (spelling variants, homophones,
contractions; :meth:`voiceclap.fluent.FluentContext.differs_only_in_writing`), pairs whose sentence
kind differs (a statement against a question), words the corpus has fewer than
:data:`voiceclap.fluent.MIN_COUNT` times (typos, one-off names), and repeats: a sentence is in at
most one pair, and a difference ("tom" -> "mary") makes at most one pair, so the set is not fifty
variations of one name swap.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

from voiceclap.fluent import (
    MIN_COUNT,
    FluentContext,
    differing_spans,
    near_sentences,
    sentence_kind,
    substitute_words,
)
from voiceclap.metrics import error_rate
from voiceclap.text import units

__all__ = ["MAX_PAIR_ERROR_RATE", "MAX_WORDS_DIFFER", "MinimalPair", "corpus_pairs", "minimal_pairs"]

#: A pair differs in at most this many words (word edits: substitutions, insertions, deletions),
#: and in at most this fraction of the said sentence's words: two sentences of four words that
#: differ in two ("Hubo un silencio." / "Comí un montón.") share too little to be a minimal pair.
MAX_WORDS_DIFFER = 2
MAX_PAIR_ERROR_RATE = 1 / 3


@dataclass(frozen=True)
class MinimalPair:
    """``variant`` is a natural sentence that differs from ``said`` (what the clip says) in one or
    two words; ``error_rate`` is its WER against ``said``. ``source``: ``corpus`` (two sentences of
    the corpus) or ``substitution`` (``variant`` made by a natural word substitution)."""

    said: str
    variant: str
    error_rate: float
    source: str


def _max_error_rate(n_words: int) -> float:
    return min(MAX_WORDS_DIFFER / n_words, MAX_PAIR_ERROR_RATE)


def _within_bounds(errors: int, n_words: int) -> bool:
    """Whether ``errors`` word errors against an ``n_words`` reference are a minimal difference."""
    return errors <= _max_error_rate(n_words) * n_words + 1e-9  # tolerance: 1/3 * 6 < 2 in floats


def _difference(said: str, variant: str, language: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    spans = differing_spans(units(said, language), units(variant, language))
    return tuple(w for a, _ in spans for w in a), tuple(w for _, b in spans for w in b)


def _keys(sentences: Collection[str], language: str) -> set[tuple[str, ...]]:
    return {tuple(units(s, language)) for s in sentences}


def corpus_pairs(
    sentences: Sequence[str], context: FluentContext, seed: int = 0, exclude: Collection[str] = ()
) -> Iterator[MinimalPair]:
    """Real minimal pairs, lazily: ``said`` from ``sentences`` in an order shuffled by ``seed``,
    ``variant`` a sentence of ``context`` 1 to ``MAX_WORDS_DIFFER`` words away and at most
    ``MAX_PAIR_ERROR_RATE`` WER either way round (drawn at random among the closest that pass the
    filters of the module doc), never one of ``exclude``. When the variant is one of ``sentences``
    too, a coin flip decides which of the two is said."""
    rng = random.Random(seed)
    order = list(sentences)
    rng.shuffle(order)
    language = context.language
    candidates_for_said = _keys(sentences, language)
    used: set[tuple[str, ...]] = _keys(exclude, language)  # an excluded sentence counts as used
    differences: set[frozenset[tuple[str, ...]]] = set()
    for said in order:
        said_key = tuple(units(said, language))
        if said_key in used or not said_key:
            continue
        near = near_sentences(said, context, min_error_rate=0.0, max_error_rate=_max_error_rate(len(said_key)))
        rng.shuffle(near)
        near.sort(key=lambda c: c.error_rate)  # one differing word before two; stable: random within
        for candidate in near:
            variant_key = tuple(units(candidate.text, language))
            removed, added = _difference(said, candidate.text, language)
            difference = frozenset((removed, added))  # "cats" -> "dogs" and "dogs" -> "cats" are one
            if (
                variant_key in used
                or difference in differences
                or not _within_bounds(round(candidate.error_rate * len(said_key)), len(variant_key))
                or sentence_kind(said) != sentence_kind(candidate.text)
                or any(context.count(w) < MIN_COUNT for w in removed + added)
            ):
                continue
            used.update((said_key, variant_key))
            differences.add(difference)
            if variant_key in candidates_for_said and rng.random() < 0.5:
                # Which of two real sentences was said is a coin flip, else the variant, drawn from
                # the near sentences, would more often be the commoner sentence and a text prior
                # could learn to pick the rarer one.
                yield MinimalPair(candidate.text, said, error_rate(candidate.text, said, language), "corpus")
            else:
                yield MinimalPair(said, candidate.text, candidate.error_rate, "corpus")
            break


def minimal_pairs(
    sentences: Sequence[str],
    language: str,
    n: int,
    seed: int = 0,
    context: FluentContext | None = None,
    exclude: Collection[str] = (),
) -> list[MinimalPair]:
    """``n`` minimal pairs whose ``said`` is one of ``sentences`` (fewer only when neither the
    corpus nor substitution can make more): real pairs first (:func:`corpus_pairs`), then one-word
    natural substitutions of sentences not yet used. ``context`` supplies the variants and the word
    statistics; by default it is built from ``sentences``. No pair contains a sentence of
    ``exclude`` (an evaluation set's pairs exclude the training sentences, which a context built
    from them would otherwise offer as variants). Deterministic for a given ``seed``."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if context is None:
        context = FluentContext.build(sentences, language)
    elif context.language != language:
        raise ValueError(f"context is for {context.language!r}, not {language!r}")
    pairs: list[MinimalPair] = []
    used = _keys(exclude, language)
    for pair in corpus_pairs(sentences, context, seed, exclude):
        pairs.append(pair)
        if len(pairs) == n:
            return pairs
        used.update(tuple(units(s, language)) for s in (pair.said, pair.variant))
    rng = random.Random(seed + 1)  # its own stream: the real pairs do not shift the substitutions
    order = list(sentences)
    rng.shuffle(order)
    differences = {frozenset(_difference(p.said, p.variant, language)) for p in pairs}
    for said in order:
        if len(pairs) == n:
            break
        if tuple(units(said, language)) in used:
            continue
        variant = substitute_words(said, context, rng)
        if variant is None or tuple(units(variant.text, language)) in used:
            continue
        difference = frozenset(_difference(said, variant.text, language))
        if difference in differences:
            continue
        differences.add(difference)
        used.add(tuple(units(variant.text, language)))  # a sentence is in at most one pair
        pairs.append(MinimalPair(said, variant.text, variant.error_rate, "substitution"))
    return pairs
