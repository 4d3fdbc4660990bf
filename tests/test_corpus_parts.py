"""The corpus builder's parts beyond the synthetic one, on tiny builds: recorded speech (fake Debian
package trees), spoken negatives and minimal pairs (espeak-ng, MBROLA and Pico voices speaking
generated sentences), the fluent annotation of training shards, the license switch and the
source table."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from itertools import groupby
from pathlib import Path

import pytest
import soundfile as sf
from conftest import CORPUS_LANGUAGES, write_sentence_sources
from test_recorded import make_tuxpaint, make_uqm

from voiceclap.clips import Candidate, Clip, read_shard, write_samples
from voiceclap.corpus import BuildConfig, build_corpus
from voiceclap.corpus.annotate import annotation_path
from voiceclap.corpus.licenses import TERMS
from voiceclap.corpus.materials import BETTER_ENGINES, INTELLIGIBLE_ENGINES, UNCLEAR_VOICES, Materials
from voiceclap.corpus.parts import recorded as recorded_part
from voiceclap.corpus.parts.recorded import plan_recorded
from voiceclap.corpus.parts.voices import plan_voices
from voiceclap.corpus.recorded import READERS, SourceReport, read_tuxpaint, read_uqm, split_of
from voiceclap.corpus.shards import UnitFailed, run_jobs, shard_jobs, stats_path
from voiceclap.corpus.summary import corpus_summary
from voiceclap.corpus.tts import ENGINES
from voiceclap.metrics import error_rate
from voiceclap.text import units

needs_voices = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("espeak-ng", "mbrola", "pico2wave")),
    reason="espeak-ng, mbrola or pico2wave missing: run scripts/install_corpus_tools.sh",
)

TINY = {
    "languages": CORPUS_LANGUAGES,
    "engines": ("espeak", "mbrola", "pico"),
    "train_clips": 12,
    "heldout_clips": 21,
    "gold_clips": 18,
    "spoken_clips": 12,
    "pairs_per_language": 4,
    "shard_size": 6,
    "max_sentences": 120,
    "workers": 1,
    "progress": False,
}
PARTS = ("synthetic", "spoken", "pairs", "annotate")


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return write_sentence_sources(tmp_path_factory.mktemp("sources"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, sources) -> BuildConfig:
    if not all(shutil.which(tool) for tool in ("espeak-ng", "mbrola", "pico2wave")):
        pytest.skip("espeak-ng, mbrola or pico2wave missing: run scripts/install_corpus_tools.sh")
    config = BuildConfig(out=tmp_path_factory.mktemp("corpus"), sources=sources, parts=PARTS, **TINY)
    build_corpus(config)
    return config


def _clips(directory: Path) -> list[tuple[str, Clip]]:
    """(shard name, clip) of every shard under ``directory``, in shard and member order."""
    return [(p.name, clip) for p in sorted(directory.glob("shard-*.tar")) for clip in read_shard(str(p))]


def _key(text: str, language: str) -> tuple[str, ...]:
    return tuple(units(text, language))


# ----- spoken negatives


@needs_voices
def test_spoken_pairs_share_a_group_and_label_each_other_exactly(built):
    clips = _clips(built.out / "spoken" / "train")
    assert len(clips) == built.spoken_clips
    pairs = [list(g) for _, g in groupby(clips, key=lambda item: item[1].group)]
    assert all(len(pair) == 2 for pair in pairs), "the two clips of a pair are adjacent"
    plan = json.loads((built.out / "spoken" / "plan.json").read_text())
    for (shard_a, a), (shard_b, b) in pairs:
        assert shard_a == shard_b and a.group == b.group and a.id != b.id
        for said, other in ((a, b), (b, a)):
            [spoken] = [c for c in said.candidates if c.kind == "spoken"]
            assert spoken.text == other.text
            assert spoken.error_rate == pytest.approx(error_rate(said.text, other.text, said.language), abs=1e-6)
            assert spoken.error_rate > 0
        # The same voice, prosody and degradation: only the words differ.
        for field in ("rate", "pitch", "volume", "augmentation", "corruption"):
            assert a.extra[field] == b.extra[field], field
        assert a.speaker == b.speaker and a.speaker.split(":")[0] in INTELLIGIBLE_ENGINES
        corrupted = a if a.intended_text else b
        original = b if corrupted is a else a
        assert corrupted.intended_text == original.text and original.intended_text is None
        assert corrupted.true_wer == pytest.approx(error_rate(original.text, corrupted.text, corrupted.language))
    made = plan["pairs"]
    assert sum(n for counts in made.values() for kind, n in counts.items() if kind != "unchanged") == len(pairs)
    assert sum(counts.get("fluent", 0) for counts in made.values()) > 0  # the grid has natural substitutions


# ----- minimal pairs


@needs_voices
def test_minimal_pairs_are_symmetric_and_unseen_in_training(built):
    materials = Materials(built)
    train_voices = {v.id for vs in materials.synthetic_voice_split[0].values() for v in vs}
    training = {lang: {_key(s, lang) for s in materials.sentence_split(lang).train} for lang in CORPUS_LANGUAGES}
    clips = []
    for split in ("dev", "test"):
        for _, clip in _clips(built.out / "pairs" / split):
            assert clip.extra["split"] == split
            clips.append(clip)
    groups = {}
    for clip in clips:
        groups.setdefault(clip.group, []).append(clip)
    assert groups and all(len(pair) == 2 for pair in groups.values())
    plan = json.loads((built.out / "pairs" / "plan.json").read_text())
    for a, b in groups.values():
        assert a.extra["split"] == b.extra["split"] and a.speaker == b.speaker
        for said, other in ((a, b), (b, a)):
            assert said.candidates == [
                Candidate(other.text, round(error_rate(said.text, other.text, said.language), 6), "variant")
            ]
            assert _key(said.text, said.language) not in training[said.language]
        assert a.speaker.split(":")[0] in INTELLIGIBLE_ENGINES and a.speaker not in UNCLEAR_VOICES
        # Held-out voices, but where a language has no intelligible one (es: MBROLA's Spanish is unclear).
        assert (a.speaker not in train_voices) == a.extra["voice_held_out"]
        assert a.extra["voice_held_out"] == (a.language not in plan["voices_seen_in_training"])
        assert not a.extra["augmentation"]

    # Reading alone gets exactly half: a scorer of the texts only wins one clip of every pair.
    def read_only(text: str) -> int:
        return int(hashlib.sha256(text.encode()).hexdigest(), 16)

    wins = sum(read_only(c.text) > read_only(c.candidates[0].text) for c in clips)
    assert wins == len(groups) == len(clips) / 2


# ----- annotation


@needs_voices
def test_annotate_adds_exact_fluent_labels_and_is_idempotent(built):
    shards = sorted((built.out / "synthetic" / "train").glob("shard-*.tar"))
    labelled = 0
    for _, clip in _clips(built.out / "synthetic" / "train"):
        fluent = [c for c in clip.candidates if c.kind == "fluent"]
        assert len(fluent) <= built.fluent_k
        for candidate in fluent:
            assert candidate.error_rate == pytest.approx(error_rate(clip.text, candidate.text, clip.language), abs=1e-6)
            assert _key(candidate.text, clip.language) != _key(clip.text, clip.language)
        labelled += bool(fluent)
    assert labelled > 0
    assert all(annotation_path(shard).exists() for shard in shards)
    assert (built.out / "fluent" / "en.npz").exists()

    before = {shard: (shard.read_bytes(), shard.stat().st_mtime_ns) for shard in shards}
    build_corpus(built)  # everything done: nothing is rewritten
    assert {shard: (shard.read_bytes(), shard.stat().st_mtime_ns) for shard in shards} == before
    annotation_path(shards[0]).unlink()  # a lost record: the shard is read again, its clips kept as they are
    build_corpus(built)
    assert shards[0].read_bytes() == before[shards[0]][0]
    assert json.loads(annotation_path(shards[0]).read_text())["already"] > 0


@needs_voices
def test_annotate_keeps_every_member_of_other_shards(built, tmp_path):
    mp3 = b"ID3 not really an mp3"
    english = {"id": "EN_B00000_S00000_W000000", "text": " The dog sees the red ball.", "language": "en", "dnsmos": 3.2}
    chinese = {"id": "ZH_B00000_S00000_W000001", "text": "你好", "language": "zh"}
    shard = tmp_path / "emilia" / "EN-B000000.tar"
    write_samples(
        shard,
        [{"__key__": m["id"], "json": m, "mp3": mp3, "txt": b"kept"} for m in (english, chinese)],
    )
    config = BuildConfig(**{**built.__dict__, "parts": ("annotate",), "annotate_shards": (str(shard.parent),)})
    build_corpus(config)
    import webdataset as wds

    samples = list(wds.tarfile_samples([{"url": str(shard)}]))
    assert [s["mp3"] for s in samples] == [mp3, mp3] and [s["txt"] for s in samples] == [b"kept", b"kept"]
    metas = [json.loads(s["json"]) for s in samples]
    assert metas[0]["dnsmos"] == 3.2 and metas[0]["text"] == english["text"]
    assert all(c["kind"] == "fluent" for c in metas[0]["candidates"]) and "candidates" not in metas[1]
    counts = json.loads(annotation_path(shard).read_text())
    assert counts["no_context:zh"] == 1 and counts["clips"] == 1


# ----- bad input


def _render_or_fail(unit: list[dict]) -> list[tuple[Clip, bytes]]:
    if unit[0]["text"] == "fails":
        raise UnitFailed("the engine said nothing", "espeak")
    return [(Clip(c["id"], c["text"], "en", duration=1.0, speaker="espeak:en-us+m1", source="espeak"), b"x") for c in unit]


def test_units_that_cannot_be_rendered_are_counted_not_kept(tmp_path):
    units = [[{"id": "a", "text": "said"}], [{"id": "b", "text": "fails"}, {"id": "c", "text": "fails too"}]]
    [job] = shard_jobs(tmp_path / "synthetic", {"train": units}, 10, _render_or_fail)
    run_jobs([job], workers=1, progress=False, desc="test")
    assert [clip.id for _, clip in _clips(tmp_path / "synthetic" / "train")] == ["a"]
    stats = json.loads(stats_path(job.path).read_text())
    assert stats["clips"] == 1 and stats["failed"] == [
        {"ids": ["b", "c"], "source": "espeak", "error": "the engine said nothing"}
    ]
    summary = corpus_summary(tmp_path)
    assert summary["failed"] == 2 and summary["parts"]["synthetic"]["splits"]["train"]["failed"] == 2
    assert {row["source"]: row["skipped"] for row in summary["sources"]}["espeak"] == 2


# ----- resumption, per part


@needs_voices
def test_each_part_resumes_on_its_own(tmp_path, sources):
    config = BuildConfig(out=tmp_path / "corpus", sources=sources, parts=("spoken", "pairs"), **TINY)
    build_corpus(config)
    shards = sorted(config.out.glob("*/*/shard-*.tar"))
    assert {p.parent.parent.name for p in shards} == {"spoken", "pairs"}
    lost = [next(p for p in shards if p.parent.parent.name == part) for part in ("spoken", "pairs")]
    kept = {p: p.stat().st_mtime_ns for p in shards if p not in lost}
    lost_bytes = {p: p.read_bytes() for p in lost}
    for path in lost:
        path.unlink()
        path.with_suffix(".stats.json").unlink()
    build_corpus(config)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert {p: p.read_bytes() for p in lost} == lost_bytes


# ----- recorded speech


@pytest.fixture
def recorded_roots(tmp_path, monkeypatch) -> dict[str, Path]:
    """Fake uqm and tux paint trees; fillets and festvox-ru not installed."""
    roots = {name: tmp_path / name for name in READERS}
    make_uqm(roots["uqm"])
    make_tuxpaint(roots["tuxpaint"])
    monkeypatch.setattr(recorded_part, "ROOTS", roots)
    return roots


def test_recorded_part_transcodes_every_kept_clip_into_its_split(tmp_path, recorded_roots):
    config = BuildConfig(out=tmp_path / "corpus", parts=("recorded",), shard_size=7, workers=1, progress=False)
    summary = build_corpus(config)
    reports = {name: SourceReport(name) for name in ("uqm", "tuxpaint")}
    expected = {
        clip.id: clip
        for reader, name in ((read_uqm, "uqm"), (read_tuxpaint, "tuxpaint"))
        for clip in reader(recorded_roots[name], reports[name])
    }
    built = {}
    for split in ("train", "dev", "test"):
        for _, clip in _clips(config.out / "recorded" / split):
            audio, sr = sf.read(io.BytesIO(clip.audio), dtype="float32")
            assert sr == 16000 and audio.ndim == 1
            assert clip.duration == pytest.approx(len(audio) / 16000, abs=1e-3)
            assert clip.duration == pytest.approx(expected[clip.id].duration, abs=0.01)
            assert clip.extra["split"] == split == split_of(expected[clip.id])
            assert clip.text == expected[clip.id].text and clip.extra["license"]
            built[clip.id] = clip
    assert set(built) == set(expected)
    report = (config.out / "recorded" / "report.md").read_text()
    assert "| uqm |" in report and "duration_mismatch" in report and "fillets: no" in report
    skipped = {row["source"]: row["skipped"] for row in summary["sources"]}
    for name, source_report in reports.items():
        assert skipped[name] == sum(source_report.dropped.values()) > 0

    shards = {p: p.stat().st_mtime_ns for p in config.out.glob("recorded/*/shard-*.tar")}
    build_corpus(config)
    assert {p: p.stat().st_mtime_ns for p in shards} == shards


# ----- licenses and the source table


def test_commercial_only_leaves_out_uqm_and_mbrola(tmp_path, sources, recorded_roots):
    config = BuildConfig(out=tmp_path, sources=sources, commercial_only=True, **TINY)
    plan = plan_recorded(config, Materials(config))
    assert "uqm" in plan.description["left_out"] and "tuxpaint" in plan.description["sources"]
    assert all(unit[0]["source"] != "uqm" for units in plan.units.values() for unit in units)
    if shutil.which("mbrola") is None:
        pytest.skip("mbrola missing: run scripts/install_corpus_tools.sh")
    voices = [v.id for vs in Materials(config).voices.values() for v in vs]
    assert not [v for v in voices if v.startswith("mbrola:") and v != "mbrola:en1"]
    everything = [v.id for vs in Materials(BuildConfig(out=tmp_path, sources=sources, **TINY)).voices.values() for v in vs]
    assert [v for v in everything if v.startswith("mbrola:de")]


@needs_voices
def test_sources_table_lists_every_source_with_its_terms(built):
    table = (built.out / "SOURCES.md").read_text()
    rows = {line.split(" | ")[0].removeprefix("| "): line for line in table.splitlines() if line.startswith("| ")}
    for name in (*ENGINES, *READERS):
        assert name in rows and TERMS[name].license in rows[name]
    assert "| no |" in rows["uqm"] and "| no |" in rows["mbrola"] and "| yes |" in rows["pico"]
    summary = json.loads((built.out / "summary.json").read_text())
    built_clips = sum(row["clips"] for row in summary["sources"])
    assert built_clips == summary["clips"] > 0


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("espeak-ng", "RHVoice-test")),
    reason="RHVoice missing: run scripts/install_corpus_tools.sh",
)
def test_voices_part_holds_out_voices_and_sentences(tmp_path, sources):
    config = BuildConfig(
        out=tmp_path / "corpus",
        sources=sources,
        parts=("voices",),
        **{**TINY, "engines": ("espeak", "rhvoice"), "voices_clips": 6, "voices_heldout_clips": 3},
    )
    build_corpus(config)
    materials = Materials(config)
    train = _clips(config.out / "voices" / "train")
    heldout = _clips(config.out / "voices" / "heldout")
    assert len(train) == 6 and len(heldout) == 3
    assert all(clip.id.startswith("voices/") and clip.source == "rhvoice" for _, clip in train + heldout)
    assert not {c.speaker for _, c in train} & {c.speaker for _, c in heldout}
    for _, clip in heldout:
        assert clip.text in materials.sentence_split(clip.language).held
    for _, clip in train:
        assert clip.text in materials.sentence_split(clip.language).train


def test_voices_part_names_what_it_lacks(tmp_path, sources):
    config = BuildConfig(out=tmp_path, sources=sources, **{**TINY, "engines": ("espeak",)})
    plan = plan_voices(config, Materials(config))
    assert plan.unavailable and not plan.units
    assert ("no engine beyond" in plan.unavailable) if not BETTER_ENGINES else ("no voice of" in plan.unavailable)
