"""The card's synthetic-corruption protocol: does the score fall as the transcript's WER rises?

Each held-out clip is scored against its true transcript (WER 0) and ``k`` corrupted ones at a
stratified spread of edit fractions (``voiceclap.corruption.make_corruptions``). All (clip,
candidate) rows are pooled into one Spearman/Kendall/Pearson correlation, per language too, with
95% CIs from resampling clips (``voiceclap.metrics``).

The corruptions come from a random stream of their own: each clip's generator is seeded from
``EVAL_SEED_STREAM``, the run's seed and the clip id, so the evaluation candidates are not the
training negatives and are the same on every run with the same seed and set of clips, in whatever
order the clips come (the substitution vocabulary is built from the transcripts in id order).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from voiceclap.corruption import build_vocabulary, make_corruptions
from voiceclap.metrics import by_group, correlation_report, next_in_group, pooled_per_utterance

from .data import EvalClip
from .scorer import Scorer

__all__ = ["EVAL_SEED_STREAM", "WER_BINS", "build_candidates", "corruption_eval", "mean_score_by_wer"]

EVAL_SEED_STREAM = "voiceclap/eval/corruption"

# Upper edges of the WER bins the monotonicity table uses; WER 0 (the true transcripts) gets its own
# row and insertions can push WER past 1.
WER_BINS = (0.1, 0.25, 0.5, 0.75, 1.0, np.inf)


def build_candidates(
    clips: Sequence[EvalClip], k: int, seed: int, progress: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Candidate rows ``{"clip", "id", "language", "is_true", "text", "wer", "edit_fraction"}``: the true
    transcript first, then its corruptions. Substitutes and insertions are drawn from the
    vocabulary of the clips' own transcripts in the same language. Returns (rows, skipped)."""
    texts_by_language: dict[str, list[str]] = defaultdict(list)
    for clip in sorted(clips, key=lambda c: c.id):
        texts_by_language[clip.language].append(clip.text)
    vocabularies, skipped = {}, []
    for language, texts in texts_by_language.items():
        try:
            vocabularies[language] = build_vocabulary(texts, language)
        except ValueError as error:
            skipped.extend({"id": c.id, "reason": f"vocabulary: {error}"} for c in clips if c.language == language)

    rows: list[dict[str, Any]] = []
    for clip in tqdm(clips, desc="corrupt transcripts", unit="clip", disable=not progress):
        if clip.language not in vocabularies:
            continue
        rng = random.Random(f"{EVAL_SEED_STREAM}/{seed}/{clip.id}")
        try:
            corruptions = make_corruptions(clip.text, clip.language, k, vocabularies[clip.language], rng)
        except ValueError as error:  # a transcript without words
            skipped.append({"id": clip.id, "reason": f"corruption: {error}"})
            continue
        base = {"clip": clip, "id": clip.id, "language": clip.language}
        candidates = [{**base, "is_true": True, "text": clip.text, "wer": 0.0, "edit_fraction": 0.0}]
        seen = {clip.text}
        for corruption in corruptions:
            # A too-short text can yield the same corruption twice; pooling it twice would double its weight.
            if corruption.text not in seen:
                seen.add(corruption.text)
                candidates.append(
                    {
                        **base,
                        "is_true": False,
                        "text": corruption.text,
                        "wer": corruption.error_rate,
                        "edit_fraction": corruption.edit_fraction,
                    }
                )
        rows.extend(candidates)
    return rows, skipped


def mean_score_by_wer(scores: np.ndarray, wers: np.ndarray) -> list[dict[str, Any]]:
    """Mean score per WER bin (WER 0 on its own): a monotone scorer's means fall down the table."""
    table, lower = [], 0.0
    exact_zero = wers == 0
    if exact_zero.any():
        table.append({"wer_bin": "0", "n": int(exact_zero.sum()), "mean_score": float(scores[exact_zero].mean())})
    for upper in WER_BINS:
        inside = (wers > lower) & (wers <= upper)
        if inside.any():
            label = f"({lower:g}, {upper:g}]" if np.isfinite(upper) else f"> {lower:g}"
            table.append({"wer_bin": label, "n": int(inside.sum()), "mean_score": float(scores[inside].mean())})
        lower = upper
    return table


def _true_ranked_first(rows: Sequence[dict[str, Any]]) -> float | None:
    """Fraction of clips whose true transcript scores strictly above every corruption of it."""
    best_corrupted: dict[str, float] = defaultdict(lambda: -np.inf)
    true_score: dict[str, float] = {}
    for row in rows:
        if row["is_true"]:
            true_score[row["id"]] = row["score"]
        else:
            best_corrupted[row["id"]] = max(best_corrupted[row["id"]], row["score"])
    wins = [true_score[i] > best_corrupted[i] for i in true_score if i in best_corrupted]
    return float(np.mean(wins)) if wins else None


def _other_audio_control(rows: Sequence[dict[str, Any]], scorer: Scorer, n_boot: int, seed: int) -> dict[str, Any]:
    """The rows' correlation when each clip's candidates are scored against the next clip's audio of
    the same language. Corruptions read as less fluent than true transcripts, so a score can track
    their WER from the text alone; this is how much it does. An audio-grounded score keeps it near 0."""
    clips = list({row["id"]: row["clip"] for row in rows}.values())
    partner = next_in_group([clip.language for clip in clips])
    other_audio = {clip.id: clips[j] for clip, j in zip(clips, partner) if j >= 0}
    paired = [row for row in rows if row["id"] in other_audio]
    scores = scorer.score_pairs([other_audio[row["id"]] for row in paired], [row["text"] for row in paired])
    wers = [row["wer"] for row in paired]
    return correlation_report(scores, wers, [row["id"] for row in paired], n_boot=n_boot, seed=seed)


def corruption_eval(
    clips: Sequence[EvalClip], scorer: Scorer, k: int = 5, seed: int = 0, n_boot: int = 1000, progress: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, rows). Rows: one per (clip, candidate) with its WER, edit fraction and score."""
    rows, skipped = build_candidates(clips, k, seed, progress)
    summary: dict[str, Any] = {
        "k_corruptions": k,
        "seed": seed,
        "seed_stream": EVAL_SEED_STREAM,
        "n_clips": len({r["id"] for r in rows}),
        "n_rows": len(rows),
        "skipped": skipped,
    }
    if not rows:
        summary["undefined"] = "no clip could be corrupted"
        return summary, []
    scores = scorer.score_pairs([r["clip"] for r in rows], [r["text"] for r in rows])
    summary["other_audio_control"] = _other_audio_control(rows, scorer, n_boot, seed)
    for row, score in zip(rows, scores):
        del row["clip"]
        row["score"] = float(score)
    ids = np.array([r["id"] for r in rows])
    languages = [r["language"] for r in rows]
    wers = np.array([r["wer"] for r in rows])
    summary["corrupted_wer"] = (
        {q: float(np.quantile(wers[wers > 0], p)) for q, p in (("min", 0), ("median", 0.5), ("max", 1))}
        if (wers > 0).any()
        else None
    )
    summary["pooled"] = pooled_per_utterance(((r["id"], r["text"], r["score"], r["wer"]) for r in rows), n_boot, seed)
    summary["by_language"] = by_group(languages, correlation_report, scores, wers, ids, n_boot=n_boot, seed=seed)
    summary["true_ranked_first"] = _true_ranked_first(rows)
    summary["mean_score_by_wer"] = mean_score_by_wer(scores, wers)
    return summary, rows
