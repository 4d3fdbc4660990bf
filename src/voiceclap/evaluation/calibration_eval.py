"""Score -> expected-WER calibration: fitted on one half of the held-out clips, tested on the other.

The rows are the synthetic-corruption rows (each clip against its true and corrupted transcripts),
which span the WER range; a clip's rows all fall in the same half (split by a hash of its id), so
the test half holds audio the map never saw. The mean absolute error is reported next to that of
the best constant guess (the fit half's mean WER), which says what the map adds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from voiceclap.calibration import Calibration
from voiceclap.clips import id_hash
from voiceclap.protocol import Row

__all__ = ["CALIBRATION_SALT", "evaluate_calibration", "fit_calibration", "in_fit_half"]

CALIBRATION_SALT = "calibration-split"


def in_fit_half(clip_id: str) -> bool:
    return id_hash(clip_id, CALIBRATION_SALT) % 2 == 0


def _arrays(rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([r.score for r in rows], dtype=np.float64), np.array([r.wer for r in rows], dtype=np.float64)


def evaluate_calibration(calibration: Calibration, rows: Sequence[Row]) -> dict[str, Any]:
    """MAE of the calibration's estimated WER against the rows' WER."""
    scores, wers = _arrays(rows)
    return {
        "n_rows": len(rows),
        "n_clips": len({r.clip.id for r in rows}),
        "mae": calibration.mean_absolute_error(scores, wers) if len(rows) else None,
    }


def fit_calibration(rows: Sequence[Row]) -> tuple[Calibration | None, dict[str, Any]]:
    """Fit on the rows of the fit half, test on the rest. Returns (calibration, summary); the
    calibration is None (and the summary says why) when a half has no rows."""
    fit_rows = [r for r in rows if in_fit_half(r.clip.id)]
    test_rows = [r for r in rows if not in_fit_half(r.clip.id)]
    summary: dict[str, Any] = {"split": f"clip-id hash ({CALIBRATION_SALT!r}), halves"}
    if not fit_rows or not test_rows:
        summary["undefined"] = "too few clips to split into a fit and a test half"
        return None, summary
    calibration = Calibration().fit(*_arrays(fit_rows))
    test_wers = _arrays(test_rows)[1]
    constant = float(_arrays(fit_rows)[1].mean())
    summary.update(
        {
            "fit": {"n_rows": len(fit_rows), "n_clips": len({r.clip.id for r in fit_rows})},
            "test": evaluate_calibration(calibration, test_rows),
            "test_mae_constant_guess": float(np.mean(np.abs(test_wers - constant))),
            "n_knots": int(calibration.knots_x.size),
        }
    )
    return calibration, summary
