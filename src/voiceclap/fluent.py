"""Fluent negatives: transcripts that read as naturally as what was said, yet say something else.

The card's negatives (:mod:`voiceclap.corruption`) are random edits, which read as less fluent than
the truth, so a model can rank them by reading alone. The candidates made here read as a real
sentence of the language and differ from what was said in a few words, so only listening tells:

* **Natural substitutions** replace one or two words by a word that the corpus has seen in that
  very context: between the same two neighbours, and with every trigram that contains it attested
  (sentence start, a pause for punctuation inside the sentence and the kind of sentence end,
  ``.``/``?``/``!``, count as tokens). It must also be of the same kind: seen at least ``MIN_COUNT``
  times, of similar frequency (within ``MAX_FREQUENCY_RATIO``: function words stay function words),
  of similar length, written with the same capitalization mid-sentence (names for names, German
  nouns for nouns), and with a similar profile of neighbouring frequent words
  (``MIN_KIND_SIMILARITY``: the distributional part-of-speech proxy that keeps "cats" for "dogs" and
  rejects a participle for an infinitive), not already in the sentence, and seen in a sentence
  with one of the sentence's rarer words outside that window, if it has any (``TOPIC_MAX_SHARE``:
  "stung by a bee", not "by a shower"). Among those the word is drawn in proportion to the
  sentence's probability under the corpus's trigram model (a Gibbs step: resampling one word from
  its conditional given the rest leaves a language model's sentence distribution unchanged, so under
  that model the variant is as probable a sentence as the original and reading alone cannot prefer
  either), never one that makes the sentence less than ``MIN_RELATIVE_PROBABILITY`` as probable.
* **Near sentences** are other sentences of the corpus that share most of the words
  (WER ``NEAR_ERROR_RATES`` against the sentence), found through an inverted word index and drawn
  (:func:`draw_near`) so that which of the two is the truth cannot be told from the texts.

Neither kind may differ from the original only in writing: words equal once accents, apostrophes
and hyphens are dropped ("cafe"/"café"), homophones when pronunciations are known ("there"/"their",
:mod:`voiceclap.phonemes`), or a contraction against its expansion ("I'm"/"I am").

All statistics live in a :class:`FluentContext`, built once per language from its sentence corpus
and saved as one ``.npz`` file. Word languages only: zh/ja (:func:`voiceclap.text.uses_characters`)
are not supported, because a character whose two neighbours are attested is rarely a natural
Chinese or Japanese word.
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from rapidfuzz.distance import Levenshtein
from scipy import sparse

from voiceclap.clips import Candidate
from voiceclap.corruption import _word_slot
from voiceclap.metrics import error_rate
from voiceclap.text import units, uses_characters

__all__ = [
    "MIN_COUNT",
    "NEAR_ERROR_RATES",
    "FluentContext",
    "differing_spans",
    "draw_near",
    "fluent_candidates",
    "natural_substitutions",
    "near_sentences",
    "sentence_kind",
    "substitute_words",
]

# Tokens besides words: the sentence start; a pause, for punctuation inside the sentence, so that
# "Tom, like his father" does not make "Tom like" an attested pair; the sentence end by kind, so a
# word before "?" fits questions.
_START = "<s>"
_PAUSE = "<,>"
_ENDS = {"?": "</?>", "!": "</!>", ".": "</.>"}
_SPECIAL = (_START, _PAUSE, *_ENDS.values())
_START_ID = 0

#: A replacement word (or a word that differs in a minimal pair) occurs at least this often in the
#: corpus: rarer "words" are mostly typos and one-off names.
MIN_COUNT = 3
# A replacement's corpus count is within this factor of the original's.
MAX_FREQUENCY_RATIO = 10.0
# A word's kind is its profile of neighbours among this many most frequent tokens (left and right):
# function words and punctuation, mostly, which is what separates parts of speech and inflections.
_PROFILE_NEIGHBOURS = 300
#: Cosine of two words' neighbour profiles above which they count as the same kind: measured on
#: pairs read by hand, "cats"/"dogs" 0.81, "il"/"elle" 0.85, "den"/"dem" 0.72 against
#: "begegnet"/"liegen" 0.41, "typist"/"medical" 0.42, "faim"/"passé" 0.44.
MIN_KIND_SIMILARITY = 0.5
#: Words in more than this share of the corpus's sentences ("the", "Tom") say nothing about what
#: a sentence is about; the rarer ones are its topic, which a replacement must have met before.
TOPIC_MAX_SHARE = 0.01
#: A replacement makes the sentence at least this probable relative to the original under the
#: corpus's trigram model (the words around it being the same): "Did you get over the cold?" ->
#: "Did not get over the cold?" is 0.004 as probable, "Don't sit down on a sofa." 0.03.
MIN_RELATIVE_PROBABILITY = 0.01
# Absolute discount of the n-gram model's counts (Kneser-Ney's usual 0.75).
_DISCOUNT = 0.75
#: WER range of a near sentence against the sentence it stands in for.
NEAR_ERROR_RATES = (0.1, 0.5)
# Letter case of a word as written mid-sentence, a cheap part-of-speech proxy (names, German nouns).
_CASE_UNKNOWN, _CASE_LOWER, _CASE_TITLE, _CASE_UPPER = range(4)
# Distinct variants are drawn up to this many times per requested candidate before giving up.
_ATTEMPTS_PER_CANDIDATE = 10

Pronounce = Callable[[Sequence[str], str], list[str]]


def _case_class(written: str) -> int:
    if not written:
        return _CASE_UNKNOWN
    if len(written) > 1 and written.isupper():
        return _CASE_UPPER
    return _CASE_TITLE if written[:1].isupper() else _CASE_LOWER


def _similar_length(a: np.ndarray, b: int) -> np.ndarray:
    # "a"/"the" and "cats"/"elephants" pass, "cat"/"elephant" does not: a long word for a short
    # one changes the clip's duration, and the duration alone would then give it away.
    return np.maximum(a, b) <= 2 * np.minimum(a, b) + 1


def _skeleton(words: Iterable[str]) -> str:
    """Letters only, without accents: "café" and "cafe", "every day" and "everyday" are equal."""
    decomposed = unicodedata.normalize("NFD", "".join(words))
    return "".join(ch for ch in decomposed if ch.isalnum())


def sentence_kind(text: str) -> str:
    """``?`` for a question, ``!`` for an exclamation, ``.`` otherwise, from the punctuation after
    the last word ("Ma che fa?!" is a question)."""
    tail = ""
    for char in reversed(text):
        if char.isalnum():
            break
        tail += char
    return next((mark for mark in "?!" if mark in tail), ".")


def _neighbour_profiles(left: np.ndarray, right: np.ndarray, pair_counts: np.ndarray, counts: np.ndarray) -> sparse.csr_matrix:
    """Per word, the log-counts of its left and right neighbours among the ``_PROFILE_NEIGHBOURS``
    most frequent tokens, L2-normalised (rows of words never seen next to one are zero)."""
    n = len(counts)
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(n)
    weight = np.log1p(pair_counts.astype(np.float64))
    as_left, as_right = rank[left] < _PROFILE_NEIGHBOURS, rank[right] < _PROFILE_NEIGHBOURS
    profiles = sparse.csr_matrix(
        (
            np.concatenate([weight[as_left], weight[as_right]]),
            (
                np.concatenate([right[as_left], left[as_right]]),
                np.concatenate([rank[left[as_left]], _PROFILE_NEIGHBOURS + rank[right[as_right]]]),
            ),
        ),
        shape=(n, 2 * _PROFILE_NEIGHBOURS),
    )
    norms = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel())
    return sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ profiles


def _error_bounds(n_words: int, min_error_rate: float, max_error_rate: float) -> tuple[int, int] | None:
    """The word-error counts a WER range allows for an ``n_words`` reference (at least one error:
    never the sentence itself), or None when none does."""
    # The tolerance absorbs float error (0.3 * 10 = 3.0000000000000004) so rates act as written.
    low = max(1, math.ceil(min_error_rate * n_words - 1e-9))
    high = math.floor(max_error_rate * n_words + 1e-9)
    return (low, high) if n_words and low <= high else None


def _pack(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as one UTF-8 byte array plus offsets: an ``.npz`` without pickled objects."""
    encoded = [s.encode("utf-8") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def _unpack(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    data = blob.tobytes()
    return [data[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting: numpy 2's default hash-based unique took 6 s for 1.5 M keys here,
    the sort 0.1 s (``return_counts`` still takes the sorting path, so those calls stay)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


def _csr(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Offsets of each group's run in an array sorted by ``groups``."""
    return np.searchsorted(groups, np.arange(n_groups + 1)).astype(np.int64)


@dataclass
class _Tokens:
    """A sentence as whitespace tokens (punctuation kept apart from each word, as
    :mod:`voiceclap.corruption` splits them) and as the bigram model's sequence: its words with a
    pause wherever punctuation separates two of them."""

    slots: list  # voiceclap.corruption's token slots: prefix, core, suffix, norm
    sequence: list[str]  # words and pauses, without the start and end tokens
    word_at: list[int]  # per word: its index in ``sequence``
    slot_of: list[int | None]  # per word: its slot, or None when the slot holds several words ("savez-vous")
    end: str  # the end token
    first_slot: int  # the slot of the first word


def _tokenize(sentence: str, language: str) -> _Tokens:
    slots = [_word_slot(token, language) for token in sentence.split()]
    word_slots = [s for s, slot in enumerate(slots) if slot.norm]
    first, last = (word_slots[0], word_slots[-1]) if word_slots else (0, -1)
    sequence: list[str] = []
    word_at: list[int] = []
    slot_of: list[int | None] = []

    def pause() -> None:
        if sequence and sequence[-1] != _PAUSE:
            sequence.append(_PAUSE)

    for s, slot in enumerate(slots):
        if not slot.norm:  # stand-alone punctuation ("-" between clauses, French " ?" at the end)
            if first < s < last:
                pause()
            continue
        if s != first and slot.prefix:
            pause()
        slot_words = slot.norm.split()
        for word in slot_words:
            word_at.append(len(sequence))
            sequence.append(word)
            slot_of.append(s if len(slot_words) == 1 else None)
        if s != last and slot.suffix:
            pause()
    return _Tokens(slots, sequence, word_at, slot_of, _ENDS[sentence_kind(sentence)], first)


@dataclass
class _Parsed:
    """A sentence's tokens with their ids in a context (-1: a word the corpus never had)."""

    tokens: _Tokens
    sequence: list[int]  # ids of ``tokens.sequence``
    end: int

    @property
    def ids(self) -> list[int]:
        return [self.sequence[t] for t in self.tokens.word_at]

    @property
    def words(self) -> list[str]:
        return [self.tokens.sequence[t] for t in self.tokens.word_at]


class FluentContext:
    """What one language's sentence corpus says about which word fits where, and which sentences
    are near each other: word counts, written forms and (optionally) pronunciations, bigram and
    trigram counts with sentence boundaries (a smoothed trigram language model,
    :meth:`probability`), and the sentences with an inverted word index.

    Build once with :meth:`build`, keep with :meth:`save` / :meth:`load`.
    """

    def __init__(
        self,
        language: str,
        words: list[str],
        counts: np.ndarray,
        surfaces: list[str],
        phonemes: list[str],
        bigram_keys: np.ndarray,
        bigram_counts: np.ndarray,
        frame_keys: np.ndarray,
        frame_counts: np.ndarray,
        sentences: list[str],
        sentence_offsets: np.ndarray,
        sentence_words: np.ndarray,
    ) -> None:
        self.language = language
        self.words = words
        self.counts = counts
        self.surfaces = surfaces  # most frequent mid-sentence spelling, "" when never seen there
        self.phonemes = phonemes  # "" when not known
        # n-grams as int64 keys, sorted: exact up to n_words**3 < 2**63, about 2 million words.
        self.bigram_keys = bigram_keys  # left * n_words + right
        self.bigram_counts = bigram_counts
        self.frame_keys = frame_keys  # trigrams: (previous * n_words + following) * n_words + middle
        self.frame_counts = frame_counts
        self.sentences = sentences
        self.sentence_offsets = sentence_offsets
        self.sentence_words = sentence_words
        self._derive()

    def _derive(self) -> None:
        """Lookup tables recomputed on load (cheaper to rebuild than to store)."""
        n = len(self.words)
        self._index = {word: i for i, word in enumerate(self.words)}
        self._case = np.array([_case_class(s) for s in self.surfaces], dtype=np.int8)
        self._word_lengths = np.array([len(w) for w in self.words], dtype=np.int64)
        left, right = np.divmod(self.bigram_keys, n)
        # Kneser-Ney's statistics: c(v .), N1+(v .), N1+(. w), N1+(. .)
        self._left_totals = np.bincount(left, weights=self.bigram_counts, minlength=n)
        self._left_types = np.bincount(left, minlength=n).astype(np.float64)
        self._right_types = np.bincount(right, minlength=n).astype(np.float64)
        first_last, middle = np.divmod(self.frame_keys, n)
        contexts, followers = np.unique(first_last // n * n + middle, return_counts=True)
        self._followers = np.zeros(len(self.bigram_keys), dtype=np.int64)  # N1+(a b .) per bigram (a, b)
        self._followers[np.searchsorted(self.bigram_keys, contexts)] = followers
        self._kinds = _neighbour_profiles(left, right, self.bigram_counts, self.counts)
        self._continuation_total = float(len(self.bigram_keys)) + n  # +n: add-one for unseen words
        self._sentence_lengths = np.diff(self.sentence_offsets)
        sentence_of = np.repeat(np.arange(len(self.sentences)), self._sentence_lengths)
        pairs = _sorted_unique(self.sentence_words * len(self.sentences) + sentence_of)
        posting_words, self._postings = np.divmod(pairs, len(self.sentences))
        self._posting_offsets = _csr(posting_words, n)

    # ---- building and storage -------------------------------------------------------------

    @classmethod
    def build(
        cls, sentences: Iterable[str], language: str, pronounce: Pronounce | None = None
    ) -> FluentContext:
        """The context of ``sentences`` (order kept, sentences without words dropped).

        ``pronounce(words, language)`` (e.g. :func:`voiceclap.phonemes.espeak_phonemes`) gives the
        words seen at least ``MIN_COUNT`` times their pronunciations, so homophones are never
        offered as substitutes; without it only spelling variants are excluded.
        """
        if uses_characters(language):
            raise ValueError(f"fluent negatives need a space-delimited language, not {language!r}")
        index = {token: i for i, token in enumerate(_SPECIAL)}
        kept: list[str] = []
        sequences: list[list[int]] = []
        word_ids: list[list[int]] = []
        ends: list[int] = []
        written = Counter()  # (word id, spelling) of one-word slots in mid-sentence
        for sentence in sentences:
            tokens = _tokenize(sentence, language)
            if not tokens.word_at:
                continue
            sequence = [index.setdefault(token, len(index)) for token in tokens.sequence]
            for t, s in zip(tokens.word_at, tokens.slot_of):
                if s is not None and s != tokens.first_slot:
                    written[sequence[t], tokens.slots[s].core] += 1
            kept.append(sentence)
            sequences.append(sequence)
            word_ids.append([sequence[t] for t in tokens.word_at])
            ends.append(index[tokens.end])
        words = list(index)
        n = len(words)
        counts = np.bincount(np.fromiter((i for seq in sequences for i in seq), dtype=np.int64), minlength=n)
        counts[_START_ID] = len(sequences)
        counts[: len(_SPECIAL)] += np.bincount(ends, minlength=len(_SPECIAL))[: len(_SPECIAL)]
        lefts = np.fromiter((i for ids in sequences for i in (_START_ID, *ids)), dtype=np.int64)
        rights = np.fromiter((i for ids, end in zip(sequences, ends) for i in (*ids, end)), dtype=np.int64)
        keys, bigram_counts = np.unique(lefts * n + rights, return_counts=True)
        # Consecutive bigrams of one sentence overlap in a word, so (left, right of the next) are
        # the (previous, following) of each middle word; a bigram ending a sentence has no next.
        has_next = np.ones(len(lefts), dtype=bool)
        has_next[np.cumsum([len(seq) + 1 for seq in sequences]) - 1] = False
        middle = np.flatnonzero(has_next)
        frame_keys, frame_counts = np.unique(
            (lefts[middle] * n + rights[middle + 1]) * n + rights[middle], return_counts=True
        )
        best: dict[int, tuple[int, str]] = {}
        for (word_id, spelling), count in written.items():  # insertion order: ties go to the first seen
            if count > best.get(word_id, (0, ""))[0]:
                best[word_id] = (count, spelling)
        surfaces = [best.get(i, (0, ""))[1] for i in range(n)]
        phonemes = [""] * n
        if pronounce is not None:
            frequent = [i for i in range(len(_SPECIAL), n) if counts[i] >= MIN_COUNT]
            for i, phones in zip(frequent, pronounce([words[i] for i in frequent], language)):
                phonemes[i] = phones
        offsets = np.zeros(len(word_ids) + 1, dtype=np.int64)
        np.cumsum([len(ids) for ids in word_ids], out=offsets[1:])
        flat = np.fromiter((i for ids in word_ids for i in ids), dtype=np.int64)
        return cls(
            language, words, counts, surfaces, phonemes, keys, bigram_counts, frame_keys, frame_counts, kept, offsets, flat
        )

    def save(self, path: str | Path) -> None:
        """One ``.npz`` (no pickled objects), readable by :meth:`load`."""
        arrays = {
            "language": np.array(self.language),
            "counts": self.counts,
            "bigram_keys": self.bigram_keys,
            "bigram_counts": self.bigram_counts,
            "frame_keys": self.frame_keys,
            "frame_counts": self.frame_counts,
            "sentence_offsets": self.sentence_offsets,
            "sentence_words": self.sentence_words,
        }
        for name in ("words", "surfaces", "phonemes", "sentences"):
            arrays[f"{name}_blob"], arrays[f"{name}_offsets"] = _pack(getattr(self, name))
        with open(path, "wb") as handle:  # a handle, so numpy does not append ".npz" to the name
            np.savez_compressed(handle, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> FluentContext:
        with np.load(path, allow_pickle=False) as data:
            strings = {
                name: _unpack(data[f"{name}_blob"], data[f"{name}_offsets"])
                for name in ("words", "surfaces", "phonemes", "sentences")
            }
            return cls(
                language=str(data["language"]),
                counts=data["counts"],
                bigram_keys=data["bigram_keys"],
                bigram_counts=data["bigram_counts"],
                frame_keys=data["frame_keys"],
                frame_counts=data["frame_counts"],
                sentence_offsets=data["sentence_offsets"],
                sentence_words=data["sentence_words"],
                **strings,
            )

    # ---- the bigram model --------------------------------------------------------------------

    def _bigram_probability(self, previous: np.ndarray, word: np.ndarray) -> np.ndarray:
        """Interpolated Kneser-Ney ``P(word | previous)`` (-1: a word the corpus never had, which
        gets add-one continuation mass)."""
        known_word = word >= 0
        right_types = np.where(known_word, self._right_types[np.maximum(word, 0)], 0.0)
        continuation = (right_types + 1.0) / self._continuation_total
        v = np.maximum(previous, 0)
        totals = np.where(previous >= 0, self._left_totals[v], 0.0)
        pair = self._lookup(self.bigram_keys, self.bigram_counts, v * len(self.words) + word, (previous >= 0) & known_word)
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed = (np.maximum(pair - _DISCOUNT, 0.0) + _DISCOUNT * self._left_types[v] * continuation) / totals
        return np.where(totals > 0, smoothed, continuation)

    def probability(self, word: ArrayLike, previous: ArrayLike, before: ArrayLike = -1) -> np.ndarray:
        """``P(word | before, previous)`` for ids (arrays broadcast; -1: a word the corpus never
        had, or no ``before`` at all): absolute discounting interpolated from trigram to the
        Kneser-Ney bigram model."""
        before, previous, word = np.broadcast_arrays(*(np.asarray(x, np.int64) for x in (before, previous, word)))
        bigram = self._bigram_probability(previous, word)
        n = len(self.words)
        known = (before >= 0) & (previous >= 0)
        context_key = before * n + previous
        # Every occurrence of a (before, previous) pair has a follower: a context never ends a sentence.
        totals = self._lookup(self.bigram_keys, self.bigram_counts, context_key, known)
        followers = self._lookup(self.bigram_keys, self._followers, context_key, known)
        triple = self._lookup(self.frame_keys, self.frame_counts, (before * n + word) * n + previous, known & (word >= 0))
        with np.errstate(divide="ignore", invalid="ignore"):
            smoothed = (np.maximum(triple - _DISCOUNT, 0.0) + _DISCOUNT * followers * bigram) / totals
        return np.where(totals > 0, smoothed, bigram)

    @staticmethod
    def _lookup(keys: np.ndarray, values: np.ndarray, wanted: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """``values`` at ``wanted`` in sorted ``keys``; 0 where absent or not ``valid``."""
        at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        return np.where(valid & (keys[at] == wanted), values[at], 0)

    def log_probability(self, sentence: str, order: int = 3) -> float:
        """Natural-log probability of ``sentence`` (its end token included) under the trigram
        (``order`` 3) or the bigram (2) model."""
        if order not in (2, 3):
            raise ValueError(f"order must be 2 or 3, got {order}")
        parsed = self._parse(sentence)
        full = np.array([_START_ID, *parsed.sequence, parsed.end])
        before = np.concatenate([[-1], full[:-2]]) if order == 3 else -1
        return float(np.log(self.probability(full[1:], full[:-1], before)).sum())

    def _window_probability(self, full: list[int], i: int, words: np.ndarray) -> np.ndarray:
        """The product of the trigram probabilities that involve position ``i`` of the id sequence
        ``full`` (start and end tokens included), for each of ``words`` put there."""
        p = self.probability(words, full[i - 1], full[i - 2] if i > 1 else -1)
        p = p * self.probability(full[i + 1], words, full[i - 1])
        if i + 2 < len(full):
            p = p * self.probability(full[i + 2], full[i + 1], words)
        return p

    # ---- parsing and lookups -----------------------------------------------------------------

    def _parse(self, sentence: str) -> _Parsed:
        tokens = _tokenize(sentence, self.language)
        sequence = [self._index.get(token, -1) for token in tokens.sequence]
        return _Parsed(tokens, sequence, self._index[tokens.end])

    def count(self, word: str) -> int:
        i = self._index.get(word)
        return int(self.counts[i]) if i is not None else 0

    def sound_or_read_alike(self, a: Sequence[str], b: Sequence[str]) -> bool:
        """True when word spans ``a`` and ``b`` differ only in writing: equal letters once accents,
        apostrophes, hyphens and spaces go, or equal pronunciations (when every word has one)."""
        if _skeleton(a) == _skeleton(b):
            return True
        phones = [[self.phonemes[self._index[w]] if w in self._index else "" for w in span] for span in (a, b)]
        if all(all(p) for p in phones):
            return "".join(phones[0]) == "".join(phones[1])
        return False

    def _replacements(self, parsed: _Parsed, sequence: list[int], position: int) -> tuple[np.ndarray, np.ndarray]:
        """Words that may replace word ``position`` (``sequence`` being the sentence's ids, which
        may already hold another replacement), and their Gibbs weights."""
        tokens = parsed.tokens
        t = tokens.word_at[position]
        original = parsed.sequence[t]
        previous = sequence[t - 1] if t > 0 else _START_ID
        following = sequence[t + 1] if t + 1 < len(sequence) else parsed.end
        if min(original, previous, following) < 0:  # an unknown word has no kind, nor attested neighbours
            return np.empty(0, np.int64), np.empty(0)
        # The words seen between these two neighbours.
        n = len(self.words)
        frame = (previous * n + following) * n
        lo, hi = np.searchsorted(self.frame_keys, [frame, frame + n])
        options = self.frame_keys[lo:hi] - frame
        if tokens.slot_of[position] == tokens.first_slot:  # its capital may be positional only
            case = self._case[original] if self._case[original] != _CASE_UNKNOWN else _CASE_LOWER
        else:
            case = _case_class(tokens.slots[tokens.slot_of[position]].core)
        counts = self.counts[options]
        original_count = self.counts[original]
        keep = (
            (options >= len(_SPECIAL))
            & (options != original)
            & (counts >= MIN_COUNT)
            & (counts * MAX_FREQUENCY_RATIO >= original_count)
            & (counts <= original_count * MAX_FREQUENCY_RATIO)
            & (self._case[options] == case)
            & _similar_length(self._word_lengths[options], self._word_lengths[original])
        )
        # The trigrams that reach one word further on either side are attested too.
        if t > 0:
            keep &= self._attested(sequence[t - 2] if t > 1 else _START_ID, previous, options)
        if t + 1 < len(sequence):
            keep &= self._attested(options, following, sequence[t + 2] if t + 2 < len(sequence) else parsed.end)
        options = options[keep & ~np.isin(options, sequence)]  # "time or time" reads as a slip
        kind = (self._kinds[options] @ self._kinds[original].T).toarray().ravel()
        options = options[kind >= MIN_KIND_SIMILARITY]
        options = options[self._on_topic(options, [w for k, w in enumerate(parsed.sequence) if abs(k - t) > 2])]
        options = np.array(
            [w for w in options.tolist() if not self.sound_or_read_alike([self.words[w]], [self.words[original]])],
            dtype=np.int64,
        )
        # Gibbs weights: how probable the sentence is with each option, relative to the original.
        full = [_START_ID, *sequence, parsed.end]
        relative = self._window_probability(full, t + 1, options) / self._window_probability(full, t + 1, original)
        plausible = relative >= MIN_RELATIVE_PROBABILITY
        return options[plausible], relative[plausible]

    def _on_topic(self, options: np.ndarray, others: list[int]) -> np.ndarray:
        """Whether each option shares a corpus sentence with one of the content words among
        ``others`` (the sentence's words out of the trigram window): the window checks syntax,
        this checks that the word belongs with the rest ("stung by a bee", not "by a shower").
        All true when ``others`` has no content word (a short sentence)."""
        limit = TOPIC_MAX_SHARE * len(self.sentences)
        topic = [w for w in others if w >= len(_SPECIAL) and self._posting_count(w) <= limit]
        if not topic:
            return np.ones(len(options), dtype=bool)
        shared = _sorted_unique(np.concatenate([self._postings_of(w) for w in topic]))
        return np.array(
            [np.isin(self._postings_of(w), shared, assume_unique=True).any() for w in options.tolist()], dtype=bool
        )

    def _attested(self, first: int | np.ndarray, middle: int | np.ndarray, last: int | np.ndarray) -> np.ndarray:
        """Whether each trigram ``(first, middle, last)`` occurs in the corpus (ids, arrays broadcast)."""
        first, middle, last = np.broadcast_arrays(*(np.asarray(x, np.int64) for x in (first, middle, last)))
        n = len(self.words)
        keys = (first * n + last) * n + middle
        at = np.minimum(np.searchsorted(self.frame_keys, keys), len(self.frame_keys) - 1)
        return self.frame_keys[at] == keys

    def _near(self, ids: list[int], min_errors: int, max_errors: int) -> list[tuple[int, int]]:
        """(sentence index, word edit distance) of corpus sentences within ``min_errors..max_errors``
        word edits of ``ids``, in corpus order.

        A sentence within E edits of an n-word query keeps at least ``u - E`` of the query's ``u``
        distinct words, so it holds one of the E+1 rarest of them: only those words' postings are
        read (prefix filtering), then the shared-word count and the length prune before the exact
        edit distance.
        """
        distinct = sorted(set(ids), key=lambda w: (self._posting_count(w), w))
        rare = [w for w in distinct[: max_errors + 1] if w >= 0]
        if not rare:
            return []
        candidates = _sorted_unique(np.concatenate([self._postings_of(w) for w in rare]))
        candidates = candidates[np.abs(self._sentence_lengths[candidates] - len(ids)) <= max_errors]
        shared = np.zeros(len(candidates), dtype=np.int64)
        for w in distinct:
            if w >= 0:
                postings = self._postings_of(w)
                at = np.minimum(np.searchsorted(postings, candidates), max(len(postings) - 1, 0))
                shared += postings[at] == candidates
        candidates = candidates[shared >= len(distinct) - max_errors]
        found = []
        for c in candidates.tolist():
            other = self.sentence_words[self.sentence_offsets[c] : self.sentence_offsets[c + 1]].tolist()
            distance = Levenshtein.distance(ids, other, score_cutoff=max_errors)
            if min_errors <= distance <= max_errors:
                found.append((c, distance))
        return found

    def _sentence_ids(self, index: int) -> list[int]:
        return self.sentence_words[self.sentence_offsets[index] : self.sentence_offsets[index + 1]].tolist()

    def _neighbours(self, words: list[str], ids: list[int], min_error_rate: float, max_error_rate: float) -> list[int]:
        """Indices of the corpus sentences within the WER range of the sentence with these
        ``words`` (and their ``ids``), except those that differ from it only in writing; closest
        first, ties in corpus order."""
        errors = _error_bounds(len(ids), min_error_rate, max_error_rate)
        if errors is None:
            return []
        found = sorted(self._near(ids, *errors), key=lambda x: (x[1], x[0]))
        return [
            index
            for index, _ in found
            if not self.differs_only_in_writing(words, [self.words[i] for i in self._sentence_ids(index)])
        ]

    def _is_near(self, ids: list[int], words: list[str], other_ids: list[int], other_words: list[str]) -> bool:
        """Whether the sentence ``other`` (ids and words) lies in :data:`NEAR_ERROR_RATES` of the
        first sentence, a corpus sentence, as the reference (an unknown word, -1, matches nothing)."""
        errors = _error_bounds(len(ids), *NEAR_ERROR_RATES)
        return (
            errors is not None
            and errors[0] <= Levenshtein.distance(ids, other_ids) <= errors[1]
            and not self.differs_only_in_writing(words, other_words)
        )

    def _posting_count(self, word: int) -> int:
        return 0 if word < 0 else int(self._posting_offsets[word + 1] - self._posting_offsets[word])

    def _postings_of(self, word: int) -> np.ndarray:
        return self._postings[self._posting_offsets[word] : self._posting_offsets[word + 1]]

    def differs_only_in_writing(self, said: Sequence[str], other: Sequence[str]) -> bool:
        """True when word sequences ``said`` and ``other`` differ nowhere a listener could hear:
        every differing span reads or sounds alike (:meth:`sound_or_read_alike`), or is a
        contraction against its expansion ("i'm" / "i am": spans of unequal length with an
        apostrophe word, which normalized WER counts as two errors in one spoken difference)."""
        for a, b in differing_spans(said, other):
            contraction = len(a) != len(b) and any("'" in w for w in (*a, *b))
            if not (contraction or self.sound_or_read_alike(a, b)):
                return False
        return True


def differing_spans(said: Sequence[str], other: Sequence[str]) -> list[tuple[list[str], list[str]]]:
    """The (said, other) word spans a minimal word alignment does not match, in order; adjacent
    edits form one span ("i am" / "i'm" is one span, not a substitution and a deletion)."""
    said, other = list(said), list(other)
    spans: list[tuple[int, int, int, int]] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(said, other):
        if tag == "equal":
            continue
        if spans and spans[-1][1] == i1 and spans[-1][3] == j1:
            i1, j1 = spans.pop()[::2]
        spans.append((i1, i2, j1, j2))
    return [(said[i1:i2], other[j1:j2]) for i1, i2, j1, j2 in spans]


def _render(tokens: _Tokens, replaced: dict[int, int], context: FluentContext) -> str:
    """The sentence with word position -> new word id ``replaced``; the rest as written."""
    new_core = {tokens.slot_of[p]: context.surfaces[w] for p, w in replaced.items()}
    written = []
    for s, slot in enumerate(tokens.slots):
        core = new_core.get(s, slot.core)
        if s in new_core and s == tokens.first_slot and slot.core[:1].isupper():
            core = core[:1].upper() + core[1:]
        written.append(slot.prefix + core + slot.suffix)
    return " ".join(written)


class _Substituter:
    """Natural substitutions of one sentence; the options of each position are computed once and
    reused by every draw (a sentence is drawn from several times for ``k`` distinct variants)."""

    def __init__(self, sentence: str, context: FluentContext) -> None:
        self.sentence = sentence
        self.context = context
        self.parsed = context._parse(sentence)
        self._options: dict[tuple[int, tuple[int, ...]], tuple[np.ndarray, np.ndarray]] = {}

    def _replacements(self, sequence: list[int], position: int) -> tuple[np.ndarray, np.ndarray]:
        key = (position, tuple(sequence))
        if key not in self._options:
            self._options[key] = self.context._replacements(self.parsed, sequence, position)
        return self._options[key]

    def draw(self, rng: random.Random, n_words: int) -> Candidate | None:
        tokens = self.parsed.tokens
        sequence = list(self.parsed.sequence)
        replaced: dict[int, int] = {}
        for _ in range(n_words):
            # The first replaceable word of a random order is uniform among the replaceable ones,
            # and only as many positions as needed are examined.
            positions = [p for p, s in enumerate(tokens.slot_of) if s is not None and p not in replaced]
            rng.shuffle(positions)
            for position in positions:
                options, weights = self._replacements(sequence, position)
                if len(options):
                    break
            else:
                return None
            word = rng.choices(options.tolist(), weights=weights.tolist())[0]
            replaced[position] = sequence[tokens.word_at[position]] = word
        text = _render(tokens, replaced, self.context)
        return Candidate(text=text, error_rate=error_rate(self.sentence, text, self.context.language), kind="fluent")


def substitute_words(
    sentence: str, context: FluentContext, rng: random.Random, n_words: int = 1
) -> Candidate | None:
    """``sentence`` with ``n_words`` words replaced by natural substitutes (see the module doc),
    or None when fewer than ``n_words`` words have one. Positions are drawn uniformly among the
    replaceable words, then each word from its Gibbs weights; a second replacement sees the first
    as its neighbour. Punctuation, the casing of the other words and multi-word tokens
    ("savez-vous") are kept; a replacement takes its usual mid-sentence spelling.
    """
    if n_words < 1:
        raise ValueError(f"n_words must be >= 1, got {n_words}")
    return _Substituter(sentence, context).draw(rng, n_words)


def natural_substitutions(
    sentence: str, context: FluentContext, k: int, rng: random.Random, n_words: int = 1
) -> list[Candidate]:
    """Up to ``k`` distinct :func:`substitute_words` variants (fewer when the sentence has fewer)."""
    if n_words < 1:
        raise ValueError(f"n_words must be >= 1, got {n_words}")
    substituter = _Substituter(sentence, context)
    seen = {tuple(units(sentence, context.language))}
    found: list[Candidate] = []
    for _ in range(k * _ATTEMPTS_PER_CANDIDATE):
        if len(found) == k:
            break
        candidate = substituter.draw(rng, n_words)
        if candidate is None:
            break
        key = tuple(units(candidate.text, context.language))
        if key not in seen:
            seen.add(key)
            found.append(candidate)
    return found


def near_sentences(
    sentence: str,
    context: FluentContext,
    min_error_rate: float = NEAR_ERROR_RATES[0],
    max_error_rate: float = NEAR_ERROR_RATES[1],
) -> list[Candidate]:
    """Corpus sentences whose WER against ``sentence`` lies in ``[min_error_rate, max_error_rate]``
    (never the sentence itself, never one that differs from it only in writing), closest first,
    ties in corpus order."""
    parsed = context._parse(sentence)
    return [
        Candidate(context.sentences[i], error_rate(sentence, context.sentences[i], context.language), kind="fluent")
        for i in context._neighbours(parsed.words, parsed.ids, min_error_rate, max_error_rate)
    ]


def draw_near(sentence: str, context: FluentContext, k: int, rng: random.Random) -> list[Candidate]:
    """Up to ``k`` (about ``k`` times the acceptance rate) of the :func:`near_sentences`, drawn so
    that reading cannot tell which of the two is the truth.

    Common sentences have more neighbours, so a neighbour drawn uniformly is more often the
    commoner sentence of the pair, and a text prior can pick the truth as the rarer one (a
    held-out trigram prior preferred the truth in only 0.35 of such pairs, fr). Each neighbour
    ``c`` of ``s`` is therefore kept with probability ``min(1, k / deg(s), k / deg(c))``, ``deg``
    being the number of near sentences, and only if ``s`` is near ``c`` too (WER is relative to the
    reference, so the relation is not symmetric): that probability is symmetric in ``s`` and ``c``
    (Metropolis-Hastings' correction), so over a corpus whose sentences are drawn uniformly the
    pair (truth, near sentence) is exchangeable, and no reading of the two texts does better than
    chance (measured: 0.47). Kept ones come in random order.
    """
    parsed = context._parse(sentence)
    near = context._neighbours(parsed.words, parsed.ids, *NEAR_ERROR_RATES)
    rng.shuffle(near)
    drawn = []
    for c in near:
        if len(drawn) == k:
            break
        draw = rng.random()
        if draw >= k / len(near):  # only then is deg(c), one more search, needed
            continue
        ids = context._sentence_ids(c)
        words = [context.words[i] for i in ids]
        if not context._is_near(ids, words, parsed.ids, parsed.words):
            continue
        around = context._neighbours(words, ids, *NEAR_ERROR_RATES)
        degree = len(around) + (not any(context._sentence_ids(i) == parsed.ids for i in around))
        if draw < k / degree:
            text = context.sentences[c]
            drawn.append(Candidate(text, error_rate(sentence, text, context.language), kind="fluent"))
    return drawn


def fluent_candidates(
    sentence: str,
    language: str,
    k: int,
    rng: random.Random,
    context: FluentContext,
    near_share: float = 0.5,
    two_word_share: float = 0.25,
) -> list[Candidate]:
    """Up to ``k`` distinct fluent candidates: about ``near_share`` of them near sentences
    (:func:`draw_near`), the rest natural substitutions of one word, or of two words for a
    ``two_word_share`` of them when the sentence has at least 4 words (two substitutions read
    naturally less often than one: about 1 in 3 against 2 in 3, read in de and fr; near sentences
    already bring WERs up to 0.5). One kind fills in for the other when it runs short; fewer than
    ``k`` come back only when both do."""
    if context.language != language:
        raise ValueError(f"context is for {context.language!r}, not {language!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    near = draw_near(sentence, context, k, rng)
    picked = near[: round(k * near_share)]
    seen = {tuple(units(c.text, language)) for c in picked} | {tuple(units(sentence, language))}
    long_enough = len(units(sentence, language)) >= 4
    substituter = _Substituter(sentence, context)
    for _ in range((k - len(picked)) * _ATTEMPTS_PER_CANDIDATE):
        if len(picked) == k:
            break
        n_words = 2 if long_enough and rng.random() < two_word_share else 1
        candidate = substituter.draw(rng, n_words) or substituter.draw(rng, 1)
        if candidate is None:
            break
        key = tuple(units(candidate.text, language))
        if key not in seen:
            seen.add(key)
            picked.append(candidate)
    for candidate in near[round(k * near_share) :]:
        if len(picked) == k:
            break
        key = tuple(units(candidate.text, language))
        if key not in seen:
            seen.add(key)
            picked.append(candidate)
    return picked
