import warnings

import numpy as np
import pytest

from voiceclap.metrics import (
    by_group,
    character_error_rate,
    correct_ranks,
    correlation_report,
    error_rate,
    next_in_group,
    pooled_per_utterance,
    retrieval_metrics,
)

TEN = "one two three four five six seven eight nine ten"


def test_error_rate_known_values():
    assert error_rate(TEN, "one two four five seven eight nine", "en") == pytest.approx(0.3)
    assert error_rate("Hello, World!", "hello world", "en") == 0.0  # normalized first
    assert error_rate("a b", "a b c d e", "en") == pytest.approx(1.5)  # insertions can exceed 1


def test_character_error_rate_for_zh():
    assert error_rate("我们今天去公园。", "我们明天去公园", "zh") == pytest.approx(1 / 7)
    # the same strings as words: each whole phrase is one (wrong) word
    assert error_rate("我们今天去公园。", "我们明天去公园", "en") == 1.0


def test_character_error_rate_forgives_word_boundaries_not_sounds():
    # "на прикінці" for "наприкінці": two word errors of six, no character error.
    reference = "Ми поїдемо до моря наприкінці літа."
    assert error_rate(reference, "Ми поїдемо до моря на прикінці літа.", "uk") == pytest.approx(2 / 6)
    assert character_error_rate(reference, "Ми поїдемо до моря на прикінці літа", "uk") == 0.0
    assert character_error_rate("Hello, World!", "hello word", "en") == pytest.approx(1 / 10)
    assert character_error_rate("我们今天去公园。", "我们明天去公园", "zh") == error_rate("我们今天去公园。", "我们明天去公园", "zh")
    assert character_error_rate("", "", "en") == 0.0 and character_error_rate("", "x", "en") == 1.0


def test_error_rate_empty_reference():
    assert error_rate("", "", "en") == 0.0
    assert error_rate("...", "", "en") == 0.0
    assert error_rate("", "something", "en") == 1.0
    assert error_rate("a b", "", "en") == 1.0


def test_perfect_retrieval():
    sim = np.eye(4) + 0.1
    assert retrieval_metrics(sim, ks=(1, 2)) == {"R@1": 1.0, "R@2": 1.0, "median_rank": 1.0, "mean_rank": 1.0, "N": 4}


def test_retrieval_known_ranks_and_direction():
    sim = np.array(
        [
            [0.9, 0.1, 0.0],  # rank 1
            [0.8, 0.5, 0.7],  # rank 3
            [0.0, 0.9, 0.8],  # rank 2
        ]
    )
    assert correct_ranks(sim).tolist() == [1, 3, 2]
    m = retrieval_metrics(sim, ks=(1, 2))
    assert m["R@1"] == pytest.approx(1 / 3) and m["R@2"] == pytest.approx(2 / 3)
    assert m["median_rank"] == 2 and m["mean_rank"] == 2
    assert correct_ranks(sim.T).tolist() == [1, 2, 1]  # text->audio: columns become queries


def test_ties_rank_pessimistically():
    # Every target scores the same: the correct one is ranked last, never first.
    assert correct_ranks(np.zeros((4, 4))).tolist() == [4, 4, 4, 4]
    assert retrieval_metrics(np.zeros((4, 4)), ks=(1,))["R@1"] == 0.0
    # Correct item tied with one other target and beaten by none: rank 2.
    assert correct_ranks(np.array([[0.5, 0.5, 0.1], [0.0, 1.0, 0.2], [0.0, 0.0, 0.3]])).tolist() == [2, 1, 1]


def test_retrieval_with_distractor_targets():
    sim = np.array([[0.9, 0.1, 0.95], [0.2, 0.8, 0.1]])  # query 0 loses to distractor column 2
    assert correct_ranks(sim).tolist() == [2, 1]


@pytest.mark.parametrize("sim", [np.zeros((3, 2)), np.zeros(3), np.array([[np.nan, 0.0], [0.0, 1.0]])])
def test_retrieval_rejects_bad_input(sim):
    with pytest.raises(ValueError):
        correct_ranks(sim)


def _noisy(n_clips=40, per_clip=4, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_clips), per_clip)
    wers = rng.uniform(0, 1, groups.size)
    scores = -wers + rng.normal(0, 0.3, groups.size) + rng.normal(0, 0.3, n_clips)[groups]
    return scores, wers, groups


def test_perfect_scorer_has_rho_minus_one():
    _, wers, groups = _noisy()
    wers[::4] = 0.0  # true transcripts: ties in WER
    report = correlation_report(-wers, wers, groups, n_boot=200)
    for name in ("spearman", "kendall", "pearson"):
        assert report[name]["value"] == pytest.approx(-1.0)
        assert report[name]["ci95"] == pytest.approx([-1.0, -1.0])
    assert report["n"] == 160 and report["n_groups"] == 40


def test_bootstrap_ci_contains_point_estimate_and_is_seeded():
    scores, wers, groups = _noisy()
    report = correlation_report(scores, wers, groups, n_boot=300, seed=1)
    for name in ("spearman", "kendall", "pearson"):
        lo, hi = report[name]["ci95"]
        assert lo < report[name]["value"] < hi < 0
        assert report[name]["n_boot_valid"] == 300
    assert correlation_report(scores, wers, groups, n_boot=300, seed=1) == report


@pytest.mark.parametrize("constant", ["scores", "wers"])
def test_constant_input_is_undefined_not_nan(constant):
    scores, wers, groups = _noisy()
    if constant == "scores":
        scores = np.full_like(scores, 0.7)
    else:
        wers = np.zeros_like(wers)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = correlation_report(scores, wers, groups, n_boot=50)
    for name in ("spearman", "kendall", "pearson"):
        assert report[name] == {"value": None, "ci95": None, "undefined": "constant input"}


def test_bootstrap_keeps_the_rows_of_a_clip_together():
    # Each clip holds one good and one bad candidate. Resampling clips always draws both, so no
    # replicate is constant; resampling the 6 rows would give a constant replicate ~1 time in 32.
    groups = ["a", "a", "b", "b", "c", "c"]
    report = correlation_report([1.0, 0.0] * 3, [0.0, 1.0] * 3, groups, n_boot=1000)
    assert report["spearman"]["n_boot_valid"] == 1000
    rows = correlation_report([1.0, 0.0] * 3, [0.0, 1.0] * 3, range(6), n_boot=1000)
    assert rows["spearman"]["n_boot_valid"] < 1000


def test_bootstrap_resamples_clips_not_rows():
    # Repeating every row 5 times inside its own clip adds no independent evidence: clip-level
    # resampling gives exactly the same CIs, while treating the copies as independent rows narrows them.
    scores, wers, _ = _noisy(n_clips=30, per_clip=1)
    clips = np.arange(30)
    once = correlation_report(scores, wers, clips, n_boot=200)
    repeated = correlation_report(np.repeat(scores, 5), np.repeat(wers, 5), np.repeat(clips, 5), n_boot=200)
    as_rows = correlation_report(np.repeat(scores, 5), np.repeat(wers, 5), np.arange(150), n_boot=200)
    for name in ("spearman", "kendall", "pearson"):
        assert repeated[name]["value"] == pytest.approx(once[name]["value"])
        assert repeated[name]["ci95"] == pytest.approx(once[name]["ci95"])
        width = np.diff(once[name]["ci95"])[0]
        assert np.diff(as_rows[name]["ci95"])[0] < 0.7 * width


def test_pooled_per_utterance_matches_report_and_rejects_duplicates():
    scores, wers, groups = _noisy(n_clips=10)
    rows = [(f"clip{g}", f"candidate {i}", s, w) for i, (g, s, w) in enumerate(zip(groups, scores, wers))]
    assert pooled_per_utterance(rows, n_boot=100) == correlation_report(
        scores, wers, [r[0] for r in rows], n_boot=100
    )
    with pytest.raises(ValueError, match="duplicate"):
        pooled_per_utterance(rows + rows[:1], n_boot=10)


def test_by_group_per_language():
    scores, wers, groups = _noisy(n_clips=20)
    langs = np.where(groups < 12, "en", "de")
    out = by_group(langs, correlation_report, scores, wers, groups, n_boot=50)
    assert list(out) == ["de", "en"]
    assert out["en"]["n"] == 48 and out["de"]["n_groups"] == 8
    en = langs == "en"
    assert out["en"] == correlation_report(scores[en], wers[en], groups[en], n_boot=50)
    with pytest.raises(ValueError):
        by_group(langs[:-1], correlation_report, scores, wers, groups)


def test_next_in_group_pairs_within_groups_and_leaves_singletons_out():
    partner = next_in_group(["de", "en", "de", "fr", "en", "de"])
    assert partner.tolist() == [2, 4, 5, -1, 1, 0]
    assert next_in_group([]).tolist() == []
