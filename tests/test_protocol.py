"""The evaluation protocol (voiceclap.protocol) on scorers with known answers: every measure the
trainer logs and `voiceclap eval` reports."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voiceclap import protocol
from voiceclap.audio import SAMPLE_RATE
from voiceclap.clips import Candidate, Clip
from voiceclap.metrics import error_rate

SENTENCES = [
    ("en", "the quick brown fox jumps over the lazy dog"),
    ("en", "she sells sea shells by the sea shore today"),
    ("en", "a journey of a thousand miles begins with one step"),
    ("en", "all that glitters is not gold my friend"),
    ("de", "der schnelle braune fuchs springt über den faulen hund"),
    ("de", "wir gehen morgen früh mit dem hund spazieren"),
    ("de", "das wetter ist heute wirklich sehr schön gewesen"),
    ("de", "ich habe keine zeit für solche dummen spiele"),
]
SYSTEMS = ["espeak:en", "pico:en-US", "mbrola:de4"]


def tone(i: int, seconds: float = 0.6) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * (180 + 70 * i) * t)).astype(np.float32)


def heldout_clips() -> list[Clip]:
    return [Clip(f"h{i}", text, lang, tone(i)) for i, (lang, text) in enumerate(SENTENCES)]


def gold_clips() -> list[Clip]:
    """Intended = a sentence; spoken = that sentence with the first n words dropped (true WER known)."""
    clips = []
    for i, (lang, text) in enumerate(SENTENCES):
        spoken = " ".join(text.split()[i % 4 :])
        clips.append(Clip(f"g{i}", spoken, lang, tone(i), speaker=SYSTEMS[i % 3], intended_text=text,
                          true_wer=error_rate(text, spoken, lang)))
    return clips


def pair_clips() -> list[Clip]:
    """Each clip says a sentence; its variant changes one word."""
    return [
        Clip(f"p{i}", text, lang, tone(i), candidates=[Candidate(text.replace(text.split()[1], "zebra"), 0.1, "variant")])
        for i, (lang, text) in enumerate(SENTENCES)
    ]


class OracleScorer:
    """A perfect scorer: score = -WER, the WER each measure uses (true WER against the intended text
    on gold clips, the candidate's WER against what the clip says otherwise)."""

    name = "oracle"

    def score(self, clip: Clip, text: str) -> float:
        if clip.intended_text is not None and text == clip.intended_text:
            return -clip.true_wer
        return -error_rate(clip.text, text, clip.language)

    def score_matrix(self, clips, texts):
        return np.array([[self.score(c, t) for t in texts] for c in clips])

    def score_pairs(self, clips, texts):
        return np.array([self.score(c, t) for c, t in zip(clips, texts)])


class ConstantScorer(OracleScorer):
    def score(self, clip, text):
        return 0.5


class TextPriorScorer(OracleScorer):
    """Does not listen: scores a text by its WER against the nearest true transcript of its language,
    which ranks corruptions as well as the oracle does on a clip's own audio."""

    def __init__(self, clips: list[Clip]):
        self.transcripts = [(c.language, c.text) for c in clips]

    def score(self, clip: Clip, text: str) -> float:
        return -min(error_rate(t, text, clip.language) for lang, t in self.transcripts if lang == clip.language)


def test_perfect_scorer_on_every_measure():
    clips = heldout_clips()
    summary, ranks = protocol.retrieval(clips, OracleScorer())
    overall = summary["overall"]
    assert overall["audio_to_text"]["R@1"] == 1.0 and overall["text_to_audio"]["R@1"] == 1.0
    assert overall["audio_to_text"]["N"] == 8
    assert summary["by_language"]["de"]["audio_to_text"]["N"] == 4
    assert all(r["audio_to_text_rank"] == 1 for r in ranks)

    summary, _ = protocol.pooled_retrieval(clips, OracleScorer(), pool=3, seed=0)
    assert summary["overall"]["R@1"] == 1.0 and summary["overall"]["mean_candidates"] == 3.0
    assert "by_source" not in summary  # one source: nothing to break down
    mixed = [dataclasses.replace(c, source="uqm" if i % 2 else "tuxpaint") for i, c in enumerate(clips)]
    summary, rows = protocol.pooled_retrieval(mixed, OracleScorer(), pool=3, seed=0)
    assert {name: entry["N"] for name, entry in summary["by_source"].items()} == {"tuxpaint": 4, "uqm": 4}
    assert {r["source"] for r in rows} == {"uqm", "tuxpaint"}

    summary, rows = protocol.corruption(clips, OracleScorer(), k=4, seed=1, n_boot=50)
    for name in ("spearman", "kendall", "pearson"):
        assert summary["pooled"][name]["value"] == pytest.approx(-1.0)
        assert summary["pooled"][name]["ci95"] == pytest.approx([-1.0, -1.0])
    assert summary["by_language"]["en"]["spearman"]["value"] == pytest.approx(-1.0)
    assert summary["true_ranked_first"] == 1.0
    assert summary["n_clips"] == 8 and summary["n_rows"] == len(rows)
    means = [b["mean_score"] for b in summary["mean_score_by_wer"]]
    assert means == sorted(means, reverse=True)  # monotone table for a monotone scorer

    summary, _ = protocol.gold(gold_clips(), OracleScorer(), n_boot=50)
    assert summary["correlation"]["spearman"]["value"] == pytest.approx(-1.0)

    summary, rows = protocol.pairs(pair_clips(), OracleScorer())
    assert summary["accuracy"] == 1.0 and summary["n_pairs"] == 8
    assert summary["by_language"]["de"] == {"n": 4, "accuracy": 1.0}


def test_text_prior_control_tells_listening_from_reading():
    clips = heldout_clips()
    listening, _ = protocol.corruption(clips, OracleScorer(), k=4, seed=1, n_boot=20)
    reading, _ = protocol.corruption(clips, TextPriorScorer(clips), k=4, seed=1, n_boot=20)
    # Both are (nearly: a corruption can land nearer another transcript) perfect on the card's protocol...
    assert listening["pooled"]["spearman"]["value"] == pytest.approx(-1.0)
    assert reading["pooled"]["spearman"]["value"] == pytest.approx(-1.0, abs=0.01)
    # ...but only the one that reads keeps its rho when each clip's audio is swapped for another's.
    assert reading["other_audio_control"]["spearman"]["value"] == pytest.approx(-1.0, abs=0.01)
    assert listening["other_audio_control"]["n_groups"] == 8
    assert abs(listening["other_audio_control"]["spearman"]["value"]) < 0.5


def test_constant_scorer_is_undefined_not_nan_and_ties_lose():
    clips = heldout_clips()
    summary, _ = protocol.corruption(clips, ConstantScorer(), k=3, seed=0, n_boot=20)
    assert summary["pooled"]["spearman"] == {"value": None, "ci95": None, "undefined": "constant input"}
    assert summary["true_ranked_first"] == 0.0  # a tie is not a win
    summary, _ = protocol.retrieval(clips, ConstantScorer())
    # Ties rank pessimistically: every correct item ties with all N and ranks last.
    assert summary["overall"]["audio_to_text"]["R@1"] == 0.0
    assert summary["overall"]["audio_to_text"]["median_rank"] == 8
    summary, _ = protocol.pooled_retrieval(clips, ConstantScorer(), pool=4)
    assert summary["overall"]["R@1"] == 0.0 and summary["overall"]["median_rank"] == 4
    summary, _ = protocol.pairs(pair_clips(), ConstantScorer())
    assert summary["accuracy"] == 0.0
    summary, _ = protocol.gold(gold_clips(), ConstantScorer(), n_boot=10)
    assert summary["correlation"]["spearman"]["value"] is None


def test_repeated_transcripts_leave_retrieval():
    clips = heldout_clips()
    # The same sentence said by a second voice: left out of retrieval rather than counted as a miss.
    clips.append(Clip("h-repeat", "The quick brown fox jumps over the lazy dog!", "en", tone(20)))
    summary, _ = protocol.retrieval(clips, OracleScorer())
    assert summary["n_excluded_duplicate_text"] == 1 and summary["n_clips"] == 8
    assert summary["overall"]["audio_to_text"]["R@1"] == 1.0


def test_corruptions_are_seeded_per_clip_and_apart_from_order():
    clips = heldout_clips()
    rows_a, _ = protocol.card_candidates(clips, k=3, seed=7)
    rows_b, _ = protocol.card_candidates(list(reversed(clips)), k=3, seed=7)
    rows_c, _ = protocol.card_candidates(clips, k=3, seed=8)

    def texts(rows):
        return sorted((r.clip.id, r.text) for r in rows)

    assert texts(rows_a) == texts(rows_b)  # order of the clips does not matter
    assert texts(rows_a) != texts(rows_c)  # the seed does
    for row in rows_a:
        assert row.wer == pytest.approx(error_rate(row.clip.text, row.text, row.clip.language))
    corrupted = [r.wer for r in rows_a if r.kind != "true"]
    assert min(corrupted) > 0 and max(corrupted) > 0.5  # a spread of WER levels


def test_per_system_and_system_level():
    summary, rows = protocol.gold(gold_clips(), OracleScorer(), n_boot=20)
    per_system = summary["per_system"]
    assert per_system["n_systems"] == 3 and set(per_system["systems"]) == set(SYSTEMS)
    for name, entry in per_system["systems"].items():
        members = [r for r in rows if r.clip.speaker == name]
        assert entry["n"] == len(members)
        assert entry["mean_true_wer"] == pytest.approx(np.mean([r.wer for r in members]))
    assert per_system["system_level"]["spearman"]["value"] == pytest.approx(-1.0)


def test_embedding_scorer_embeds_each_input_once():
    calls = {"audio": 0, "text": 0}
    vectors = {"a": [1.0, 0.0], "b": [0.0, 1.0]}

    def embed_audio(clips):
        calls["audio"] += len(clips)
        return np.array([vectors[c.id] for c in clips])

    def embed_text(texts):
        calls["text"] += len(texts)
        return np.array([vectors[t] for t in texts])

    scorer = protocol.EmbeddingScorer(embed_audio, embed_text)
    a, b = Clip("a", "a"), Clip("b", "b")
    np.testing.assert_array_equal(scorer.score_matrix([a, b], ["a", "b"]), np.eye(2))
    np.testing.assert_array_equal(scorer.score_pairs([a, b, a], ["b", "b", "a"]), [0.0, 1.0, 1.0])
    assert calls == {"audio": 2, "text": 2}
