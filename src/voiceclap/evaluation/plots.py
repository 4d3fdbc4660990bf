"""The report's PNG figures, drawn from the per-row results (never recomputing a metric)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and CI

import matplotlib.pyplot as plt
import numpy as np

from voiceclap.calibration import Calibration

__all__ = ["plot_calibration", "plot_gold_comparison", "plot_rank_histogram", "plot_score_vs_wer"]


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _binned_means(x: np.ndarray, y: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Mean y in equal-width x bins (empty bins dropped): the trend line over a cloud of points."""
    edges = np.linspace(x.min(), x.max(), n_bins + 1)
    which = np.clip(np.digitize(x, edges[1:-1]), 0, n_bins - 1)
    centers, means = [], []
    for b in range(n_bins):
        if (which == b).any():
            centers.append(x[which == b].mean())
            means.append(y[which == b].mean())
    return np.array(centers), np.array(means)


def plot_score_vs_wer(rows: Sequence[dict[str, Any]], path: Path, scorer: str = "clap") -> str:
    """Score against the candidate's WER, one panel per language, with the binned mean."""
    by_language: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_language[row["language"]].append(row)
    languages = sorted(by_language)
    columns = min(3, len(languages))
    lines = math.ceil(len(languages) / columns)
    fig, axes = plt.subplots(lines, columns, figsize=(4.2 * columns, 3.4 * lines), squeeze=False, sharey=True)
    for ax, language in zip(axes.flat, languages):
        wer = np.array([r["wer"] for r in by_language[language]])
        score = np.array([r["score"] for r in by_language[language]])
        ax.scatter(wer, score, s=6, alpha=0.35)
        ax.plot(*_binned_means(wer, score), color="C3", marker="o", label="binned mean")
        ax.set_title(f"{language} ({len({r['id'] for r in by_language[language]})} clips)")
        ax.set_xlabel("WER of the candidate transcript")
        ax.set_ylabel(f"{scorer} score")
        ax.legend(loc="upper right", fontsize=8)
    for ax in axes.flat[len(languages) :]:
        ax.set_visible(False)
    return _save(fig, path)


def plot_rank_histogram(rows: Sequence[dict[str, Any]], path: Path) -> str:
    """Where the correct item ranked, both directions (rank 1 = retrieved first), with R@k as a
    line: log-width bins alone make even a chance-level (uniform) rank distribution look skewed."""
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.6))
    n = len(rows)
    edges = np.unique(np.geomspace(1, max(n, 2) + 1, 30).astype(int))
    for ax, key, title in zip(axes, ("audio_to_text_rank", "text_to_audio_rank"), ("audio -> text", "text -> audio")):
        ranks = np.sort([r[key] for r in rows])
        ax.hist(ranks, bins=edges)
        ax.set_xscale("log")
        ax.set_title(f"{title} (N = {n})")
        ax.set_xlabel("rank of the correct item")
        ax.set_ylabel("clips")
        recall = ax.twinx()
        recall.step(ranks, np.arange(1, n + 1) / n, where="post", color="C3")
        recall.set_ylim(0, 1.02)
        recall.set_ylabel("R@k (fraction ranked <= k)", color="C3")
    return _save(fig, path)


def plot_calibration(calibration: Calibration, rows: Sequence[dict[str, Any]], path: Path) -> str:
    """The fitted score -> expected WER map over the rows it is tested on."""
    score = np.array([r["score"] for r in rows])
    wer = np.array([r["wer"] for r in rows])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(score, wer, s=6, alpha=0.3, label="test rows")
    grid = np.linspace(min(score.min(), calibration.knots_x[0]), max(score.max(), calibration.knots_x[-1]), 300)
    ax.plot(grid, calibration.predict(grid), color="C3", label="calibration (isotonic)")
    ax.set_xlabel("VoiceCLAP score (cosine)")
    ax.set_ylabel("WER")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_gold_comparison(rows_by_scorer: dict[str, Sequence[dict[str, Any]]], path: Path) -> str:
    """Gold clips: each scorer's score against the intended text, against the true WER."""
    fig, axes = plt.subplots(1, len(rows_by_scorer), figsize=(4.6 * len(rows_by_scorer), 3.8), squeeze=False)
    for ax, (scorer, rows) in zip(axes.flat, rows_by_scorer.items()):
        true_wer = np.array([r["wer"] for r in rows])
        score = np.array([r["score"] for r in rows])
        ax.scatter(true_wer, score, s=8, alpha=0.4)
        ax.plot(*_binned_means(true_wer, score), color="C3", marker="o", label="binned mean")
        ax.set_xlabel("true WER (by construction)")
        ax.set_ylabel(f"{scorer} score against the intended text")
        ax.set_title(scorer)
        ax.legend(fontsize=8)
    return _save(fig, path)
