"""Batch scoring: every row reported, batching-independent scores, text tower once per text,
ordered and resumable output, summary, torchrun sharding."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import random_model, write_manifest

from voiceclap import cli
from voiceclap.calibration import Calibration
from voiceclap.clips import Clip
from voiceclap.manifest import read_manifest
from voiceclap.scoring import (
    ClapBackend,
    ScoringEngine,
    Summary,
    read_records,
    score_manifest,
    score_pair,
)


@pytest.fixture
def manifest_dir(tmp_path, speech_like_clips):
    """A manifest over the shared clips: two systems, two languages, repeated texts."""
    for name, path in speech_like_clips.items():
        shutil.copy(path, tmp_path / f"{name}.wav")
    rows = []
    for i, name in enumerate(sorted(speech_like_clips) * 3):
        rows.append({"audio": f"{name}.wav", "text": f"sentence number {i % 4}", "id": f"r{i}",
                     "language": "en" if i % 2 else "de", "system": f"sys{i % 3}"})
    write_manifest(tmp_path / "m.tsv", rows)
    return tmp_path


def _scores(records):
    return {r["id"]: r["score"] for r in records}


def test_cli_manifest_reports_missing_empty_and_empty_text_and_scores_the_rest(tmp_path, speech_like_clips, tiny_model_dir, capsys):
    shutil.copy(speech_like_clips["c1"], tmp_path / "good.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    rows = [
        {"audio": "good.wav", "text": "a fine transcript", "id": "ok1"},
        {"audio": "missing.wav", "text": "no file", "id": "missing"},
        {"audio": "empty.wav", "text": "zero bytes", "id": "empty"},
        {"audio": "good.wav", "text": "", "id": "notext"},
        {"audio": "good.wav", "text": "another transcript", "id": "ok2"},
    ]
    write_manifest(tmp_path / "m.tsv", rows)
    out = tmp_path / "out.jsonl"
    code = cli.main(["score", "--manifest", str(tmp_path / "m.tsv"), "-o", str(out), "--model", str(tiny_model_dir), "--threads", "1"])
    assert code == 1
    records = read_records(out)
    assert [r["id"] for r in records] == [r["id"] for r in rows]  # every row, input order
    errors = {r["id"]: r["error"] for r in records}
    assert errors["ok1"] is None and errors["ok2"] is None
    assert "file not found" in errors["missing"]
    assert "empty file" in errors["empty"]
    assert errors["notext"] == "empty transcript"
    assert all(isinstance(r["score"], float) for r in records if r["error"] is None)
    assert all(r["score"] is None for r in records if r["error"])
    assert "scored 2 of 5 rows, 3 failed" in capsys.readouterr().err


def test_bucketed_batches_score_like_batch_size_one(manifest_dir, tiny_model):
    rows = read_manifest(manifest_dir / "m.tsv").clips
    one = [r for batch in ScoringEngine(ClapBackend(tiny_model), batch_size=1).score_rows(rows) for r in batch]
    # Small windows too, so sorting, window edges and the text cache are all exercised.
    big = [r for batch in ScoringEngine(ClapBackend(tiny_model), batch_size=5, window_batches=2).score_rows(rows) for r in batch]
    assert sorted(r["id"] for r in big) == sorted(r.id for r in rows)
    a, b = _scores(one), _scores(big)
    np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(a)], atol=1e-5)


def test_batches_respect_the_clip_and_padded_audio_budgets(tiny_model):
    seconds = [0.5, 0.5, 1.0, 1.0, 1.0, 2.0, 9.0]
    clips = [Clip("c", "t", audio=np.zeros(int(s * 16000), np.float32)) for s in seconds]
    scorer = ScoringEngine(ClapBackend(tiny_model), batch_size=3, batch_seconds=3.0)
    batches = [[len(c.audio) / 16000 for c in b] for b in scorer.batches(clips)]
    # <= 3 clips each, count x longest <= 3 s, and a clip over the budget still gets a batch.
    assert batches == [[0.5, 0.5, 1.0], [1.0, 1.0], [2.0], [9.0]]


def test_seed_pooling_scores_one_clip_per_batch_on_a_cpu():
    clips = [Clip("c", "t", audio=np.zeros(16000, np.float32)) for _ in range(3)]
    seed = random_model()
    seed.config = dataclasses.replace(seed.config, audio_pooling="seed")
    # Room for two padded 30 s clips, yet one per batch.
    assert [len(b) for b in ScoringEngine(ClapBackend(seed), batch_size=16, batch_seconds=60.0).batches(clips)] == [1, 1, 1]
    assert [len(b) for b in ScoringEngine(ClapBackend(random_model()), batch_size=16, batch_seconds=60.0).batches(clips)] == [3]


def test_the_padded_audio_budget_defaults_by_device():
    import torch

    from voiceclap.scoring import DEFAULT_BATCH_SECONDS, GPU_BATCH_SECONDS, default_batch_seconds

    assert default_batch_seconds(torch.device("cpu")) == DEFAULT_BATCH_SECONDS
    # A GPU gets room for 32 seed-pooled clips of 30 s per call, not the CPU's 2.
    assert default_batch_seconds(torch.device("cuda")) == GPU_BATCH_SECONDS == 32 * 30
    assert ScoringEngine(ClapBackend(random_model())).batch_samples == DEFAULT_BATCH_SECONDS * 16000
    assert ScoringEngine(ClapBackend(random_model()), batch_seconds=5.0).batch_samples == 5.0 * 16000


def test_text_tower_runs_once_per_unique_text(manifest_dir, tiny_model, monkeypatch):
    seen = []
    original = tiny_model.tokenize
    monkeypatch.setattr(tiny_model, "tokenize", lambda texts: seen.extend(texts) or original(texts))
    rows = read_manifest(manifest_dir / "m.tsv").clips
    list(ScoringEngine(ClapBackend(tiny_model), batch_size=4, window_batches=1).score_rows(rows))
    assert sorted(seen) == sorted({r.text for r in rows})


def test_a_small_text_cache_never_evicts_what_the_window_needs(manifest_dir, tiny_model):
    rows = read_manifest(manifest_dir / "m.tsv").clips[:4]
    # Windows of two rows: (a, b) then (a, c); "a" is the oldest entry when "c" comes in.
    for row, text in zip(rows, ["text a", "text b", "text a", "text c"]):
        row.text = text
    reference = _scores(r for batch in ScoringEngine(ClapBackend(tiny_model)).score_rows(rows) for r in batch)
    tight = ScoringEngine(ClapBackend(tiny_model, text_cache_size=1), batch_size=1, window_batches=2)
    records = [r for batch in tight.score_rows(rows) for r in batch]
    assert all(r["error"] is None for r in records)
    assert _scores(records) == pytest.approx(reference, abs=1e-5)


def test_output_is_in_input_order_and_csv_matches_jsonl(manifest_dir, tiny_model):
    manifest = read_manifest(manifest_dir / "m.tsv")
    summary_jsonl = score_manifest(ClapBackend(tiny_model), manifest, manifest_dir / "o.jsonl", batch_size=4, progress=False)
    summary_csv = score_manifest(ClapBackend(tiny_model), manifest, manifest_dir / "o.csv", batch_size=4, progress=False)
    jsonl, csv = read_records(manifest_dir / "o.jsonl"), read_records(manifest_dir / "o.csv")
    assert [r["row"] for r in jsonl] == list(range(len(manifest.clips)))
    assert jsonl == csv
    assert summary_jsonl.to_dict()["groups"] == summary_csv.to_dict()["groups"]
    assert summary_jsonl.exit_code == 0 and summary_jsonl.scored == len(manifest.clips)


def test_summary_groups_by_language_and_system():
    records = [
        {"row": 0, "id": "a", "language": "en", "system": "x", "score": 0.2, "error": None},
        {"row": 1, "id": "b", "language": "en", "system": "y", "score": 0.4, "error": None},
        {"row": 2, "id": "c", "language": "de", "system": "x", "score": 0.9, "error": None},
        {"row": 3, "id": "d", "language": None, "system": "x", "score": None, "error": "empty transcript"},
    ]
    summary = Summary.of(records)
    assert (summary.total, summary.scored, summary.failed, summary.exit_code) == (4, 3, 1, 1)
    assert summary.groups["language"]["en"] == {"count": 2, "mean": pytest.approx(0.3), "median": pytest.approx(0.3), "failed": 0}
    assert summary.groups["system"]["x"] == {"count": 2, "mean": pytest.approx(0.55), "median": pytest.approx(0.55), "failed": 1}
    assert summary.groups["language"]["-"]["failed"] == 1
    assert "3 of 4 rows, 1 failed" in summary.format()


def test_estimated_wer_with_a_calibrated_model(speech_like_clips, tiny_model, monkeypatch):
    plain = score_pair(ClapBackend(tiny_model), speech_like_clips["c2"], "hello there")
    assert "estimated_wer" not in plain
    monkeypatch.setattr(tiny_model, "calibration", Calibration().fit([-1.0, 0.0, 1.0], [1.0, 0.5, 0.0]))
    record = score_pair(ClapBackend(tiny_model), speech_like_clips["c2"], "hello there")
    assert record["estimated_wer"] == pytest.approx(0.5 - 0.5 * record["score"], abs=1e-5)


def test_resume_skips_done_rows_and_rejects_another_manifests_output(manifest_dir, tiny_model, tmp_path):
    from voiceclap.scoring import ScoringError

    manifest = read_manifest(manifest_dir / "m.tsv")
    full = manifest_dir / "full.jsonl"
    score_manifest(ClapBackend(tiny_model), manifest, full, progress=False)
    partial = manifest_dir / "partial.jsonl"
    lines = full.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[::2]) + lines[1][:25])  # every other row, then a torn line
    score_manifest(ClapBackend(tiny_model), manifest, partial, resume=True, progress=False)
    resumed, complete = read_records(partial), read_records(full)
    assert [r["id"] for r in resumed] == [r["id"] for r in complete]
    # Rescored rows landed in other batches: the same scores up to float32 summation order.
    np.testing.assert_allclose([r["score"] for r in resumed], [r["score"] for r in complete], atol=1e-5)

    other = write_manifest(tmp_path / "other.tsv", [{"audio": "x.wav", "text": "t", "id": "zzz"}])
    with pytest.raises(ScoringError, match="does not match"):
        score_manifest(ClapBackend(tiny_model), read_manifest(other), full, resume=True, progress=False)


def test_torchrun_two_ranks_equal_single_process(manifest_dir, tiny_model_dir):
    (manifest_dir / "m.tsv").write_text((manifest_dir / "m.tsv").read_text() + "nope.wav\tgone\tbad\ten\tsys0\n")
    args = ["score", "--manifest", str(manifest_dir / "m.tsv"), "--model", str(tiny_model_dir), "--batch-size", "3", "--threads", "1"]
    assert cli.main([*args, "-o", str(manifest_dir / "single.jsonl")]) == 1
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "voiceclap", *args, "-o", str(manifest_dir / "sharded.jsonl")],
        check=False, capture_output=True, text=True, env=env, timeout=180, cwd=manifest_dir,
    )
    assert result.returncode == 1, result.stderr[-3000:]  # torchrun reports our "some rows failed" as 1
    assert "scored 18 of 19 rows, 1 failed" in result.stderr
    single, sharded = read_records(manifest_dir / "single.jsonl"), read_records(manifest_dir / "sharded.jsonl")
    assert [r["id"] for r in sharded] == [r["id"] for r in single]
    for a, b in zip(single, sharded):
        assert a.keys() == b.keys() and a["error"] == b["error"]
        assert (a["score"] is None and b["score"] is None) or abs(a["score"] - b["score"]) <= 1e-5
    assert not list(manifest_dir.glob("sharded.jsonl.part-*"))  # parts merged and removed
