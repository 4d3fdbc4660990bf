"""Issue 8: bad input gets a defined outcome, a killed run resumes losing and duplicating nothing,
exit codes keep their contract, checkpoints run no code."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SR, tone, write_audio, write_manifest

from voiceclap import cli
from voiceclap.manifest import read_manifest
from voiceclap.scoring import ClapBackend, read_records, score_manifest


def _speechy(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(int(seconds * 1000) + sr + channels)
    wave = tone(220, seconds, sr) + 0.05 * rng.standard_normal(round(seconds * sr)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def _cut(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    target = path.with_name("cut-" + path.name)
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _flip_bytes(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.integers(len(data) // 4, len(data), 50):
        data[i] ^= 0xFF
    target = path.with_name("corrupt-" + path.name)
    target.write_bytes(bytes(data))
    return target


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    """One manifest row per bad input of issue 8 (plus a good control row)."""
    d = tmp_path_factory.mktemp("bad")
    nan, inf = _speechy(1.0), _speechy(1.0)
    nan[100], inf[200] = np.nan, np.inf
    files = {
        "good": write_audio(d / "good.wav", _speechy(1.5)),
        "missing": d / "missing.wav",
        "zero_bytes": d / "zero.wav",
        "directory": d / "a-directory",
        "not_audio": d / "notes.wav",
        "truncated_mp3": _cut(write_audio(d / "clip.mp3", _speechy(2.0)), 0.5),
        "corrupt_mp3": _flip_bytes(d / "clip.mp3"),
        "truncated_flac": _cut(write_audio(d / "clip.flac", _speechy(2.0)), 0.5),
        "corrupt_flac": _flip_bytes(d / "clip.flac"),
        "silence": write_audio(d / "silence.wav", np.zeros(SR, np.float32)),
        "too_short": write_audio(d / "short.wav", _speechy(0.05)),
        "over_30s": write_audio(d / "long.flac", _speechy(31.0)),
        "nan_samples": write_audio(d / "nan.wav", nan, subtype="FLOAT"),
        "inf_samples": write_audio(d / "inf.wav", inf, subtype="FLOAT"),
        "one_channel": write_audio(d / "mono.wav", _speechy(1.2)),
        "six_channels": write_audio(d / "six.wav", _speechy(1.2, channels=6)),
        "8khz": write_audio(d / "8k.wav", _speechy(1.2, sr=8000), sr=8000),
        "96khz": write_audio(d / "96k.wav", _speechy(1.2, sr=96000), sr=96000),
    }
    files["zero_bytes"].write_bytes(b"")
    files["directory"].mkdir()
    files["not_audio"].write_text("just some text, definitely not a RIFF header\n" * 20)
    rows = [{"audio": p.name, "text": "a reasonable transcript", "id": key} for key, p in files.items()]
    rows += [
        {"audio": "good.wav", "text": "", "id": "empty_text"},
        {"audio": "good.wav", "text": "  \u00a0 \u2003 ", "id": "whitespace_text"},
        {"audio": "good.wav", "text": "very long transcript " * 40, "id": "long_text"},
        {"audio": "good.wav", "text": "first of a duplicated id", "id": "dup"},
        {"audio": "mono.wav", "text": "second of a duplicated id", "id": "dup"},
    ]
    manifest = write_manifest(d / "m.tsv", rows)
    # A row with invalid UTF-8 in its transcript, appended as raw bytes.
    with open(manifest, "ab") as f:
        f.write(b"good.wav\tbad \xff\xfe bytes\tbad_utf8\n")
    return manifest


@pytest.fixture(scope="module")
def bad_records(bad_inputs, tiny_model):
    out = bad_inputs.parent / "out.jsonl"
    summary = score_manifest(ClapBackend(tiny_model), read_manifest(bad_inputs), out, batch_size=4, progress=False)
    records = read_records(out)
    assert [r["row"] for r in records] == list(range(len(records)))  # every row, once, in order
    return summary, records


def _by_id(records, key):
    (found,) = [r for r in records if r["id"] == key]
    return found


@pytest.mark.parametrize(
    "key, error",
    [
        ("missing", "file not found"),
        ("zero_bytes", "empty file"),
        ("directory", "cannot read"),
        ("not_audio", "cannot decode audio"),
        # libsndfile loses sync and FFmpeg fails on the cut frame: nothing decodes to the end.
        ("truncated_flac", "cannot decode audio"),
        ("too_short", "at least 0.1 s"),
        ("nan_samples", "NaN or infinite"),
        ("inf_samples", "NaN or infinite"),
        ("empty_text", "empty transcript"),
        ("whitespace_text", "empty transcript"),
        ("bad_utf8", "invalid UTF-8"),
    ],
)
def test_rows_that_fail_say_why(bad_records, key, error):
    record = _by_id(bad_records[1], key)
    assert record["score"] is None and error in record["error"]


@pytest.mark.parametrize(
    "key, duration, flags",
    [
        ("good", 1.5, []),
        ("one_channel", 1.2, []),
        ("six_channels", 1.2, []),
        ("8khz", 1.2, []),
        ("96khz", 1.2, []),
        ("silence", 1.0, ["silent"]),
        ("over_30s", 31.0, ["truncated_audio"]),
        ("long_text", 1.5, ["truncated_text"]),
    ],
)
def test_rows_that_score_carry_their_flags(bad_records, key, duration, flags):
    record = _by_id(bad_records[1], key)
    assert record["error"] is None and -1.0 <= record["score"] <= 1.0
    assert record["duration"] == pytest.approx(duration, abs=0.01)
    assert [f for f in ("truncated_audio", "truncated_text", "silent") if record[f]] == flags


@pytest.mark.parametrize(
    "key, longest",
    [
        ("truncated_mp3", 1.2),  # a cut MP3 is a valid shorter stream
        ("corrupt_mp3", 2.1),  # MP3 frames carry no checksum: flipped bits decode as noise
        ("corrupt_flac", 1.9),  # FFmpeg drops the FLAC frames that fail their CRC
    ],
)
def test_damaged_files_that_decode_are_scored_on_what_decodes(bad_records, key, longest):
    record = _by_id(bad_records[1], key)  # of 2.0 s written; `duration` shows what was kept
    assert record["error"] is None and 0.1 <= record["duration"] <= longest


def test_duplicate_ids_are_flagged_and_both_scored(bad_records):
    dups = [r for r in bad_records[1] if r["id"] == "dup"]
    assert len(dups) == 2 and all(r["duplicate_id"] and r["error"] is None for r in dups)


def test_summary_counts_the_failures(bad_records):
    summary, records = bad_records
    assert summary.failed == sum(r["error"] is not None for r in records) == 11
    assert summary.exit_code == 1
    assert summary.flags["duplicate_id"] == 2 and summary.flags["silent"] == 1


# ----- exit codes -----


def _score(args, tiny_model_dir):
    return cli.main(["score", *args, "--model", str(tiny_model_dir), "--threads", "1"])


def test_exit_0_when_every_row_scores(tmp_path, speech_like_clips, tiny_model_dir):
    shutil.copy(speech_like_clips["c0"], tmp_path / "a.wav")
    write_manifest(tmp_path / "m.tsv", [{"audio": "a.wav", "text": "hello"}])
    assert _score(["--manifest", str(tmp_path / "m.tsv"), "-o", str(tmp_path / "o.csv")], tiny_model_dir) == 0


def test_exit_1_when_some_rows_fail(bad_inputs, tiny_model_dir, tmp_path, capsys):
    assert _score(["--manifest", str(bad_inputs), "-o", str(tmp_path / "o.jsonl")], tiny_model_dir) == 1
    assert "11 failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "problem, message",
    [
        ("missing column", "missing required column"),
        ("no manifest", "manifest not found"),
        ("bad output", "output must end in"),
        ("no model", "no model directory"),
        ("unwritable output", "cannot write"),
    ],
)
def test_exit_2_when_nothing_can_be_done(tmp_path, tiny_model_dir, capsys, problem, message):
    manifest = write_manifest(tmp_path / "m.tsv", [{"audio": "a.wav", "text": "t"}])
    output, model = tmp_path / "o.jsonl", str(tiny_model_dir)
    if problem == "missing column":
        manifest.write_text("audio\tid\na.wav\t1\n")
    elif problem == "no manifest":
        manifest = tmp_path / "absent.tsv"
    elif problem == "bad output":
        output = tmp_path / "o.txt"
    elif problem == "no model":
        model = str(tmp_path / "no-such-model")
    else:
        output = tmp_path / "no-such-dir" / "o.jsonl"
    code = cli.main(["score", "--manifest", str(manifest), "-o", str(output), "--model", model, "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and message in err
    assert err.count("\n") == 1 and "Traceback" not in err  # one clean line
    assert not output.exists()  # nothing was started


# ----- crash safety -----


def test_sigkill_mid_run_then_resume_gives_every_row_exactly_once(tmp_path, speech_like_clips, tiny_model, tiny_model_dir):
    for name, path in speech_like_clips.items():
        shutil.copy(path, tmp_path / f"{name}.wav")
    names, texts = sorted(speech_like_clips), ["alpha beta", "gamma delta", "epsilon"]
    n = 600
    rows = [{"audio": f"{names[i % len(names)]}.wav", "text": texts[i % len(texts)], "id": f"r{i}"} for i in range(n)]
    manifest = write_manifest(tmp_path / "m.tsv", rows)
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "voiceclap", "score", "--manifest", str(manifest), "-o", str(out),
               "--model", str(tiny_model_dir), "--batch-size", "1", "--threads", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= 5:
            break
        time.sleep(0.01)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read()[-2000:]}"
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    written = out.read_bytes().count(b"\n")
    assert 5 <= written < n

    assert cli.main(["score", "--manifest", str(manifest), "-o", str(out), "--resume",
                     "--model", str(tiny_model_dir), "--threads", "1"]) == 0
    records = read_records(out)
    assert [r["id"] for r in records] == [r["id"] for r in rows]  # none lost, none twice, in order
    # And the scores are those of the pairs: check each distinct (audio, text) pair once.
    pairs = {(r["audio"], r["text"]) for r in rows}
    expected = {p: tiny_model.score(str(tmp_path / p[0]), p[1]) for p in pairs}
    for row, record in zip(rows, records):
        assert record["score"] == pytest.approx(expected[(row["audio"], row["text"])], abs=1e-5)


# ----- checkpoints run no code -----


class _Payload:
    """Unpickling this opens (creates) a marker file: proof that code in the pickle ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("layout", ["plain pickle", "torch.save zip"])
def test_convert_refuses_a_malicious_pickle_and_runs_none_of_it(tmp_path, capsys, layout):
    marker = tmp_path / "payload-ran"
    checkpoint = tmp_path / "model.pt"
    content = {"state_dict": {"logit_scale": torch.zeros(())}, "extra": _Payload(marker)}
    if layout == "plain pickle":
        checkpoint.write_bytes(pickle.dumps(content, protocol=2))
    else:
        torch.save(content, checkpoint)
    assert not marker.exists()
    code = cli.main(["convert", str(checkpoint), "-o", str(tmp_path / "converted"), "--config", "tiny-test"])
    err = capsys.readouterr().err
    assert code == 2 and "refused" in err and "nothing in it was executed" in err
    assert not marker.exists()
    assert not (tmp_path / "converted").exists()


def test_model_config_is_data_not_code(tmp_path, tiny_model_dir):
    """A config.json with a code-looking value is read as a string, never evaluated."""
    import json

    directory = tmp_path / "m"
    shutil.copytree(tiny_model_dir, directory)
    config = json.loads((directory / "config.json").read_text())
    marker = tmp_path / "evaluated"
    config["name"] = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    (directory / "config.json").write_text(json.dumps(config))
    from voiceclap.model import VoiceCLAP

    assert VoiceCLAP.from_pretrained(directory).config.name == config["name"]
    assert not marker.exists()
    assert os.listdir(tmp_path) == ["m"]
