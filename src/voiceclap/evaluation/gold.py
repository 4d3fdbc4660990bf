"""Gold validation, which the seed card never ran: the audio itself says a corrupted text.

On gold clips the TTS spoke a corrupted version of a sentence, so the true WER of the audio
against the intended sentence is known by construction. VoiceCLAP scores each clip against the
*intended* text -- the way a user scores TTS output -- and we ask how well that tracks the true WER,
side by side with the ASR-WER baseline on the very same clips, and how long each took.

Correlations are reported per clip (overall and per language), within each system (TTS voice),
and at system level: the correlation across systems of their mean score and mean true WER, the
number a TTS leaderboard would rest on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from voiceclap.calibration import Calibration
from voiceclap.metrics import by_group, correlation_report

from .asr_baseline import Transcriber, TranscriptCache, asr_error_rates
from .data import EvalClip
from .scorer import Scorer

__all__ = ["gold_eval"]


def _correlations(
    values: np.ndarray, true_wer: np.ndarray, ids: np.ndarray, languages: list[str], n_boot: int, seed: int
):
    return {
        "correlation": correlation_report(values, true_wer, ids, n_boot=n_boot, seed=seed),
        "by_language": by_group(languages, correlation_report, values, true_wer, ids, n_boot=n_boot, seed=seed),
    }


def _per_system(rows: Sequence[dict[str, Any]], columns: Sequence[str], n_boot: int, seed: int) -> dict[str, Any]:
    """Per system: means and the within-system correlation of each column with the true WER; then
    the system-level correlation of the means, with its bootstrap CI. Within-system correlations
    are point estimates: with a handful of clips per voice a CI spans most of [-1, 1], and
    bootstrapping dozens of voices would cost more than the whole gold scoring."""
    members: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["system"] is not None:
            members[row["system"]].append(row)
    if not members:
        return {"undefined": "the clips name no system"}
    systems: dict[str, Any] = {}
    for name in sorted(members):
        group = members[name]
        true_wer = np.array([r["true_wer"] for r in group])
        ids = np.array([r["id"] for r in group])
        entry: dict[str, Any] = {"n": len(group), "mean_true_wer": float(true_wer.mean())}
        for column in columns:
            values = np.array([r[column] for r in group])
            entry[f"mean_{column}"] = float(values.mean())
            entry[f"{column}_correlation"] = correlation_report(values, true_wer, ids, n_boot=0)
        systems[name] = entry
    names = np.array(list(systems))
    mean_true = np.array([systems[s]["mean_true_wer"] for s in names])
    system_level = {
        column: correlation_report(
            np.array([systems[s][f"mean_{column}"] for s in names]), mean_true, names, n_boot=n_boot, seed=seed
        )
        for column in columns
    }
    return {"n_systems": len(systems), "system_level": system_level, "systems": systems}


def gold_eval(
    clips: Sequence[EvalClip],
    scorer: Scorer,
    transcriber: Transcriber | None = None,
    cache: TranscriptCache | None = None,
    calibration: Calibration | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(summary, rows). Rows: one per clip with its score against the intended text, true WER and,
    with a transcriber, the ASR hypothesis and ASR-WER; with a calibration, the estimated WER."""
    clips = list(clips)
    if any(c.intended_text is None or c.true_wer is None for c in clips):
        raise ValueError("gold clips need intended_text and true_wer (load them with gold=True)")
    summary: dict[str, Any] = {"n_clips": len(clips), "audio_seconds": sum(c.seconds for c in clips)}
    if len(clips) == 0:
        summary["undefined"] = "no gold clips"
        return summary, []

    start = time.perf_counter()
    scores = scorer.score_pairs(clips, [c.intended_text for c in clips])
    voiceclap_seconds = time.perf_counter() - start
    rows = [
        {
            "id": c.id,
            "language": c.language,
            "system": c.system,
            "intended_text": c.intended_text,
            "spoken_text": c.text,
            "true_wer": c.true_wer,
            "score": float(s),
        }
        for c, s in zip(clips, scores)
    ]
    true_wer = np.array([c.true_wer for c in clips])
    summary["true_wer"] = {
        "min": float(true_wer.min()),
        "median": float(np.median(true_wer)),
        "max": float(true_wer.max()),
    }
    ids = np.array([c.id for c in clips])
    languages = [c.language for c in clips]
    summary["voiceclap"] = {
        **_correlations(scores, true_wer, ids, languages, n_boot, seed),
        "seconds": voiceclap_seconds,
        "seconds_per_audio_second": voiceclap_seconds / summary["audio_seconds"],
    }
    if calibration is not None:
        estimated = calibration.predict(scores)
        for row, value in zip(rows, estimated):
            row["estimated_wer"] = float(value)
        summary["voiceclap"]["estimated_wer_mae"] = calibration.mean_absolute_error(scores, true_wer)

    columns = ["score"]
    if transcriber is not None:
        asr_summary, asr_rows = asr_error_rates(clips, transcriber, cache, progress)
        by_id = {r["id"]: r for r in asr_rows}
        for row in rows:
            if row["id"] in by_id:
                row["asr_hypothesis"] = by_id[row["id"]]["hypothesis"]
                row["asr_wer"] = by_id[row["id"]]["asr_wer"]
        # Correlations compare like with like: only clips the ASR could transcribe.
        covered = [r for r in rows if "asr_wer" in r]
        seconds = {c.id: c.seconds for c in clips}
        asr_wer = np.array([r["asr_wer"] for r in covered])
        covered_true = np.array([r["true_wer"] for r in covered])
        summary["asr"] = {
            **asr_summary,
            **_correlations(
                asr_wer,
                covered_true,
                np.array([r["id"] for r in covered]),
                [r["language"] for r in covered],
                n_boot,
                seed,
            ),
            "mae": float(np.mean(np.abs(asr_wer - covered_true))) if covered else None,
            "seconds_per_audio_second": asr_summary["seconds"] / sum(seconds[r["id"]] for r in covered)
            if covered
            else None,
        }
        summary["asr_seconds_over_voiceclap_seconds"] = (
            asr_summary["seconds"] / voiceclap_seconds if voiceclap_seconds > 0 else None
        )
        if len(covered) == len(rows):
            columns.append("asr_wer")
    summary["per_system"] = _per_system(rows, columns, n_boot, seed)
    return summary, rows
