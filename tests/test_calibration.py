import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from voiceclap.calibration import Calibration


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0.2, 0.9, n)
    wers = np.clip(1.2 - 1.4 * scores + rng.normal(0, 0.15, n), 0, None)
    return scores, wers


def test_fit_is_monotone_decreasing_and_matches_sklearn():
    scores, wers = _data()
    cal = Calibration().fit(scores, wers)
    grid = np.linspace(0.0, 1.1, 500)
    pred = cal.predict(grid)
    assert np.all(np.diff(pred) <= 0)
    reference = IsotonicRegression(increasing=False, out_of_bounds="clip").fit(scores, wers)
    np.testing.assert_allclose(pred, reference.predict(grid))


def test_clamped_outside_the_fitted_range():
    cal = Calibration().fit([0.2, 0.4, 0.6, 0.8], [0.9, 0.5, 0.2, 0.0])
    assert cal.predict([-5.0, 5.0]).tolist() == [0.9, 0.0]
    assert cal.predict(0.5) == pytest.approx(0.35)  # linear between knots


def test_json_round_trip(tmp_path):
    scores, wers = _data()
    cal = Calibration().fit(scores, wers)
    path = tmp_path / "calibration.json"
    cal.save(path)
    data = json.loads(path.read_text())  # plain JSON, no pickle
    assert data["format"] == "voiceclap-calibration" and len(data["score_knots"]) == len(data["wer_knots"])
    grid = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(Calibration.load(path).predict(grid), cal.predict(grid))
    np.testing.assert_array_equal(Calibration.from_dict(cal.to_dict()).predict(grid), cal.predict(grid))


def test_mean_absolute_error():
    cal = Calibration().fit([0.1, 0.5, 0.9], [0.8, 0.4, 0.0])
    assert cal.mean_absolute_error([0.1, 0.5, 0.9], [0.8, 0.4, 0.0]) == pytest.approx(0.0)
    assert cal.mean_absolute_error([0.1, 0.9], [0.6, 0.3]) == pytest.approx(0.25)


def test_unfitted_and_invalid():
    with pytest.raises(RuntimeError):
        Calibration().predict([0.5])
    with pytest.raises(ValueError):
        Calibration.from_dict({"format": "something-else", "version": 1, "score_knots": [0], "wer_knots": [0]})
    with pytest.raises(ValueError):  # increasing WER knots are not a valid calibration
        Calibration([0.1, 0.2], [0.1, 0.5])
    with pytest.raises(ValueError):
        Calibration().fit([0.1, np.nan], [0.2, 0.3])
