"""Edit-corrupted transcripts (hard negatives and synthetic evaluation) with exact WER/CER labels.

A corruption applies ``max(1, round(fraction * n_units))`` edits -- substitutions, deletions,
insertions, adjacent swaps -- to the words of a space-delimited text, or to the characters of a
zh/ja text (:func:`voiceclap.text.uses_characters`). Each original unit is edited at most once and
inserted units are never edited again, so edits never cancel and the edit count is what was asked
for. The recorded ``error_rate`` is then *measured* with :func:`voiceclap.metrics.error_rate`
(the evaluation's own normalizer and metric) rather than assumed from the edit count: a swap, for
example, costs up to 2 errors.

Edits change content only, not presentation: a substituted word takes over the casing and
attached punctuation of the word it replaces, the sentence keeps its initial capital and its final
punctuation. Otherwise a text encoder trained on these negatives could learn to spot corruption
from formatting ("no final period") instead of from content.
"""

from __future__ import annotations

import itertools
import math
import random
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from voiceclap.metrics import error_rate as measure_error_rate
from voiceclap.text import units, uses_characters

__all__ = [
    "OPERATIONS",
    "Corruption",
    "Vocabulary",
    "build_vocabulary",
    "corrupt_transcript",
    "make_corruptions",
]

OPERATIONS = ("substitute", "delete", "insert", "swap")

# Sentence-internal separators: dropped from a word that becomes sentence-final, so deleting the
# last word of "a, b." gives "a." rather than "a,.".
_SEPARATORS = ",;:\u3001\uff0c\uff1b\uff1a"

# make_corruptions retries a corruption that duplicates an earlier one (or the original) this many
# times; beyond that the text is too short or the vocabulary too small for K distinct candidates.
_MAX_ATTEMPTS = 20


@dataclass(frozen=True)
class Corruption:
    """A corrupted transcript.

    ``error_rate``: WER (CER for zh/ja) of ``text`` against the original, measured.
    ``edit_fraction``: edits applied / units in the original -- the requested fraction rounded to a
    whole number of units. ``ops``: the operations applied, in order (one entry per edit).
    """

    text: str
    error_rate: float
    edit_fraction: float
    ops: tuple[str, ...]


class Vocabulary(Sequence[str]):
    """The units a corruption may substitute or insert for one language: normalized words, or
    single characters for zh/ja. Entries are normalized and de-duplicated (first occurrence kept)
    once here, so corrupting many texts with the same vocabulary does not re-validate it."""

    def __init__(self, entries: Iterable[str], language: str) -> None:
        if isinstance(entries, (set, frozenset)):
            # Set iteration order changes with PYTHONHASHSEED, which would break seeded determinism.
            raise TypeError("vocabulary entries must be ordered (a list or tuple), not a set")
        index: dict[str, int] = {}
        for entry in entries:
            entry_units = units(entry, language)
            if len(entry_units) != 1:
                raise ValueError(f"vocabulary entry {entry!r} is {len(entry_units)} units for {language!r}, need 1")
            index.setdefault(entry_units[0], len(index))
        if len(index) < 2:
            # With two distinct units a substitute different from any word always exists.
            raise ValueError("a vocabulary needs at least 2 distinct units")
        self.language = language
        self._units = tuple(index)
        self._index = index

    def __len__(self) -> int:
        return len(self._units)

    def __getitem__(self, i):  # int or slice, as Sequence requires
        return self._units[i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._units)

    def __contains__(self, unit: object) -> bool:
        return unit in self._index

    def sample(self, rng: random.Random, exclude: str | None = None) -> str:
        """A uniformly drawn unit, never ``exclude``."""
        skip = self._index.get(exclude) if exclude is not None else None
        if skip is None:
            return self._units[rng.randrange(len(self._units))]
        j = rng.randrange(len(self._units) - 1)
        return self._units[j + (j >= skip)]


def build_vocabulary(
    sentences: Iterable[str], language: str, max_size: int | None = 20000, min_count: int = 1
) -> Vocabulary:
    """The ``max_size`` most frequent units (seen at least ``min_count`` times) of ``sentences``,
    most frequent first, ties in order of first appearance (deterministic)."""
    counts = Counter(unit for sentence in sentences for unit in units(sentence, language))
    ranked = [unit for unit, count in counts.most_common(max_size) if count >= min_count]
    return Vocabulary(ranked, language)


@dataclass(eq=False)  # identity comparison: the same word may occur twice in a sentence
class _Slot:
    """One word (or character) of the text being corrupted, with the punctuation glued to it."""

    prefix: str
    core: str
    suffix: str
    # The core's units joined by spaces, kept in step with the core: comparisons ("never the same
    # word") use it, and normalizing on every comparison made corruption the training bottleneck.
    # Empty for stand-alone punctuation, which is never edited.
    norm: str
    touched: bool = False  # already edited, or inserted: never edited again
    # Holds the text's first word, whose capital may be positional only ("The"); travels with the
    # core through swaps so the word can be lower-cased if it ends up elsewhere.
    sentence_initial: bool = False


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


def _word_slot(token: str, language: str) -> _Slot:
    start, end = 0, len(token)
    while start < end and _is_punctuation(token[start]):
        start += 1
    while end > start and _is_punctuation(token[end - 1]):
        end -= 1
    core = token[start:end]
    norm = _normalized(core, language)
    if not norm:
        return _Slot(prefix=token, core="", suffix="", norm="")
    return _Slot(prefix=token[:start], core=core, suffix=token[end:], norm=norm)


def _parse(text: str, language: str) -> list[_Slot]:
    if uses_characters(language):
        # Whitespace inside a zh/ja text is kept as a non-editable slot so rendering restores it.
        return [_Slot(prefix="", core=char, suffix="", norm=_normalized(char, language)) for char in text]
    return [_word_slot(token, language) for token in text.split()]


def _match_case(template: str, word: str) -> str:
    if len(template) > 1 and template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _round_half_up(x: float) -> int:
    # Python's round() is banker's rounding (2.5 -> 2); the tolerance absorbs float error such as
    # 0.35 * 10 == 3.4999999999999996 so decimal fractions round as written.
    return math.floor(x + 0.5 + 1e-9)


def _as_vocabulary(vocabulary: Vocabulary | Sequence[str], language: str) -> Vocabulary:
    if isinstance(vocabulary, Vocabulary):
        if uses_characters(vocabulary.language) != uses_characters(language):
            raise ValueError(
                f"vocabulary for {vocabulary.language!r} has the wrong unit type for {language!r}"
            )
        return vocabulary
    return Vocabulary(vocabulary, language)


def _normalized(core: str, language: str) -> str:
    return " ".join(units(core, language))


def _apply_edit(op: str, slots: list[_Slot], vocab: Vocabulary, rng: random.Random) -> None:
    positions = [i for i, slot in enumerate(slots) if slot.norm]
    if op == "substitute":
        slot = slots[rng.choice([i for i in positions if not slots[i].touched])]
        word = vocab.sample(rng, exclude=slot.norm)
        slot.core, slot.norm = _match_case(slot.core, word), word
        slot.touched = True
    elif op == "delete":
        del slots[rng.choice([i for i in positions if not slots[i].touched])]
    elif op == "swap":
        i, j = rng.choice(_swappable_pairs(slots, positions))
        # Cores move, punctuation stays in place: "Hello, world." -> "World, hello."
        a, b = slots[i], slots[j]
        a.core, b.core = b.core, a.core
        a.norm, b.norm = b.norm, a.norm
        a.sentence_initial, b.sentence_initial = b.sentence_initial, a.sentence_initial
        a.touched = b.touched = True
    else:  # insert
        # Gap g is "before the g-th word"; the last gap is right after the last word, which keeps
        # trailing stand-alone punctuation (e.g. a final "。") at the end.
        gap = rng.randrange(len(positions) + 1)
        at = positions[gap] if gap < len(positions) else positions[-1] + 1
        word = vocab.sample(rng)
        slots.insert(at, _Slot(prefix="", core=word, suffix="", norm=word, touched=True))


def _swappable_pairs(slots: list[_Slot], positions: list[int]) -> list[tuple[int, int]]:
    # Neighbours in the word sequence (stand-alone punctuation between them is skipped), both
    # unedited, and different once normalized -- swapping "the the" would change nothing.
    return [
        (i, j)
        for i, j in itertools.pairwise(positions)
        if not slots[i].touched
        and not slots[j].touched
        and slots[i].norm != slots[j].norm
    ]


def _feasible(op: str, slots: list[_Slot]) -> bool:
    positions = [i for i, slot in enumerate(slots) if slot.norm]
    untouched = sum(not slots[i].touched for i in positions)
    if op == "substitute":
        return untouched > 0
    if op == "delete":
        # Keep at least one unit: an empty transcript is a trivial negative, not a hard one.
        return untouched > 0 and len(positions) > 1
    if op == "swap":
        return bool(_swappable_pairs(slots, positions))
    return True  # insert


def _restore_sentence_shape(slots: list[_Slot], first: _Slot, last: _Slot, capitalized: bool) -> None:
    """Give the edited word sequence the original's initial capital and its opening and final
    punctuation. ``first``/``last`` are the original first/last word slots (punctuation never
    moves with a swap, so slot identity tracks it); ``capitalized``: the original started upper."""
    words = [slot for slot in slots if slot.norm]
    present = {id(slot) for slot in words}
    new_first, new_last = words[0], words[-1]
    if capitalized:
        new_first.core = new_first.core[:1].upper() + new_first.core[1:]
    for word in words[1:]:
        # A displaced first word loses a capital it only had for being first ("The" -> "the");
        # words capitalized for another reason ("NASA", "McDonald", "I") keep theirs.
        if word.sentence_initial and word.core[1:].islower():
            word.core = word.core[:1].lower() + word.core[1:]
    if new_first is not first:
        opening = first.prefix
        if id(first) in present:
            first.prefix = ""
        new_first.prefix = opening + new_first.prefix
    if new_last is not last:
        final = last.suffix
        if id(last) in present:
            last.suffix = ""
        new_last.suffix = new_last.suffix.rstrip(_SEPARATORS) + final


def corrupt_transcript(
    text: str,
    language: str,
    fraction: float,
    vocabulary: Vocabulary | Sequence[str],
    rng: random.Random,
    operations: Sequence[str] = OPERATIONS,
) -> Corruption:
    """Corrupt ``text`` with ``max(1, round(fraction * n_units))`` edits (round half up).

    Units are words (whitespace tokens with content) or, for zh/ja, characters; punctuation never
    counts and is never edited. Each edit is drawn uniformly among the ``operations`` still
    possible: ``substitute`` (a ``vocabulary`` unit, never the same one), ``delete`` (never the last
    remaining unit), ``insert`` (a ``vocabulary`` unit) and ``swap`` (two adjacent units). All
    randomness comes from ``rng``, so a given seed reproduces the result exactly.

    Raises ``ValueError`` for ``fraction`` outside (0, 1], a text without units, or when the
    allowed operations run out (e.g. delete-only at fraction 1).
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    unknown = set(operations) - set(OPERATIONS)
    if unknown or not operations:
        raise ValueError(f"operations must be a non-empty subset of {OPERATIONS}, got {tuple(operations)}")
    vocab = _as_vocabulary(vocabulary, language)
    slots = _parse(text, language)
    words = [slot for slot in slots if slot.norm]
    if not words:
        raise ValueError(f"nothing to corrupt in {text!r}")
    words[0].sentence_initial = True
    capitalized = words[0].core[:1].isupper()
    n_edits = max(1, _round_half_up(fraction * len(words)))

    applied: list[str] = []
    for _ in range(n_edits):
        possible = [op for op in operations if _feasible(op, slots)]
        if not possible:
            raise ValueError(f"operations {tuple(operations)} cannot make {n_edits} edits to {text!r}")
        op = rng.choice(possible)
        _apply_edit(op, slots, vocab, rng)
        applied.append(op)

    if uses_characters(language):
        corrupted = "".join(slot.core for slot in slots)
    else:
        _restore_sentence_shape(slots, first=words[0], last=words[-1], capitalized=capitalized)
        corrupted = " ".join(slot.prefix + slot.core + slot.suffix for slot in slots)
    return Corruption(
        text=corrupted,
        error_rate=measure_error_rate(text, corrupted, language),
        edit_fraction=n_edits / len(words),
        ops=tuple(applied),
    )


def make_corruptions(
    text: str,
    language: str,
    k: int,
    vocabulary: Vocabulary | Sequence[str],
    rng: random.Random,
    fractions: Sequence[float] | None = None,
    operations: Sequence[str] = OPERATIONS,
) -> list[Corruption]:
    """``k`` corruptions of ``text``, in the order of ``fractions``.

    Default fractions are stratified: one uniform draw in each of ``k`` equal bins of (0, 1], so
    every batch covers mild to severe corruption. Candidates are distinct from each other and from
    the original after WER normalization (a candidate differing only in case would be a
    zero-WER "negative"); a duplicate is redrawn up to 20 times, after which it is kept -- a very
    short text cannot yield ``k`` distinct corruptions.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if fractions is None:
        # 1 - random() lies in (0, 1], so each draw lies in (i/k, (i+1)/k], never 0.
        fractions = [(i + 1 - rng.random()) / k for i in range(k)]
    elif len(fractions) != k:
        raise ValueError(f"got {len(fractions)} fractions for k={k}")
    vocab = _as_vocabulary(vocabulary, language)

    seen = {tuple(units(text, language))}
    corruptions = []
    for fraction in fractions:
        for _ in range(_MAX_ATTEMPTS):
            candidate = corrupt_transcript(text, language, fraction, vocab, rng, operations)
            key = tuple(units(candidate.text, language))
            if key not in seen:
                break
        seen.add(key)
        corruptions.append(candidate)
    return corruptions
