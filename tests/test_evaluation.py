"""`voiceclap eval`: metric plumbing on scorers with known answers, data reading, the report
directory for a tiny random model, the ASR baseline with a fake transcriber, and (when the offline
weights are installed) a real faster-whisper run on espeak-ng clips."""

from __future__ import annotations

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

from voiceclap.audio import SAMPLE_RATE, load_audio
from voiceclap.evaluation import (
    EvalClip,
    add_eval_arguments,
    eval_from_args,
    load_eval_set,
    quick_eval,
)
from voiceclap.evaluation.asr_baseline import TranscriptCache, asr_error_rates
from voiceclap.evaluation.cli import build_parser
from voiceclap.evaluation.corruption_eval import build_candidates, corruption_eval
from voiceclap.evaluation.gold import gold_eval
from voiceclap.evaluation.pipeline import EvalOptions, evaluate
from voiceclap.evaluation.retrieval import retrieval_eval
from voiceclap.metrics import error_rate
from voiceclap.model import VoiceCLAP

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


def heldout_clips() -> list[EvalClip]:
    return [EvalClip(f"h{i}", lang, text, tone(i)) for i, (lang, text) in enumerate(SENTENCES)]


def gold_clips() -> list[EvalClip]:
    """Intended = a sentence; spoken = that sentence with the first n words dropped (true WER known)."""
    clips = []
    for i, (lang, text) in enumerate(SENTENCES):
        words = text.split()
        spoken = " ".join(words[i % 4 :])
        clips.append(
            EvalClip(
                f"g{i}",
                lang,
                spoken,
                tone(i),
                system=SYSTEMS[i % 3],
                intended_text=text,
                true_wer=error_rate(text, spoken, lang),
            )
        )
    return clips


class OracleScorer:
    """A perfect scorer: score = -WER, the WER each section measures (true WER against the intended
    text on gold clips, the candidate's WER against the clip's transcript otherwise)."""

    def score(self, clip: EvalClip, text: str) -> float:
        if clip.intended_text is not None and text == clip.intended_text:
            return -clip.true_wer
        return -error_rate(clip.text, text, clip.language)

    def score_matrix(self, clips, texts):
        return np.array([[self.score(c, t) for t in texts] for c in clips])

    def score_pairs(self, clips, texts):
        return np.array([self.score(c, t) for c, t in zip(clips, texts)])


class ConstantScorer:
    def score_matrix(self, clips, texts):
        return np.full((len(clips), len(texts)), 0.5)

    def score_pairs(self, clips, texts):
        return np.full(len(clips), 0.5)


class FakeTranscriber:
    """Says exactly what each clip's audio says (its spoken text), except for clips it mishears."""

    identity = "fake-asr|v1"
    load_seconds = 0.0

    def __init__(self, clips: list[EvalClip], mishear: set[str] = frozenset(), languages=("en", "de")):
        self.by_audio = {c.audio.tobytes(): c for c in clips}
        self.mishear = mishear
        self.languages = languages
        self.calls = 0

    def supports(self, language):
        return language in self.languages

    def transcribe(self, audio, language):
        self.calls += 1
        clip = self.by_audio[np.asarray(audio, dtype=np.float32).tobytes()]
        return "completely different words" if clip.id in self.mishear else clip.text


def no_nan(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} in JSON")

    return json.loads(text, parse_constant=refuse)


# ----- known answers -----


def test_perfect_scorer_retrieval_and_correlation():
    clips = heldout_clips()
    summary, rows = retrieval_eval(clips, OracleScorer())
    overall = summary["overall"]
    assert overall["audio_to_text"]["R@1"] == 1.0 and overall["text_to_audio"]["R@1"] == 1.0
    assert overall["audio_to_text"]["N"] == 8
    assert summary["by_language"]["de"]["audio_to_text"]["N"] == 4
    assert all(r["audio_to_text_rank"] == 1 for r in rows)

    summary, rows = corruption_eval(clips, OracleScorer(), k=4, seed=1, n_boot=50, progress=False)
    for name in ("spearman", "kendall", "pearson"):
        assert summary["pooled"][name]["value"] == pytest.approx(-1.0)
        assert summary["pooled"][name]["ci95"] == pytest.approx([-1.0, -1.0])
    assert summary["by_language"]["en"]["spearman"]["value"] == pytest.approx(-1.0)
    assert summary["true_ranked_first"] == 1.0
    assert summary["n_clips"] == 8 and summary["n_rows"] == len(rows)
    means = [b["mean_score"] for b in summary["mean_score_by_wer"]]
    assert means == sorted(means, reverse=True)  # monotone table for a monotone scorer

    summary, _ = gold_eval(gold_clips(), OracleScorer(), n_boot=50, progress=False)
    assert summary["voiceclap"]["correlation"]["spearman"]["value"] == pytest.approx(-1.0)


class TextPriorScorer(OracleScorer):
    """Does not listen: scores a text by its WER against the nearest true transcript of its language,
    which ranks corruptions as well as the oracle does on a clip's own audio."""

    def __init__(self, clips: list[EvalClip]):
        self.transcripts = [(c.language, c.text) for c in clips]

    def score(self, clip: EvalClip, text: str) -> float:
        return -min(error_rate(t, text, clip.language) for lang, t in self.transcripts if lang == clip.language)


def test_text_prior_control_tells_listening_from_reading():
    clips = heldout_clips()
    listening, _ = corruption_eval(clips, OracleScorer(), k=4, seed=1, n_boot=20, progress=False)
    reading, _ = corruption_eval(clips, TextPriorScorer(clips), k=4, seed=1, n_boot=20, progress=False)
    # Both are (nearly: a corruption can land nearer another transcript) perfect on the card's protocol...
    assert listening["pooled"]["spearman"]["value"] == pytest.approx(-1.0)
    assert reading["pooled"]["spearman"]["value"] == pytest.approx(-1.0, abs=0.01)
    # ...but only the one that reads keeps its rho when each clip's audio is swapped for another's.
    assert reading["other_audio_control"]["spearman"]["value"] == pytest.approx(-1.0, abs=0.01)
    assert listening["other_audio_control"]["n_groups"] == 8
    assert abs(listening["other_audio_control"]["spearman"]["value"]) < 0.5


def test_constant_scorer_is_undefined_not_nan(tmp_path):
    clips = heldout_clips()
    summary, _ = corruption_eval(clips, ConstantScorer(), k=3, seed=0, n_boot=20, progress=False)
    assert summary["pooled"]["spearman"] == {"value": None, "ci95": None, "undefined": "constant input"}
    assert summary["true_ranked_first"] == 0.0  # a tie is not a win

    summary, _ = retrieval_eval(clips, ConstantScorer())
    # Ties rank pessimistically: every correct item ties with all N and ranks last.
    assert summary["overall"]["audio_to_text"]["R@1"] == 0.0
    assert summary["overall"]["audio_to_text"]["median_rank"] == 8

    report = evaluate(
        ConstantScorer(),
        tmp_path,
        heldout=_eval_set(clips),
        gold=_eval_set(gold_clips()),
        options=EvalOptions(k_corruptions=3, n_boot=20, progress=False),
    )
    assert report["gold"]["voiceclap"]["correlation"]["spearman"]["value"] is None
    parsed = no_nan((tmp_path / "report.json").read_text())
    assert parsed["corruption"]["pooled"]["spearman"]["undefined"] == "constant input"
    assert "undefined (constant input)" in (tmp_path / "report.md").read_text()


def test_ties_and_repeated_transcripts():
    clips = heldout_clips()
    # The same sentence said by a second voice: left out of retrieval rather than counted as a miss.
    clips.append(EvalClip("h-repeat", "en", "The quick brown fox jumps over the lazy dog!", tone(20)))
    summary, _ = retrieval_eval(clips, OracleScorer())
    assert summary["n_excluded_duplicate_text"] == 1 and summary["n_clips"] == 8
    assert summary["overall"]["audio_to_text"]["R@1"] == 1.0

    class TieWithOneCorruption(OracleScorer):
        """Perfect, except that the worst corruption of each clip ties with its true transcript."""

        def score_pairs(self, clips, texts):
            scores = super().score_pairs(clips, texts)
            for clip in set(clips):
                rows = [i for i, c in enumerate(clips) if c is clip]
                worst = min(rows, key=lambda i: scores[i])
                scores[worst] = 0.0
            return scores

    summary, _ = corruption_eval(heldout_clips(), TieWithOneCorruption(), k=3, seed=0, n_boot=20, progress=False)
    assert summary["true_ranked_first"] == 0.0
    assert -1.0 < summary["pooled"]["spearman"]["value"] < 0.0


def test_corruptions_are_seeded_per_clip_and_apart_from_order():
    clips = heldout_clips()
    rows_a, _ = build_candidates(clips, k=3, seed=7, progress=False)
    rows_b, _ = build_candidates(list(reversed(clips)), k=3, seed=7, progress=False)
    rows_c, _ = build_candidates(clips, k=3, seed=8, progress=False)
    texts = lambda rows: sorted((r["id"], r["text"]) for r in rows)
    assert texts(rows_a) == texts(rows_b)  # order of the clips does not matter
    assert texts(rows_a) != texts(rows_c)  # the seed does
    for row in rows_a:
        assert row["wer"] == pytest.approx(
            error_rate(next(c.text for c in clips if c.id == row["id"]), row["text"], row["language"])
        )
    corrupted = [r["wer"] for r in rows_a if not r["is_true"]]
    assert min(corrupted) > 0 and max(corrupted) > 0.5  # a spread of WER levels


def test_per_system_and_system_level():
    summary, rows = gold_eval(gold_clips(), OracleScorer(), n_boot=20, progress=False)
    per_system = summary["per_system"]
    assert per_system["n_systems"] == 3
    assert set(per_system["systems"]) == set(SYSTEMS)
    for name, entry in per_system["systems"].items():
        members = [r for r in rows if r["system"] == name]
        assert entry["n"] == len(members)
        assert entry["mean_true_wer"] == pytest.approx(np.mean([r["true_wer"] for r in members]))
    assert per_system["system_level"]["score"]["spearman"]["value"] == pytest.approx(-1.0)


# ----- ASR baseline -----


def test_asr_baseline_with_fake_transcriber(tmp_path):
    clips = gold_clips() + [
        EvalClip("g-ko", "ko", "안녕하세요", tone(30), system="x", intended_text="안녕하세요", true_wer=0.0)
    ]
    transcriber = FakeTranscriber(clips, mishear={"g1"})
    cache = TranscriptCache(tmp_path / "cache.jsonl")
    summary, rows = asr_error_rates(clips, transcriber, cache, progress=False)
    by_id = {r["id"]: r for r in rows}
    assert summary["skipped"] == [{"id": "g-ko", "reason": "the ASR model has no language 'ko'"}]
    assert transcriber.calls == 8 and summary["n_cached"] == 0
    assert by_id["g0"]["asr_wer"] == pytest.approx(clips[0].true_wer)  # hears what was said
    assert by_id["g1"]["asr_wer"] == error_rate(clips[1].intended_text, "completely different words", "en")

    again = FakeTranscriber(clips, mishear={"g1"})
    summary2, rows2 = asr_error_rates(clips, again, TranscriptCache(tmp_path / "cache.jsonl"), progress=False)
    assert again.calls == 0 and summary2["n_cached"] == 8
    assert [r["asr_wer"] for r in rows2] == [r["asr_wer"] for r in rows]
    assert summary2["seconds"] == pytest.approx(summary["seconds"])  # the time it took when transcribed

    # A different transcriber identity misses the cache.
    other = FakeTranscriber(clips)
    other.identity = "fake-asr|v2"
    asr_error_rates(clips, other, TranscriptCache(tmp_path / "cache.jsonl"), progress=False)
    assert other.calls == 8

    gold = gold_clips()
    summary, rows = gold_eval(gold, OracleScorer(), FakeTranscriber(gold), n_boot=20, progress=False)
    assert summary["asr"]["correlation"]["spearman"]["value"] == pytest.approx(1.0)  # perfect ASR
    assert summary["asr"]["mae"] == pytest.approx(0.0)
    assert "asr_wer" in summary["per_system"]["system_level"]
    assert all("asr_hypothesis" in r for r in rows)


# ----- data -----


def _flac(audio: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="FLAC")
    return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_shards(folder, clips: list[EvalClip], gold: bool = False, per_shard: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(0, len(clips), per_shard):
        with tarfile.open(folder / f"shard-{s // per_shard:06d}.tar", "w") as tar:
            for clip in clips[s : s + per_shard]:
                meta = {
                    "id": clip.id,
                    "text": " " + clip.text,
                    "language": clip.language.upper(),
                    "speaker": clip.system,
                    "duration": clip.seconds,
                }
                if gold:
                    meta.update(intended_text=clip.intended_text, spoken_text=clip.text, true_wer=clip.true_wer)
                _add(tar, f"{clip.id}.json", json.dumps(meta).encode())
                _add(tar, f"{clip.id}.flac", _flac(clip.audio))


def _eval_set(clips):
    from voiceclap.evaluation.data import EvalSet

    return EvalSet(clips=clips, sources=["memory"], n_available=len(clips))


def test_read_shards_and_manifest(tmp_path):
    write_shards(tmp_path / "heldout", heldout_clips())
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

    write_shards(tmp_path / "gold", gold_clips(), gold=True)
    gold = load_eval_set(tmp_path / "gold", gold=True, progress=False)
    assert [c.true_wer for c in gold.clips] == [c.true_wer for c in gold_clips()]
    assert gold.clips[0].system == SYSTEMS[0]

    # A gold manifest: `text` is the intended text; true WER computed from spoken_text when absent.
    sf.write(tmp_path / "a.wav", tone(1), SAMPLE_RATE)
    rows = [
        {
            "audio": "a.wav",
            "text": "one two three four",
            "language": "en",
            "id": "m1",
            "spoken_text": "one two four",
            "system": "s",
        },
        {"audio": "a.wav", "text": "one two", "language": "en", "id": "m2", "true_wer": 0.5},
        {"audio": "a.wav", "text": "no truth here", "language": "en", "id": "m3"},
    ]
    (tmp_path / "gold.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    manifest = load_eval_set(tmp_path / "gold.jsonl", gold=True, progress=False)
    assert [(c.id, c.true_wer) for c in manifest.clips] == [("m1", 0.25), ("m2", 0.5)]
    assert manifest.clips[0].intended_text == "one two three four" and manifest.clips[0].system == "s"
    assert manifest.skipped[0]["id"] == "m3"


# ----- a tiny random model, end to end -----


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-model")
    VoiceCLAP.from_config("tiny-test", load_base_weights=False).save_pretrained(directory)
    return directory


def test_report_directory_for_tiny_model(tmp_path, tiny_model_dir, capsys):
    write_shards(tmp_path / "heldout", heldout_clips())
    write_shards(tmp_path / "gold", gold_clips(), gold=True)
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    out = tmp_path / "report"
    parser = add_eval_arguments(__import__("argparse").ArgumentParser())
    args = parser.parse_args(
        [
            "--model",
            str(model_dir),
            "--heldout",
            str(tmp_path / "heldout"),
            "--gold",
            str(tmp_path / "gold"),
            "--out",
            str(out),
            "--k-corruptions",
            "3",
            "--n-boot",
            "20",
            "--fit-calibration",
            "--no-progress",
        ]
    )
    assert eval_from_args(args) == 0
    assert "report:" in capsys.readouterr().out

    report = no_nan((out / "report.json").read_text())
    for name in (
        "report.md",
        "retrieval_ranks.png",
        "score_vs_wer.png",
        "calibration.png",
        "gold_voiceclap_vs_asr.png",
        "corruption_rows.jsonl",
        "gold_rows.jsonl",
        "calibration.json",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "retrieval_ranks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["model"]["config"] == "tiny-test" and report["model"]["parameters"] > 0
    assert report["data"]["heldout"]["n_clips"] == 8 and report["data"]["gold"]["n_clips"] == 8
    assert report["retrieval"]["overall"]["audio_to_text"]["N"] == 8
    assert report["corruption"]["n_rows"] == 8 * 4
    assert report["calibration"]["test"]["mae"] is not None
    assert report["gold"]["voiceclap"]["estimated_wer_mae"] is not None
    assert report["command"] and report["created"] and report["settings"]["k_corruptions"] == 3
    markdown = (out / "report.md").read_text()
    for heading in (
        "## Retrieval",
        "## Synthetic corruption",
        "## Calibration",
        "## Gold validation",
        "![score_vs_wer.png]",
    ):
        assert heading in markdown
    # The calibration is stored with the model and loads with it.
    reloaded = VoiceCLAP.from_pretrained(model_dir)
    assert reloaded.calibration is not None
    assert reloaded.calibration.to_dict() == json.loads((out / "calibration.json").read_text())


def test_cli_refuses_missing_inputs(tmp_path, capsys):
    assert eval_from_args(build_parser().parse_args(["--out", str(tmp_path)])) == 2
    assert "--heldout" in capsys.readouterr().err
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
    assert eval_from_args(build_parser().parse_args(["--out", str(tmp_path), "--heldout", "x", "--asr"])) == 2
    assert "--gold" in capsys.readouterr().err


def test_quick_eval(tiny_model_dir):
    model = VoiceCLAP.from_pretrained(tiny_model_dir).train()
    result = quick_eval(model, heldout_clips(), k=2)
    assert set(result) == {"r1", "rho", "n"} and result["n"] == 8
    assert 0.0 <= result["r1"] <= 1.0 and -1.0 <= result["rho"] <= 1.0
    assert model.training  # handed back in the mode it came in


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
        # Intended text differs from what was said for the last clip: ASR-WER must see it.
        intended = text if i < 2 else "buenos días a todos mis amigos"
        clips.append(
            EvalClip(
                f"e{i}", lang, text, load_audio(wav), intended_text=intended, true_wer=error_rate(intended, text, lang)
            )
        )
    transcriber = FasterWhisperTranscriber(cpu_threads=2)
    summary, rows = asr_error_rates(clips, transcriber, TranscriptCache(tmp_path / "c.jsonl"), progress=False)
    assert summary["n_clips"] == 3 and summary["seconds"] > 0
    assert np.mean([r["asr_wer"] for r in rows[:2]]) <= 0.4, rows
    assert rows[2]["asr_wer"] >= 0.3, rows
    assert all(math.isfinite(r["asr_wer"]) for r in rows)
