"""Evaluation metrics: WER/CER, retrieval recall, and score-vs-WER correlations with CIs.

Correlation confidence intervals bootstrap over *groups* (clips), not rows: the rows of one clip
(its true transcript and its corrupted candidates) share the audio and are not independent, so
resampling rows would understate the uncertainty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import jiwer
import numpy as np
from scipy import stats

from voiceclap.text import normalize_for_wer, units

__all__ = [
    "by_group",
    "character_error_rate",
    "correct_ranks",
    "correlation_report",
    "error_rate",
    "next_in_group",
    "pooled_per_utterance",
    "retrieval_metrics",
]

_CORRELATIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "spearman": lambda x, y: float(stats.spearmanr(x, y)[0]),
    # tau-b (scipy's default), which corrects for the many ties WER has (every true transcript is 0).
    "kendall": lambda x, y: float(stats.kendalltau(x, y)[0]),
    "pearson": lambda x, y: float(stats.pearsonr(x, y)[0]),
}


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER of ``hypothesis`` against ``reference`` -- CER for character languages
    (:func:`voiceclap.text.uses_characters`) -- on :func:`voiceclap.text.units`.

    Errors are (substitutions + deletions + insertions) / reference units, so the value can
    exceed 1 with many insertions. A reference with no units has no defined rate; we return 0.0
    when the hypothesis is empty too (nothing to say, nothing said) and 1.0 otherwise (everything
    said is wrong), so empty references neither crash an evaluation nor dominate its mean.
    """
    return _unit_error_rate(units(reference, language), units(hypothesis, language))


def character_error_rate(reference: str, hypothesis: str, language: str) -> float:
    """Errors per character of the normalized texts (:func:`voiceclap.text.normalize_for_wer`),
    whitespace ignored, in any language; for character languages this is :func:`error_rate`.

    For checking that a TTS voice is intelligible with an ASR weaker than the voice: a misspelt word
    or a misplaced word boundary ("на прикінці" for "наприкінці") is a whole word error but costs
    only the characters that differ. Empty references are handled as in :func:`error_rate`.
    """
    return _unit_error_rate(
        [char for char in normalize_for_wer(reference, language) if not char.isspace()],
        [char for char in normalize_for_wer(hypothesis, language) if not char.isspace()],
    )


def _unit_error_rate(ref: list[str], hyp: list[str]) -> float:
    if not ref:
        return 0.0 if not hyp else 1.0
    # Units never contain whitespace, so joining with spaces makes jiwer's own word split see
    # exactly our units.
    return float(jiwer.wer(" ".join(ref), " ".join(hyp)))


def correct_ranks(similarity: np.ndarray) -> np.ndarray:
    """1-based rank of the correct target (column i) for each query (row i).

    Ties are counted pessimistically: rank = 1 + the number of *other* targets scoring >= the
    correct one. A scorer that gives every target the same score therefore ranks every correct
    item last instead of first, so degenerate models cannot look perfect.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"similarity must be 2-D [N_query, N_target], got shape {sim.shape}")
    n_query, n_target = sim.shape
    if n_query > n_target:
        raise ValueError(f"query i's target is column i, so N_target ({n_target}) must be >= N_query ({n_query})")
    if not np.isfinite(sim).all():
        raise ValueError("similarity contains NaN or infinite values")
    rows = np.arange(n_query)
    correct = sim[rows, rows]
    # ">=" counts the correct item itself once; that self-count is the "1 +" of the rank.
    return (sim >= correct[:, None]).sum(axis=1)


def retrieval_metrics(similarity: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k, median and mean rank for ``similarity[query, target]`` where query i's correct
    target is target i (extra columns are distractors). For the other direction pass
    ``similarity.T``. Ranks follow :func:`correct_ranks` (pessimistic on ties).

    Returns ``{"R@1": ..., "R@5": ..., "median_rank": ..., "mean_rank": ..., "N": n_query}``.
    """
    ranks = correct_ranks(similarity)
    if ranks.size == 0:
        raise ValueError("similarity has no queries")
    out: dict[str, float] = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    out["mean_rank"] = float(np.mean(ranks))
    out["N"] = int(ranks.size)
    return out


def _undefined_reason(x: np.ndarray, y: np.ndarray) -> str | None:
    if x.size < 3:
        # Two points always correlate +-1 and scipy warns below 3; neither is informative.
        return "fewer than 3 rows"
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return "constant input"
    return None


def correlation_report(
    scores: Sequence[float] | np.ndarray,
    wers: Sequence[float] | np.ndarray,
    groups: Sequence[Hashable] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Spearman, Kendall (tau-b) and Pearson correlation of ``scores`` with ``wers``, each with a
    95% percentile-bootstrap CI that resamples ``groups`` (clip ids) with replacement, taking all
    rows of a drawn group together.

    A good scorer correlates *negatively* with WER. When a correlation is undefined (constant
    scores or WERs, fewer than 3 rows) its entry is ``{"value": None, "ci95": None, "undefined":
    reason}`` -- never NaN. Bootstrap replicates that happen to be constant are skipped;
    ``n_boot_valid`` says how many were used (CI is None if none were).

    Returns ``{"n": rows, "n_groups": groups, "spearman": {"value", "ci95", "n_boot_valid"} ...}``.
    """
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(wers, dtype=np.float64)
    g = np.asarray(groups)
    if not (x.ndim == y.ndim == g.ndim == 1 and x.size == y.size == g.size):
        raise ValueError(f"scores, wers, groups must be 1-D and equally long, got {x.shape}, {y.shape}, {g.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("scores and wers must be finite")

    _, group_index = np.unique(g, return_inverse=True)
    order = np.argsort(group_index, kind="stable")
    boundaries = np.flatnonzero(np.diff(group_index[order])) + 1
    rows_of_group = np.split(order, boundaries) if order.size else []

    report: dict[str, Any] = {"n": int(x.size), "n_groups": len(rows_of_group)}
    reason = _undefined_reason(x, y)
    if reason is not None:
        for name in _CORRELATIONS:
            report[name] = {"value": None, "ci95": None, "undefined": reason}
        return report

    rng = np.random.default_rng(seed)
    replicates = {name: [] for name in _CORRELATIONS}
    for _ in range(n_boot):
        drawn = rng.integers(0, len(rows_of_group), size=len(rows_of_group))
        idx = np.concatenate([rows_of_group[i] for i in drawn])
        bx, by = x[idx], y[idx]
        if _undefined_reason(bx, by) is not None:
            continue
        for name, fn in _CORRELATIONS.items():
            replicates[name].append(fn(bx, by))

    for name, fn in _CORRELATIONS.items():
        values = replicates[name]
        ci = [float(v) for v in np.percentile(values, [2.5, 97.5])] if values else None
        report[name] = {"value": fn(x, y), "ci95": ci, "n_boot_valid": len(values)}
    return report


def pooled_per_utterance(
    rows: Iterable[tuple[Hashable, str, float, float]], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The seed card's correlation protocol: each utterance (clip) is scored against several
    candidate transcripts (its true one and corruptions), and all ``(clip, transcript, score,
    wer)`` rows are pooled into one correlation, bootstrapped over clips.

    A repeated ``(clip, transcript)`` pair raises: it would silently double-weight that row.
    """
    clips, scores, wers = [], [], []
    seen = set()
    for clip, transcript, score, wer in rows:
        if (clip, transcript) in seen:
            raise ValueError(f"duplicate candidate for clip {clip!r}: {transcript!r}")
        seen.add((clip, transcript))
        clips.append(clip)
        scores.append(score)
        wers.append(wer)
    return correlation_report(scores, wers, clips, n_boot=n_boot, seed=seed)


def by_group(
    keys: Sequence[Hashable] | np.ndarray,
    fn: Callable[..., Any],
    *columns: Sequence[Any] | np.ndarray,
    **kwargs: Any,
) -> dict[Hashable, Any]:
    """Apply ``fn(*columns_subset, **kwargs)`` to the rows of each distinct key -- e.g. a
    per-language breakdown: ``by_group(langs, correlation_report, scores, wers, clips)``.
    Keys come back in sorted order (by string form, so mixed key types are fine)."""
    key_array = list(keys)
    arrays = [np.asarray(column) for column in columns]
    for column in arrays:
        if len(column) != len(key_array):
            raise ValueError(f"column of length {len(column)} does not match {len(key_array)} keys")
    members: dict[Hashable, list[int]] = {}
    for i, key in enumerate(key_array):
        members.setdefault(key, []).append(i)
    return {
        key: fn(*(column[members[key]] for column in arrays), **kwargs)
        for key in sorted(members, key=str)
    }


def next_in_group(groups: Sequence[Hashable]) -> np.ndarray:
    """For each item, the index of the next item of the same group in the given order, wrapping
    round; -1 for an item alone in its group. It pairs each clip with another clip's audio of the
    same language for the text-prior control of the corruption protocol."""
    members: dict[Hashable, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    partner = np.full(len(groups), -1)
    for indices in members.values():
        if len(indices) > 1:
            partner[indices] = np.roll(indices, -1)
    return partner
