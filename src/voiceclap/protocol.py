"""The evaluation protocol: every figure the trainer logs and ``voiceclap eval`` reports, defined once.

A **scorer** gives a number to (clip, text) pairs: the higher, the more the text is what the clip
says (:class:`Scorer`). The CLAP model, Whisper's decoder (the teacher) and ASR-WER (score = -WER of
the text against the clip's transcription) are all scorers, and a test can plug in one with known
answers. Every measure is computed over plain :class:`Row` s: a clip, a candidate text, that text's
WER against what the clip says, and its score.

- **retrieval**: each clip's own transcript among the distinct transcripts of the set (audio->text
  and text->audio R@k, overall and per language), or among a pool of same-language candidates.
- **corruption** (the card's protocol): each clip against its transcript and K random-edit
  corruptions; Spearman/Kendall/Pearson of score against WER pooled over all rows, per language,
  95% CIs from resampling clips.
- **text-prior control**: the same rows scored against another clip's audio of the same language.
  Corruptions read as less fluent than the truth, so a score can track their WER from the text
  alone; this is how much it does. A score that listens keeps it near 0.
- **gold**: clips whose audio says a corrupted text, scored against the intended text; correlation
  with the true WER (per language, per system, and across systems).
- **pairs**: clips with a fluent variant of what they say (a minimal pair); the fraction where the
  said text scores above the variant (ties count as misses).
"""

from __future__ import annotations

import itertools
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from voiceclap.clips import Clip
from voiceclap.corruption import build_vocabulary, make_corruptions
from voiceclap.metrics import by_group, correct_ranks, correlation_report, next_in_group, retrieval_metrics
from voiceclap.text import normalize_for_wer

CORRUPTION_SEED_STREAM = "voiceclap/eval/corruption"
POOL_SEED_STREAM = "voiceclap/eval/pool"
KS = (1, 5, 10)
# Upper edges of the WER bins of the monotonicity table; WER 0 (the true transcripts) gets its own
# row and insertions can push WER past 1.
WER_BINS = (0.1, 0.25, 0.5, 0.75, 1.0, math.inf)


class Scorer(Protocol):
    name: str

    def score_pairs(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        """[n]: clips[i] against texts[i]; higher = texts[i] is more what clips[i] says."""

    def score_matrix(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        """[len(clips), len(texts)]: every clip against every text."""


class EmbeddingScorer:
    """Scores as dot products of L2-normalized embeddings, each clip and each distinct text embedded
    once (the CLAP). ``embed_audio(clips)`` / ``embed_text(texts)`` return float arrays [n, D]; they
    are called once per batch of new inputs, which the caller's functions batch further as they like.
    ``seconds`` accumulates the time spent embedding."""

    def __init__(
        self,
        embed_audio: Callable[[list[Clip]], np.ndarray],
        embed_text: Callable[[list[str]], np.ndarray],
        name: str = "clap",
    ):
        self.name = name
        self.seconds = 0.0
        self._embed_audio, self._embed_text = embed_audio, embed_text
        self._audio: dict[Clip, np.ndarray] = {}
        self._text: dict[str, np.ndarray] = {}

    def _embeddings(self, clips: Sequence[Clip], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        start = time.perf_counter()
        new_clips = list({c: None for c in clips if c not in self._audio})
        if new_clips:
            self._audio.update(zip(new_clips, self._embed_audio(new_clips)))
        new_texts = list({t: None for t in texts if t not in self._text})
        if new_texts:
            self._text.update(zip(new_texts, self._embed_text(new_texts)))
        self.seconds += time.perf_counter() - start
        return np.stack([self._audio[c] for c in clips]), np.stack([self._text[t] for t in texts])

    def score_pairs(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        if len(clips) != len(texts):
            raise ValueError(f"{len(clips)} clips but {len(texts)} texts")
        if not len(clips):
            return np.zeros(0)
        audio, text = self._embeddings(clips, texts)
        return (audio * text).sum(-1).astype(np.float64)

    def score_matrix(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        if not len(clips) or not len(texts):
            return np.zeros((len(clips), len(texts)))
        audio, text = self._embeddings(clips, texts)
        return (audio @ text.T).astype(np.float64)


@dataclass
class Row:
    """One (clip, candidate text) pair: the candidate's WER against what the clip says, its kind
    ("true", or a :class:`voiceclap.clips.Candidate` kind), and its score once scored."""

    clip: Clip
    text: str
    wer: float
    kind: str
    score: float = math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.clip.id,
            "language": self.clip.language,
            "kind": self.kind,
            "text": self.text,
            "wer": self.wer,
            "score": self.score,
        }


def score_rows(rows: Sequence[Row], scorer: Scorer, clips: Sequence[Clip] | None = None) -> np.ndarray:
    """Score every row (against ``clips[i]`` instead of its own clip when given); returns the scores."""
    scores = scorer.score_pairs(clips if clips is not None else [r.clip for r in rows], [r.text for r in rows])
    if clips is None:
        for row, value in zip(rows, scores):
            row.score = float(value)
    return np.asarray(scores, dtype=np.float64)


# ----- retrieval -----


def distinct_transcripts(clips: Sequence[Clip]) -> list[Clip]:
    """The first clip of each normalized transcript, in order: two clips of one sentence would be
    each other's perfect distractors, and a miss between them would say nothing."""
    seen, kept = set(), []
    for clip in clips:
        key = (clip.language, normalize_for_wer(clip.text, clip.language))
        if key not in seen:
            seen.add(key)
            kept.append(clip)
    return kept


def _both_directions(similarity: np.ndarray) -> dict[str, Any]:
    return {"audio_to_text": retrieval_metrics(similarity, KS), "text_to_audio": retrieval_metrics(similarity.T, KS)}


def retrieval(clips: Sequence[Clip], scorer: Scorer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, per-clip rows): R@1/5/10, median and mean rank and N in both directions, overall (all
    languages compete) and per language, among the set's distinct transcripts. Ties rank
    pessimistically (:func:`voiceclap.metrics.correct_ranks`)."""
    kept = distinct_transcripts(clips)
    summary: dict[str, Any] = {"n_clips": len(kept), "n_excluded_duplicate_text": len(clips) - len(kept)}
    if len(kept) < 2:
        summary["undefined"] = "fewer than 2 clips with distinct transcripts"
        return summary, []
    similarity = scorer.score_matrix(kept, [c.text for c in kept])
    summary["overall"] = _both_directions(similarity)
    by_language: dict[str, list[int]] = defaultdict(list)
    for i, clip in enumerate(kept):
        by_language[clip.language].append(i)
    summary["by_language"] = {
        language: _both_directions(similarity[np.ix_(idx, idx)])
        for language, idx in sorted(by_language.items())
        if len(idx) >= 2
    }
    a2t, t2a = correct_ranks(similarity), correct_ranks(similarity.T)
    rows = [
        {"id": c.id, "language": c.language, "audio_to_text_rank": int(a), "text_to_audio_rank": int(t)}
        for c, a, t in zip(kept, a2t, t2a)
    ]
    return summary, rows


def pooled_retrieval(
    clips: Sequence[Clip], scorer: Scorer, pool: int, seed: int = 0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Audio->text R@k with each clip's transcript among ``pool`` candidates: itself and ``pool - 1``
    other distinct transcripts of its language drawn at random (seeded by the clip's id). Costs
    ``pool`` scored pairs per clip, so it suits scorers whose every pair is expensive."""
    kept = distinct_transcripts(clips)
    by_language: dict[str, list[Clip]] = defaultdict(list)
    for clip in kept:
        by_language[clip.language].append(clip)
    pools: list[tuple[Clip, list[str]]] = []  # the clip and its candidates, its own transcript first
    for clip in kept:
        others = [c.text for c in by_language[clip.language] if c is not clip]
        if others:
            rng = random.Random(f"{POOL_SEED_STREAM}/{seed}/{clip.id}")
            pools.append((clip, [clip.text, *rng.sample(others, min(pool - 1, len(others)))]))
    summary: dict[str, Any] = {"pool": pool, "n_clips": len(pools)}
    if not pools:
        summary["undefined"] = "no language has 2 clips with distinct transcripts"
        return summary, []
    scores = scorer.score_pairs([c for c, texts in pools for _ in texts], [t for _, texts in pools for t in texts])
    offsets = np.cumsum([0] + [len(texts) for _, texts in pools])
    # Pessimistic on ties, as correct_ranks: 1 + the other candidates scoring at least as high.
    ranks = np.array([int((scores[a:b] >= scores[a]).sum()) for a, b in itertools.pairwise(offsets)])
    sizes = np.diff(offsets)
    languages = [clip.language for clip, _ in pools]
    summary["overall"] = _pool_metrics(ranks, sizes)
    summary["by_language"] = by_group(languages, _pool_metrics, ranks, sizes)
    sources = [clip.source or "unknown" for clip, _ in pools]
    if len(set(sources)) > 1:  # a mixed set (recorded speech: uqm, tuxpaint, ...) by source as well
        summary["by_source"] = by_group(sources, _pool_metrics, ranks, sizes)
    rows = [
        {"id": clip.id, "language": clip.language, "source": clip.source, "rank": int(r), "candidates": int(n)}
        for (clip, _), r, n in zip(pools, ranks, sizes)
    ]
    return summary, rows


def _pool_metrics(ranks: np.ndarray, sizes: np.ndarray) -> dict[str, Any]:
    return {
        **{f"R@{k}": float(np.mean(ranks <= k)) for k in KS},
        "median_rank": float(np.median(ranks)),
        "N": int(ranks.size),
        "mean_candidates": float(np.mean(sizes)),
    }


# ----- candidates and the correlation of score with WER -----


def card_candidates(clips: Sequence[Clip], k: int, seed: int) -> tuple[list[Row], list[dict[str, str]]]:
    """Each clip's transcript (WER 0) then ``k`` corruptions at a stratified spread of edit fractions
    (:func:`voiceclap.corruption.make_corruptions`), substitutes drawn from the vocabulary of the set's
    own transcripts of that language. Each clip's generator is seeded from its id, the seed and a
    stream of its own: the candidates are not the training negatives, and are the same on every run
    whatever order the clips come in. Returns (rows, skipped clips with the reason)."""
    texts_by_language: dict[str, list[str]] = defaultdict(list)
    for clip in sorted(clips, key=lambda c: c.id):
        texts_by_language[clip.language].append(clip.text)
    vocabularies, skipped = {}, []
    for language, texts in texts_by_language.items():
        try:
            vocabularies[language] = build_vocabulary(texts, language)
        except ValueError as error:
            skipped.extend({"id": c.id, "reason": f"vocabulary: {error}"} for c in clips if c.language == language)
    rows: list[Row] = []
    for clip in clips:
        if clip.language not in vocabularies:
            continue
        rng = random.Random(f"{CORRUPTION_SEED_STREAM}/{seed}/{clip.id}")
        try:
            corruptions = make_corruptions(clip.text, clip.language, k, vocabularies[clip.language], rng)
        except ValueError as error:  # a transcript without words
            skipped.append({"id": clip.id, "reason": f"corruption: {error}"})
            continue
        rows.append(Row(clip, clip.text, 0.0, "true"))
        seen = {clip.text}
        for corruption in corruptions:
            # A too-short text can yield the same corruption twice; pooling it twice would double its weight.
            if corruption.text not in seen:
                seen.add(corruption.text)
                rows.append(Row(clip, corruption.text, corruption.error_rate, "corruption"))
    return rows, skipped


def stored_candidates(clips: Sequence[Clip], kinds: Sequence[str] | None = None) -> list[Row]:
    """Each clip's transcript then the candidates stored with it (of ``kinds`` when given)."""
    rows = []
    for clip in clips:
        rows.append(Row(clip, clip.text, 0.0, "true"))
        rows += [Row(clip, c.text, c.error_rate, c.kind) for c in clip.candidates if kinds is None or c.kind in kinds]
    return rows


def _true_ranked_first(rows: Sequence[Row]) -> float | None:
    """Fraction of clips whose true transcript scores strictly above every other candidate of it."""
    best_other: dict[int, float] = defaultdict(lambda: -math.inf)
    true_score: dict[int, float] = {}
    for row in rows:
        if row.kind == "true":
            true_score[id(row.clip)] = row.score
        else:
            best_other[id(row.clip)] = max(best_other[id(row.clip)], row.score)
    wins = [true_score[c] > best_other[c] for c in true_score if c in best_other]
    return float(np.mean(wins)) if wins else None


def mean_score_by_wer(scores: np.ndarray, wers: np.ndarray) -> list[dict[str, Any]]:
    """Mean score per WER bin (WER 0 on its own): a monotone scorer's means fall down the table."""
    table, lower = [], 0.0
    exact_zero = wers == 0
    if exact_zero.any():
        table.append({"wer_bin": "0", "n": int(exact_zero.sum()), "mean_score": float(scores[exact_zero].mean())})
    for upper in WER_BINS:
        inside = (wers > lower) & (wers <= upper)
        if inside.any():
            label = f"({lower:g}, {upper:g}]" if math.isfinite(upper) else f"> {lower:g}"
            table.append({"wer_bin": label, "n": int(inside.sum()), "mean_score": float(scores[inside].mean())})
        lower = upper
    return table


def rank_correlation(rows: Sequence[Row], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """How scored rows' scores fall with their WER: pooled correlations with clip-bootstrap CIs, per
    language (same bootstrap), the fraction of clips whose truth outranks all their candidates, and
    the mean score per WER bin. Each (clip, text) pair must occur once."""
    seen = set()
    for row in rows:
        if (row.clip.id, row.text) in seen:
            raise ValueError(f"duplicate candidate for clip {row.clip.id!r}: {row.text!r}")
        seen.add((row.clip.id, row.text))
    scores = np.array([r.score for r in rows])
    wers = np.array([r.wer for r in rows])
    # Clips are resampled by id (a set holds each id once): the same CIs on every run.
    groups = np.array([r.clip.id for r in rows])
    languages = [r.clip.language for r in rows]
    return {
        "n_clips": len(set(groups.tolist())),
        "n_rows": len(rows),
        "pooled": correlation_report(scores, wers, groups, n_boot=n_boot, seed=seed),
        "by_language": by_group(languages, correlation_report, scores, wers, groups, n_boot=n_boot, seed=seed),
        "true_ranked_first": _true_ranked_first(rows),
        "mean_score_by_wer": mean_score_by_wer(scores, wers),
    }


def text_prior_control(rows: Sequence[Row], scorer: Scorer, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The rows' correlation when each clip's candidates are scored against the next clip's audio of
    the same language (clips alone in their language are left out)."""
    clips = list({id(r.clip): r.clip for r in rows}.values())
    partner = next_in_group([c.language for c in clips])
    other_audio = {id(c): clips[j] for c, j in zip(clips, partner) if j >= 0}
    paired = [r for r in rows if id(r.clip) in other_audio]
    scores = score_rows(paired, scorer, clips=[other_audio[id(r.clip)] for r in paired])
    return correlation_report(scores, [r.wer for r in paired], [r.clip.id for r in paired], n_boot=n_boot, seed=seed)


def corruption(
    clips: Sequence[Clip], scorer: Scorer, k: int = 5, seed: int = 0, n_boot: int = 1000
) -> tuple[dict[str, Any], list[Row]]:
    """The card's protocol with its text-prior control: (summary, scored rows)."""
    rows, skipped = card_candidates(clips, k, seed)
    summary: dict[str, Any] = {"k_corruptions": k, "seed": seed, "seed_stream": CORRUPTION_SEED_STREAM}
    if not rows:
        return {**summary, "skipped": skipped, "undefined": "no clip could be corrupted"}, []
    score_rows(rows, scorer)
    summary.update(rank_correlation(rows, n_boot, seed))
    wers = np.array([r.wer for r in rows])
    corrupted = wers[wers > 0]
    summary["corrupted_wer"] = (
        {q: float(np.quantile(corrupted, p)) for q, p in (("min", 0), ("median", 0.5), ("max", 1))}
        if corrupted.size
        else None
    )
    summary["other_audio_control"] = text_prior_control(rows, scorer, n_boot, seed)
    summary["skipped"] = skipped
    return summary, rows


# ----- gold and minimal pairs -----


def _per_system(rows: Sequence[Row], n_boot: int, seed: int) -> dict[str, Any]:
    """Per system (TTS voice / speaker): the mean score and true WER and their correlation within it;
    then the correlation across systems of those means, the number a TTS leaderboard would rest on.
    Within-system correlations are point estimates: a handful of clips per voice spans most of [-1, 1]."""
    members: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.clip.speaker is not None:
            members[row.clip.speaker].append(row)
    if not members:
        return {"undefined": "the clips name no system"}
    systems = {}
    for name in sorted(members):
        group = members[name]
        scores, wers = np.array([r.score for r in group]), np.array([r.wer for r in group])
        systems[name] = {
            "n": len(group),
            "mean_true_wer": float(wers.mean()),
            "mean_score": float(scores.mean()),
            "correlation": correlation_report(scores, wers, [r.clip.id for r in group], n_boot=0),
        }
    names = list(systems)
    level = correlation_report(
        [systems[s]["mean_score"] for s in names], [systems[s]["mean_true_wer"] for s in names], names,
        n_boot=n_boot, seed=seed,
    )
    return {"n_systems": len(systems), "system_level": level, "systems": systems}


def gold(clips: Sequence[Clip], scorer: Scorer, n_boot: int = 1000, seed: int = 0) -> tuple[dict[str, Any], list[Row]]:
    """Each clip scored against its intended text, whose WER against what the audio says is the true
    WER: (summary, scored rows). A good score correlates negatively with the true WER."""
    clips = list(clips)
    if any(c.intended_text is None or c.true_wer is None for c in clips):
        raise ValueError("gold clips need intended_text and true_wer")
    rows = [Row(c, c.intended_text, c.true_wer, "intended") for c in clips]
    if not rows:
        return {"n_clips": 0, "undefined": "no gold clips"}, []
    start = time.perf_counter()
    scores = score_rows(rows, scorer)
    seconds = time.perf_counter() - start
    wers = np.array([r.wer for r in rows])
    ids = [c.id for c in clips]
    audio_seconds = sum(c.seconds for c in clips)
    summary = {
        "n_clips": len(rows),
        "audio_seconds": audio_seconds,
        "true_wer": {"min": float(wers.min()), "median": float(np.median(wers)), "max": float(wers.max())},
        "correlation": correlation_report(scores, wers, ids, n_boot=n_boot, seed=seed),
        "by_language": by_group(
            [c.language for c in clips], correlation_report, scores, wers, ids, n_boot=n_boot, seed=seed
        ),
        "per_system": _per_system(rows, n_boot, seed),
        "seconds": seconds,
        "seconds_per_audio_second": seconds / audio_seconds if audio_seconds else None,
    }
    return summary, rows


def pairs(clips: Sequence[Clip], scorer: Scorer, kind: str = "variant") -> tuple[dict[str, Any], list[Row]]:
    """Minimal pairs: each clip against what it says and its stored candidates of ``kind`` (a fluent
    variant differing in a word or two). Accuracy: the fraction of (clip, variant) pairs where the
    said text scores strictly above the variant, overall and per language."""
    rows = stored_candidates(clips, kinds=[kind])
    score_rows(rows, scorer)
    true_score = {id(r.clip): r.score for r in rows if r.kind == "true"}
    outcomes = [(r.clip.language, float(true_score[id(r.clip)] > r.score)) for r in rows if r.kind != "true"]
    if not outcomes:
        return {"n_pairs": 0, "undefined": f"no clip has a {kind!r} candidate"}, rows
    languages = [lang for lang, _ in outcomes]
    wins = np.array([w for _, w in outcomes])
    summary = {
        "n_pairs": len(outcomes),
        "accuracy": float(wins.mean()),
        "by_language": by_group(languages, lambda w: {"n": int(w.size), "accuracy": float(w.mean())}, wins),
    }
    return summary, rows
