"""`voiceclap eval`: reading evaluation sets, the ASR-WER scorer with a fake transcriber, the report
directory for a tiny random model with several scorers, and (when the offline weights are installed)
a real faster-whisper run on espeak-ng clips. The measures themselves: tests/test_protocol.py."""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import math
import shutil
import subprocess
import tarfile

import numpy as np
import pytest
import soundfile as sf
from test_protocol import SENTENCES, SYSTEMS, gold_clips, heldout_clips, pair_clips, tone

from voiceclap.audio import SAMPLE_RATE, load_audio
from voiceclap.clips import Clip, write_shard
from voiceclap.evaluation import add_eval_arguments, eval_from_args
from voiceclap.evaluation.asr_baseline import TranscriptCache
from voiceclap.evaluation.cli import build_parser
from voiceclap.evaluation.scorers import AsrScorer
from voiceclap.evaluation.sets import load_eval_set
from voiceclap.metrics import error_rate
from voiceclap.model import VoiceCLAP
from voiceclap.protocol import gold


class FakeTranscriber:
    """Says exactly what each clip's audio says, except for clips it mishears."""

    identity = "fake-asr|v1"
    load_seconds = 0.0

    def __init__(self, clips: list[Clip], mishear: set[str] = frozenset(), languages=("en", "de")):
        self.clips = clips
        self.mishear = mishear
        self.languages = languages
        self.calls = 0

    def supports(self, language):
        return language in self.languages

    def transcribe(self, audio, language):
        self.calls += 1
        # The clip whose audio this is, also after a round trip through 16-bit FLAC.
        clip = next(c for c in self.clips if len(c.audio) == len(audio) and np.allclose(c.audio, audio, atol=1e-3))
        return "completely different words" if clip.id in self.mishear else clip.text


def no_nan(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


# ----- the ASR-WER scorer -----


def test_asr_scorer_with_fake_transcriber(tmp_path):
    clips = gold_clips()
    transcriber = FakeTranscriber(clips, mishear={"g1"})
    scorer = AsrScorer(transcriber, TranscriptCache(tmp_path / "cache.jsonl"), progress=False)
    scores = scorer.score_pairs(clips, [c.intended_text for c in clips])
    assert transcriber.calls == 8 and scorer.n_cached == 0
    assert scores[0] == pytest.approx(-error_rate(clips[0].intended_text, clips[0].text, "en"))  # hears what was said
    assert scores[1] == -error_rate(clips[1].intended_text, "completely different words", "en")
    scorer.score_matrix(clips, ["a", "b"])
    assert transcriber.calls == 8  # each clip is transcribed once

    again = FakeTranscriber(clips, mishear={"g1"})
    cached = AsrScorer(again, TranscriptCache(tmp_path / "cache.jsonl"), progress=False)
    np.testing.assert_array_equal(cached.score_pairs(clips, [c.intended_text for c in clips]), scores)
    assert again.calls == 0 and cached.n_cached == 8
    assert cached.seconds == pytest.approx(scorer.seconds, abs=0.05)  # the time it took when transcribed

    other = FakeTranscriber(clips)
    other.identity = "fake-asr|v2"  # another transcriber misses the cache
    AsrScorer(other, TranscriptCache(tmp_path / "cache.jsonl"), progress=False).score_pairs(clips[:2], ["a", "b"])
    assert other.calls == 2

    summary, _ = gold(clips, AsrScorer(FakeTranscriber(clips), progress=False), n_boot=20)
    assert summary["correlation"]["spearman"]["value"] == pytest.approx(-1.0)  # perfect ASR

    korean = Clip("ko", "안녕하세요", "ko", tone(30))
    with pytest.raises(ValueError, match="no language 'ko'"):
        AsrScorer(FakeTranscriber([korean]), progress=False).score_pairs([korean], ["안녕"])


# ----- data -----


def _flac(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder, clips: list[Clip], per_shard: int = 5) -> None:
    for s in range(0, len(clips), per_shard):
        write_shard(folder / f"shard-{s // per_shard:06d}.tar", [(c, _flac(c.audio)) for c in clips[s : s + per_shard]])


def write_emilia_shard(path, clips: list[Clip]) -> None:
    """A shard as Emilia and the first corpus builder wrote them: leading space in the text, upper-case
    language, gold clips' spoken text under `spoken_text` and the intended text under `text`."""
    with tarfile.open(path, "w") as tar:
        for clip in clips:
            meta = {"id": clip.id, "text": " " + (clip.intended_text or clip.text), "language": clip.language.upper(),
                    "speaker": clip.speaker, "duration": clip.seconds}
            if clip.intended_text:
                meta.update(intended_text=clip.intended_text, spoken_text=clip.text, true_wer=clip.true_wer)
            _add(tar, f"{clip.id}.json", json.dumps(meta).encode())
            _add(tar, f"{clip.id}.flac", _flac(clip.audio))


def test_read_shards_and_manifest(tmp_path):
    (tmp_path / "heldout").mkdir()
    write_emilia_shard(tmp_path / "heldout" / "shard-000000.tar", heldout_clips())
    # A clip without audio and one whose audio is not audio are skipped, with the reason.
    with tarfile.open(tmp_path / "heldout" / "shard-000099.tar", "w") as tar:
        _add(tar, "noaudio.json", json.dumps({"id": "noaudio", "text": "a b", "language": "en"}).encode())
        _add(tar, "broken.json", json.dumps({"id": "broken", "text": "a b", "language": "en"}).encode())
        _add(tar, "broken.flac", b"not audio at all")
    loaded = load_eval_set(tmp_path / "heldout", progress=False)
    assert [c.id for c in loaded.clips] == [f"h{i}" for i in range(8)]
    assert {s["id"] for s in loaded.skipped} == {"noaudio", "broken"}
    assert loaded.clips[4].language == "de" and loaded.clips[0].text == SENTENCES[0][1]  # stripped, lower-cased
    np.testing.assert_allclose(loaded.clips[3].audio, tone(3), atol=1e-4)

    sample = load_eval_set(str(tmp_path / "heldout" / "shard-*.tar"), max_clips=3, seed=1, progress=False)
    again = load_eval_set(tmp_path / "heldout", max_clips=3, seed=1, progress=False)
    assert len(sample.clips) == 3 and [c.id for c in sample.clips] == [c.id for c in again.clips]
    assert sample.n_available == 9  # "broken" has usable metadata; its audio fails only when decoded
    assert len(load_eval_set(tmp_path / "heldout", max_clips=8, progress=False).clips) == 8  # a failed clip is replaced

    (tmp_path / "gold").mkdir()
    write_emilia_shard(tmp_path / "gold" / "shard-000000.tar", gold_clips())
    loaded = load_eval_set(tmp_path / "gold", "gold", progress=False)
    assert [c.true_wer for c in loaded.clips] == [c.true_wer for c in gold_clips()]
    assert [c.text for c in loaded.clips] == [c.text for c in gold_clips()]  # what the audio says
    assert loaded.clips[0].speaker == SYSTEMS[0]

    write_shards(tmp_path / "pairs", pair_clips())
    pairs = load_eval_set(tmp_path / "pairs", "pairs", progress=False)
    assert [c.candidates for c in pairs.clips] == [c.candidates for c in pair_clips()]
    assert load_eval_set(tmp_path / "heldout", "pairs", progress=False).clips == []

    # A gold manifest: `text` is what the audio says; the true WER is computed when absent.
    sf.write(tmp_path / "a.wav", tone(1), SAMPLE_RATE)
    rows = [
        {"audio": "a.wav", "text": "one two four", "intended_text": "one two three four", "language": "en",
         "id": "m1", "system": "s"},
        {"audio": "a.wav", "text": "one two", "intended_text": "one three", "language": "en", "id": "m2", "true_wer": 0.5},
        {"audio": "a.wav", "text": "no intention here", "language": "en", "id": "m3"},
    ]
    (tmp_path / "gold.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    manifest = load_eval_set(tmp_path / "gold.jsonl", "gold", progress=False)
    assert [(c.id, c.true_wer) for c in manifest.clips] == [("m1", 0.25), ("m2", 0.5)]
    assert manifest.clips[0].intended_text == "one two three four" and manifest.clips[0].speaker == "s"
    assert manifest.skipped[0]["id"] == "m3"


# ----- a tiny random model, end to end -----


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-model")
    VoiceCLAP.from_config("tiny-test", load_base_weights=False).save_pretrained(directory)
    return directory


def test_report_directory_for_tiny_model(tmp_path, tiny_model_dir, capsys, monkeypatch):
    write_shards(tmp_path / "heldout", heldout_clips())
    write_shards(tmp_path / "gold", gold_clips())
    write_shards(tmp_path / "pairs", pair_clips())
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    out = tmp_path / "report"
    # The ASR scorer with a transcriber that hears perfectly (faster-whisper is tested below).
    from voiceclap.evaluation import asr_baseline

    every_clip = heldout_clips() + gold_clips() + pair_clips()
    monkeypatch.setattr(asr_baseline, "FasterWhisperTranscriber", lambda *a, **k: FakeTranscriber(every_clip))
    args = add_eval_arguments(argparse.ArgumentParser()).parse_args([
        "--model", str(model_dir), "--scorers", "clap,asr", "--heldout", str(tmp_path / "heldout"),
        "--heldout", f"second={tmp_path / 'heldout'}", "--gold", str(tmp_path / "gold"),
        "--pairs", str(tmp_path / "pairs"), "--out", str(out), "--k-corruptions", "3", "--pool", "3",
        "--n-boot", "20", "--fit-calibration", "--no-progress", "--asr-cache", str(tmp_path / "asr.jsonl"),
    ])
    assert eval_from_args(args) == 0
    assert "report:" in capsys.readouterr().out

    report = no_nan((out / "report.json").read_text())
    assert list(report["sets"]) == ["heldout", "second", "gold", "pairs"]
    for name in ("report.md", "heldout_clap_retrieval_ranks.png", "heldout_asr_score_vs_wer.png",
                 "heldout_clap_calibration.png", "gold_gold.png", "heldout_clap_corruption_rows.jsonl",
                 "gold_asr_gold_rows.jsonl", "pairs_clap_pair_rows.jsonl", "calibration.json"):
        assert (out / name).stat().st_size > 0, name
    assert report["model"]["config"] == "tiny-test" and report["model"]["parameters"] > 0
    heldout = report["sets"]["heldout"]
    assert heldout["data"]["n_clips"] == 8 and report["sets"]["gold"]["data"]["n_clips"] == 8
    clap, asr = heldout["results"]["clap"], heldout["results"]["asr"]
    assert clap["retrieval"]["overall"]["audio_to_text"]["N"] == 8
    assert clap["corruption"]["n_rows"] == 8 * 4
    assert clap["calibration"]["test"]["mae"] is not None
    # The ASR scorer with a perfect transcriber: perfect retrieval; on corruptions nearly perfect (its WER
    # takes the candidate as the reference, the label takes the transcript).
    assert asr["retrieval"]["overall"]["audio_to_text"]["R@1"] == 1.0
    assert asr["corruption"]["pooled"]["spearman"]["value"] < -0.9
    assert report["sets"]["pairs"]["results"]["asr"]["pairs"]["accuracy"] == 1.0
    assert report["sets"]["gold"]["results"]["clap"]["gold"]["estimated_wer_mae"] is not None
    assert set(heldout["seconds_over_clap"]) == {"clap", "asr"}
    assert report["command"] and report["created"] and report["settings"]["k_corruptions"] == 3
    markdown = (out / "report.md").read_text()
    for heading in ("## heldout (heldout)", "### Retrieval among all", "### Synthetic corruption",
                    "### Calibration", "## gold (gold)", "## pairs (pairs)", "![gold_gold.png]"):
        assert heading in markdown
    # The calibration is stored with the model and loads with it.
    reloaded = VoiceCLAP.from_pretrained(model_dir)
    assert reloaded.calibration is not None
    assert reloaded.calibration.to_dict() == json.loads((out / "calibration.json").read_text())


def test_cli_refuses_missing_inputs(tmp_path, capsys):
    assert eval_from_args(build_parser().parse_args(["--out", str(tmp_path)])) == 2
    assert "--heldout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--out", str(tmp_path), "--heldout", "x", "--scorers", "clap,magic"])
    args = build_parser().parse_args(
        ["--out", str(tmp_path), "--heldout", str(tmp_path / "nothing"), "--model", str(tmp_path)]
    )
    assert eval_from_args(args) == 2  # not a model directory
    assert "config.json" in capsys.readouterr().err
    args = build_parser().parse_args(
        ["--out", str(tmp_path), "--heldout", str(tmp_path / "nothing"), "--model", "random:tiny-test"]
    )
    assert eval_from_args(args) == 2
    assert "no such file or folder" in capsys.readouterr().err


# ----- the real ASR baseline (needs the offline weights) -----


def _faster_whisper_dir() -> str | None:
    if importlib.util.find_spec("faster_whisper") is None:
        return None
    from voiceclap.weights import MissingBaseWeights, resolve_encoder_source

    try:
        return resolve_encoder_source("offline:whisper-base-ct2")
    except MissingBaseWeights:
        return None


def test_real_asr_baseline_on_espeak(tmp_path):
    from voiceclap.weights import INSTALL_COMMAND

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng missing: apt-get install espeak-ng")
    if _faster_whisper_dir() is None:
        pytest.skip(f"faster-whisper or its offline weights missing: {INSTALL_COMMAND}")
    from voiceclap.evaluation.asr_baseline import FasterWhisperTranscriber

    said = [("en", "the weather is nice today"), ("en", "please open the window"), ("es", "buenos días a todos")]
    clips = []
    for i, (lang, text) in enumerate(said):
        wav = tmp_path / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", lang, "-w", str(wav), text], check=True)
        clips.append(Clip(f"e{i}", text, lang, load_audio(wav)))
    # The intended text differs from what was said for the last clip: ASR-WER must see it.
    intended = [text for _, text in said[:2]] + ["buenos días a todos mis amigos"]
    scorer = AsrScorer(FasterWhisperTranscriber(cpu_threads=2), TranscriptCache(tmp_path / "c.jsonl"), progress=False)
    wers = -scorer.score_pairs(clips, intended)
    assert scorer.seconds > 0 and all(math.isfinite(w) for w in wers)
    assert np.mean(wers[:2]) <= 0.4, wers
    assert wers[2] >= 0.3, wers
