"""Retrieval on the held-out set: audio->text and text->audio R@k and median rank, overall and per language.

R@1 depends on how many candidates compete, so every figure carries its N. Clips whose transcripts
are the same after WER normalization (one sentence spoken by two voices) would be each other's
perfect distractors, and a "miss" between them says nothing about the model; only the first clip of
each such group takes part, and the report says how many were left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from voiceclap.metrics import correct_ranks, retrieval_metrics
from voiceclap.text import normalize_for_wer

from .data import EvalClip
from .scorer import Scorer

__all__ = ["distinct_transcripts", "retrieval_eval"]

KS = (1, 5, 10)


def distinct_transcripts(clips: Sequence[EvalClip]) -> list[EvalClip]:
    """The first clip of each normalized transcript, in order."""
    seen, kept = set(), []
    for clip in clips:
        key = (clip.language, normalize_for_wer(clip.text, clip.language))
        if key not in seen:
            seen.add(key)
            kept.append(clip)
    return kept


def _both_directions(similarity: np.ndarray) -> dict[str, Any]:
    return {
        "audio_to_text": retrieval_metrics(similarity, KS),
        "text_to_audio": retrieval_metrics(similarity.T, KS),
    }


def retrieval_eval(clips: Sequence[EvalClip], scorer: Scorer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, rows): the summary holds R@1/5/10, median and mean rank and N for both directions,
    overall (all languages compete) and per language (only that language's clips compete); a row
    per clip gives its ranks in the overall setting. Ties rank pessimistically (metrics.correct_ranks).
    """
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
