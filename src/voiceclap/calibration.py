"""Calibration of raw scores into expected WER: a monotone (decreasing) isotonic map.

A cosine is only meaningful relative to other cosines; users want "this clip is about 12% WER".
Isotonic regression gives the best least-squares fit that can only go down as the score goes up,
without assuming a shape. The fitted map is a piecewise-linear function through a few knots, stored
as plain JSON next to the model (never pickle: a model directory must be safe to load).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Calibration"]

_FORMAT = "voiceclap-calibration"
_VERSION = 1


def _paired(a: Any, b: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Two equally long, non-empty, finite 1-D float arrays, or a ValueError naming ``what``."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or x.size == 0:
        raise ValueError(f"{what} must be equally long non-empty 1-D arrays, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what} must be finite")
    return x, y


class Calibration:
    """Score -> expected WER, non-increasing in the score.

    Between knots the map interpolates linearly; outside the fitted score range it is clamped to
    the end values (as sklearn's ``out_of_bounds="clip"``), so a score beyond anything seen in
    calibration gets the most extreme WER that was observed, not an extrapolation.
    """

    def __init__(self, knots_x: Sequence[float] | None = None, knots_y: Sequence[float] | None = None) -> None:
        self.knots_x: np.ndarray | None = None
        self.knots_y: np.ndarray | None = None
        if knots_x is not None or knots_y is not None:
            self._set_knots(knots_x, knots_y)

    def _set_knots(self, knots_x: Any, knots_y: Any) -> None:
        x, y = _paired(knots_x, knots_y, "knots")
        # Strictly increasing scores: np.interp is undefined for repeated x.
        if np.any(np.diff(x) <= 0) or np.any(np.diff(y) > 0):
            raise ValueError("knots must have strictly increasing scores and non-increasing WERs")
        self.knots_x, self.knots_y = x, y

    @property
    def fitted(self) -> bool:
        return self.knots_x is not None

    def fit(self, scores: Sequence[float] | np.ndarray, wers: Sequence[float] | np.ndarray) -> Calibration:
        """Fit on paired ``scores`` and observed ``wers``; returns ``self``."""
        # Imported here: scikit-learn takes over a second to import, and loading a model to score with
        # only needs predict().
        from sklearn.isotonic import IsotonicRegression

        x, y = _paired(scores, wers, "scores and wers")
        iso = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(x, y)
        # The thresholds are exactly the knots of iso.predict's piecewise-linear function, so
        # np.interp over them reproduces it without keeping the sklearn object.
        self._set_knots(iso.X_thresholds_, iso.y_thresholds_)
        return self

    def predict(self, scores: Sequence[float] | np.ndarray | float) -> np.ndarray:
        """Expected WER for each score (same shape as ``scores``)."""
        if not self.fitted:
            raise RuntimeError("Calibration is not fitted; call fit() or load one")
        x = np.asarray(scores, dtype=np.float64)
        if not np.isfinite(x).all():
            raise ValueError("scores must be finite")
        # np.interp clamps outside [knots_x[0], knots_x[-1]], which is the documented behaviour.
        return np.interp(x, self.knots_x, self.knots_y)

    def mean_absolute_error(self, scores: Sequence[float] | np.ndarray, wers: Sequence[float] | np.ndarray) -> float:
        """Mean |predicted - observed| WER, e.g. on held-out pairs."""
        y = np.asarray(wers, dtype=np.float64)
        predicted = self.predict(scores)
        if predicted.shape != y.shape:
            raise ValueError(f"scores and wers differ in shape: {predicted.shape} vs {y.shape}")
        return float(np.mean(np.abs(predicted - y)))

    def to_dict(self) -> dict[str, Any]:
        if not self.fitted:
            raise RuntimeError("Calibration is not fitted; nothing to serialize")
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "score_knots": [float(v) for v in self.knots_x],
            "wer_knots": [float(v) for v in self.knots_y],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(
                f"not a {_FORMAT} v{_VERSION} document (format={data.get('format')!r}, version={data.get('version')!r})"
            )
        return cls(data["score_knots"], data["wer_knots"])

    def save(self, path: str | Path) -> None:
        # allow_nan=False: a non-finite knot cannot exist (validated), and must never be written.
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __repr__(self) -> str:
        if not self.fitted:
            return "Calibration(unfitted)"
        return f"Calibration({self.knots_x.size} knots, scores {self.knots_x[0]:.4g}..{self.knots_x[-1]:.4g})"
