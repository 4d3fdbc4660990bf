"""The trainer on a tiny synthetic corpus: data, feature cache, resume, learning, the command line.

The corpus is "tone speech": every word is a sine tone of its own frequency, so a transcript's
words are recoverable from its audio. It is written as WebDataset shards in Emilia's layout.
"""

import argparse
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import webdataset as wds

from voiceclap.clips import Candidate, decode_clip, expand_sources, read_clips
from voiceclap.evaluation import add_eval_arguments, eval_from_args
from voiceclap.model import VoiceCLAP
from voiceclap.towers import TextBatch
from voiceclap.train import add_train_arguments, train, train_from_args
from voiceclap.train import main as train_main
from voiceclap.train.config import load_config
from voiceclap.train.data import (
    StreamingBatches,
    bucketed_batches,
    build_vocabularies,
    collate,
    heldout_filter,
    is_heldout,
    make_example,
)
from voiceclap.train.feature_cache import CachedBatches, build_feature_cache
from voiceclap.train.loss import VoiceCLAPLoss
from voiceclap.train.towers import TrainableTowers, apply_freezing, make_plan

REPO = Path(__file__).resolve().parents[1]
TINY_RECIPE = REPO / "configs" / "train" / "tiny-test.yaml"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
SR = 16000


def tone_speech(words: list[str], rng: np.random.Generator) -> np.ndarray:
    parts = []
    for word in words:
        t = np.arange(int(0.2 * SR)) / SR
        parts += [0.3 * np.sin(2 * np.pi * (300 + 250 * WORDS.index(word)) * t), np.zeros(int(0.03 * SR))]
    audio = np.concatenate(parts)
    return (audio + 0.01 * rng.standard_normal(len(audio))).astype(np.float32)


def write_shard(path: Path, n: int, seed: int) -> None:
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    with wds.TarWriter(str(path)) as writer:
        for i in range(n):
            words = [pick.choice(WORDS) for _ in range(pick.randint(2, 4))]
            audio = tone_speech(words, rng)
            flac = io.BytesIO()
            soundfile.write(flac, audio, SR, format="FLAC")
            key = f"tone{seed}-{i:04d}"
            meta = {"id": key, "text": " ".join(words).capitalize() + ".", "language": "en", "speaker": "tone",
                    "duration": len(audio) / SR}
            writer.write({"__key__": key, "json": json.dumps(meta).encode(), "flac": flac.getvalue()})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("corpus")
    for shard in range(2):
        write_shard(root / f"shard-{shard:06d}.tar", 100, shard)
    return str(root / "shard-{000000..000001}.tar")


@pytest.fixture(scope="module")
def hearing_model(tmp_path_factory) -> str:
    """A random tiny model that hears content: Whisper's random init (conv std 0.02 under unit-size
    sinusoidal positions) makes the encoder output depend on clip length only, which no training
    of the layers above can undo. Pretrained encoders do not have that problem."""
    torch.manual_seed(0)
    model = VoiceCLAP.from_config("tiny-test", load_base_weights=False)
    for conv in (model.audio.encoder.conv1, model.audio.encoder.conv2):
        torch.nn.init.kaiming_normal_(conv.weight)
    model.audio.encoder.embed_positions.weight.data *= 0.1
    directory = tmp_path_factory.mktemp("hearing-model")
    model.save_pretrained(directory)
    return str(directory)


def tiny_config(corpus: str, out_dir, *overrides: str):
    return load_config(TINY_RECIPE, [f"data.train={corpus}", f"run.out_dir={out_dir}", "run.threads=1", *overrides])


def towers_for(audio_from: int, text_from: int, model_dir: str | None = None) -> TrainableTowers:
    torch.manual_seed(0)
    if model_dir:
        model = VoiceCLAP.from_pretrained(model_dir)
    else:
        model = VoiceCLAP.from_config("tiny-test", load_base_weights=False)
    plan = make_plan(model, audio_from, text_from, False)
    apply_freezing(model, plan)
    return TrainableTowers(model, plan).eval()


def records(path: Path, split: str) -> list[dict]:
    return [r for r in map(json.loads, path.read_text().splitlines()) if r["split"] == split]


# ----- configuration -----


def test_config_overrides_and_validation():
    config = load_config(TINY_RECIPE, ["optim.lr=1e-4", "data.eval=null", "model.audio_trainable_from_layer=2"])
    assert config.optim.lr == 1e-4 and isinstance(config.optim.lr, float)  # YAML 1.1 reads "1e-4" as a str
    assert config.data.eval is None and config.model.audio_trainable_from_layer == 2
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(TINY_RECIPE, ["optim.learning_rate=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        load_config(TINY_RECIPE, ["lr=1"])
    for recipe in (REPO / "configs" / "train").glob("*.yaml"):
        load_config(recipe)  # every shipped recipe parses with known keys only


def test_freezing_plan():
    model = VoiceCLAP.from_config("tiny-test", load_base_weights=False)
    plan = make_plan(model, -1, 2, False)
    assert (plan.audio_from, plan.text_from, plan.cacheable) == (1, 2, True)
    prefixes = apply_freezing(model, plan)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(tuple(prefixes))}
    assert not any(n.startswith(("text.encoder", "audio.encoder.layers.0.", "audio.encoder.conv")) for n in trainable)
    assert "audio.encoder.layers.1.fc1.weight" in trainable
    with pytest.raises(ValueError):
        make_plan(model, 3, 0, False)
    with pytest.raises(ValueError, match="train_text_embeddings"):
        make_plan(model, 1, 1, True)


# ----- data -----


def test_sources_shards_and_manifests(corpus, tmp_path):
    shards = expand_sources(corpus)
    assert [Path(s).name for s in shards] == ["shard-000000.tar", "shard-000001.tar"]
    assert expand_sources(str(Path(shards[0]).parent / "shard-*.tar")) == shards
    clips = list(read_clips(shards))
    assert len(clips) == 200 and clips[0].id == "tone0-0000" and clips[0].language == "en"
    assert len(decode_clip(clips[0]).audio) == pytest.approx(clips[0].duration * SR, abs=1)

    # The same clips as a JSONL manifest with audio files beside it (duration read from the header).
    manifest = tmp_path / "clips.jsonl"
    with open(manifest, "w") as f:
        for clip in clips[:3]:
            (tmp_path / f"{clip.id}.flac").write_bytes(clip.audio)
            f.write(json.dumps({"audio": f"{clip.id}.flac", "text": clip.text, "language": "en", "id": clip.id}) + "\n")
    from_manifest = list(read_clips([str(manifest)]))
    assert all(isinstance(c.audio, str) for c in from_manifest)  # a path: decoded when batched
    assert [(c.id, c.text) for c in from_manifest] == [(c.id, c.text) for c in clips[:3]]
    from voiceclap.train.data import trainable

    assert next(trainable(from_manifest)).duration == pytest.approx(clips[0].duration, abs=1e-3)


def test_heldout_hash_split_is_stable_and_disjoint(corpus):
    clips = list(read_clips(expand_sources(corpus), with_audio=False))
    held = {c.id for c in heldout_filter(clips, 200, keep_heldout=True)}
    kept = {c.id for c in heldout_filter(clips, 200, keep_heldout=False)}
    assert held and kept and not held & kept and len(held | kept) == len(clips)
    assert 20 <= len(held) <= 60  # about 20 %
    assert is_heldout("tone0-0000", 200) == is_heldout("tone0-0000", 200)
    assert all(is_heldout(i, 1000) for i in held | kept) and not any(is_heldout(i, 0) for i in held)


def test_bucketed_batches_are_full_and_sorted_within():
    lengths = random.Random(0).sample(range(1000), 100)
    batches = list(bucketed_batches(lengths, 8, 32, random.Random(1), length=lambda x: x))
    assert all(len(b) == 8 for b in batches) and len(batches) == 12  # 3 buckets of 4, the rest dropped
    assert all(b == sorted(b) for b in batches)
    assert max(max(b) - min(b) for b in batches) < 500  # similar lengths together


def test_candidates_are_deterministic_and_measured(corpus):
    clips = list(read_clips(expand_sources(corpus)))[:5]
    vocabularies = build_vocabularies(clips, 100)
    first = [make_example(c, 0, 3, vocabularies, seed=0, epoch=0) for c in clips]
    again = [make_example(c, 0, 3, vocabularies, seed=0, epoch=0) for c in clips]
    other_epoch = [make_example(c, 0, 3, vocabularies, seed=0, epoch=1) for c in clips]
    assert [e.candidates for e in first] == [e.candidates for e in again]
    assert [e.candidates for e in first] != [e.candidates for e in other_epoch]
    for example, clip in zip(first, clips):
        assert example.text == clip.text and len(example.candidates) == 3
        assert all(c.error_rate > 0 and c.kind == "corruption" for c in example.candidates)

    # Stored candidates come first, in a fixed number of slots: a seeded choice of more, empty slots repeat the
    # transcript at error rate 0 (masked by the loss).
    clips[0].candidates = [Candidate(f"fluent {i}", 0.2 + i / 10, "fluent") for i in range(3)]
    two = make_example(clips[0], 2, 1, vocabularies, seed=0, epoch=0).candidates
    assert [c.kind for c in two] == ["fluent", "fluent", "corruption"]
    assert two == make_example(clips[0], 2, 1, vocabularies, seed=0, epoch=0).candidates
    padded = make_example(clips[1], 2, 1, vocabularies, seed=0, epoch=0).candidates
    assert [(c.text, c.error_rate) for c in padded[:2]] == [(clips[1].text, 0.0)] * 2
    # A spoken pair's text is never the one left out.
    clips[2].candidates = [Candidate(f"fluent {i}", 0.2, "fluent") for i in range(3)] + [Candidate("said", 0.5, "spoken")]
    for epoch in range(5):
        kept = make_example(clips[2], 2, 0, vocabularies, seed=0, epoch=epoch).candidates
        assert kept[0].kind == "spoken" and kept[1].kind == "fluent"


def test_streaming_batches_split_ranks_and_resume_exactly(corpus):
    model = VoiceCLAP.from_config("tiny-test", load_base_weights=False)
    shards = expand_sources(corpus)
    vocabularies = build_vocabularies(read_clips(shards, with_audio=False), 100)

    def stream(rank=0, world=1, workers=0):
        return StreamingBatches(shards, lambda ex: collate(model, ex), vocabularies, batch_size=4,
                                stored_candidates=0, num_negatives=2, seed=3, rank=rank, world_size=world, num_workers=workers, shuffle_buffer=16,
                                bucket_size=16)

    ranks = [stream(rank=r, world=2) for r in range(2)]
    seen = [{i for _, b in zip(range(10), iter(s)) for i in b.ids} for s in ranks]
    assert not seen[0] & seen[1]  # each rank reads its own shard

    for workers in (0, 2):
        reference = stream(workers=workers)
        it = iter(reference)
        for _ in range(3):
            next(it)
        state = reference.state_dict()
        expected = [next(it) for _ in range(3)]
        resumed = stream(workers=workers)
        resumed.load_state_dict(json.loads(json.dumps(state)))  # as stored in a checkpoint
        got = [b for _, b in zip(range(3), iter(resumed))]
        assert [b.ids for b in got] == [b.ids for b in expected]
        torch.testing.assert_close(got[0].audio.mel, expected[0].audio.mel)
        assert torch.equal(got[0].error_rates, expected[0].error_rates)


# ----- feature cache -----


@pytest.mark.parametrize("audio_from,text_from", [(1, 1), (2, 2)])  # top layers train / projections only
def test_feature_cache_equals_the_full_forward(corpus, tmp_path, audio_from, text_from):
    towers = towers_for(audio_from, text_from)
    shards = expand_sources(corpus)
    vocabularies = build_vocabularies(read_clips(shards, with_audio=False), 100)
    clips = list(read_clips(shards))[:12]
    cache = build_feature_cache(towers, clips, tmp_path / "cache", signature={"dtype": "float32"},
                                vocabularies=vocabularies, stored=0, num_negatives=3, seed=0, chunk_size=5,
                                batch_size=4, progress=False).attach(towers)
    assert len(cache) == 12
    loss = VoiceCLAPLoss()
    model = towers.model
    indices = [7, 0, 3, 11, 5]  # across chunks, unsorted
    cached = cache.batch(indices)
    # The uncached batch: the same clips decoded and the same (cached) candidate transcripts.
    examples = [make_example(clips[i], 0, 3, vocabularies, seed=0, epoch=0) for i in indices]
    assert [e.id for e in examples] == cached.ids
    full = collate(model, examples)
    with torch.no_grad():
        a_cached, t_cached = towers(cached)
        a_full, t_full = towers(full)
        loss_cached = loss(a_cached, t_cached, cached.error_rates, model.logit_scale, model.logit_bias)
        loss_full = loss(a_full, t_full, full.error_rates, model.logit_scale, model.logit_bias)
    torch.testing.assert_close(a_cached, a_full, rtol=0, atol=1e-5)
    torch.testing.assert_close(t_cached, t_full, rtol=0, atol=1e-5)
    for name in loss_full:
        assert loss_cached[name].item() == pytest.approx(loss_full[name].item(), abs=1e-5)

    # float16 on disk: half the size, close but not exact.
    half = build_feature_cache(towers, clips, tmp_path / "half", signature={"dtype": "float16"},
                               vocabularies=vocabularies, stored=0, num_negatives=3, seed=0, chunk_size=5,
                               progress=False).attach(towers)
    with torch.no_grad():
        a_half, _ = towers(half.batch(indices))
    torch.testing.assert_close(a_half, a_full, rtol=0, atol=2e-2)


def _cache_inputs(corpus, n_clips: int, chunk_size: int) -> tuple[list, dict]:
    """The first ``n_clips`` clips of the corpus and build_feature_cache's other arguments."""
    shards = expand_sources(corpus)
    vocabularies = build_vocabularies(read_clips(shards, with_audio=False), 100)
    common = {"signature": {"dtype": "float32"}, "vocabularies": vocabularies, "stored": 0, "num_negatives": 2,
              "seed": 0, "chunk_size": chunk_size, "progress": False}
    return list(read_clips(shards))[:n_clips], common


def test_bfloat16_feature_cache_stays_close_to_float32(corpus, tmp_path):
    towers = towers_for(2, 2)
    clips, common = _cache_inputs(corpus, 8, chunk_size=8)
    exact = build_feature_cache(towers, clips, tmp_path / "f32", **common).attach(towers).batch(range(8))
    rounded = build_feature_cache(towers, clips, tmp_path / "bf16", audio_dtype=torch.bfloat16,
                                  **common).attach(towers).batch(range(8))
    assert exact.ids == rounded.ids and torch.equal(exact.audio.mask, rounded.audio.mask)
    assert not torch.equal(exact.audio.values, rounded.audio.values)
    cosine = torch.nn.functional.cosine_similarity(exact.audio.values, rounded.audio.values, dim=-1)
    assert cosine[exact.audio.mask].min() > 0.99


def test_texts_are_cached_as_strings_when_no_text_layer_is_frozen(corpus, tmp_path):
    towers = towers_for(2, 0)  # the whole text encoder trains from its (frozen) embeddings up
    shards = expand_sources(corpus)
    vocabularies = build_vocabularies(read_clips(shards, with_audio=False), 100)
    clips = list(read_clips(shards))[:10]
    cache = build_feature_cache(towers, clips, tmp_path / "cache", signature={"dtype": "float32"},
                                vocabularies=vocabularies, stored=0, num_negatives=3, seed=0, chunk_size=4,
                                progress=False).attach(towers)
    assert cache.text_table is None and len(cache.texts) == len(set(cache.texts))  # each text once
    indices = [9, 2, 5]
    cached = cache.batch(indices)
    assert isinstance(cached.texts, TextBatch) and cached.text_index.shape == (3, 4)
    full = collate(towers.model, [make_example(clips[i], 0, 3, vocabularies, seed=0, epoch=0) for i in indices])
    with torch.no_grad():
        (a_cached, t_cached), (a_full, t_full) = towers(cached), towers(full)
    torch.testing.assert_close(a_cached, a_full, rtol=0, atol=1e-5)
    torch.testing.assert_close(t_cached, t_full, rtol=0, atol=1e-5)


def test_teacher_labels_share_the_audio_towers_encoder_pass(corpus, tmp_path):
    from conftest import tiny_whisper, whisper_byte_tokenizer

    from voiceclap import audio as A
    from voiceclap.teacher import EncodedAudio, WhisperTeacher, normalized_scores
    from voiceclap.train.feature_cache import TeacherLabels

    towers = towers_for(2, 2)
    encoder = towers.model.audio.encoder
    whisper = tiny_whisper(whisper_byte_tokenizer(tmp_path), d_model=32, layers=2, heads=2, ffn=64, max_target_positions=448)
    whisper.model.encoder.load_state_dict(encoder.state_dict())  # the teacher's encoder is the tower's
    teacher = WhisperTeacher(whisper, whisper_byte_tokenizer(tmp_path))
    shards = expand_sources(corpus)
    vocabularies = build_vocabularies(read_clips(shards, with_audio=False), 100)
    clips = list(read_clips(shards))[:6]
    cache = build_feature_cache(towers, clips, tmp_path / "cache", signature={"dtype": "float32"},
                                vocabularies=vocabularies, stored=0, num_negatives=2, seed=0, chunk_size=4,
                                teacher=TeacherLabels(teacher, max_clips=3), progress=False).attach(towers)
    labels = cache.batch(range(6)).teacher
    assert torch.isfinite(labels[:3]).all() and torch.isnan(labels[3:]).all()  # the first 3 clips only
    # What the teacher says given the same encoder states, computed on the clip alone.
    example = make_example(clips[1], 0, 2, vocabularies, seed=0, epoch=0)
    samples = A.pad_or_trim(example.audio, -(-len(example.audio) // A.SAMPLES_PER_POOLED_FRAME) * A.SAMPLES_PER_POOLED_FRAME)
    with torch.no_grad():
        states = teacher._encode_samples(samples)
        likelihoods = teacher.log_likelihoods(EncodedAudio(states, False, False),
                                              [example.text, *(c.text for c in example.candidates)], "en")
    np.testing.assert_allclose(labels[1].numpy(), normalized_scores(likelihoods, "mean"), atol=1e-4)


def test_feature_cache_resumes_an_interrupted_build(corpus, tmp_path):
    towers = towers_for(1, 2)
    clips, common = _cache_inputs(corpus, 20, chunk_size=6)

    def interrupted():
        yield from clips[:14]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_feature_cache(towers, interrupted(), tmp_path / "resumed", **common).attach(towers)
    index = json.loads((tmp_path / "resumed" / "index.json").read_text())
    assert [c["clips"] for c in index["chunks"]] == [6, 6] and not index["complete"]
    resumed = build_feature_cache(towers, clips, tmp_path / "resumed", **common).attach(towers)
    straight = build_feature_cache(towers, clips, tmp_path / "straight", **common).attach(towers)
    assert len(resumed) == len(straight) == 20
    a, b = resumed.batch(range(20)), straight.batch(range(20))
    assert a.ids == b.ids and torch.equal(a.error_rates, b.error_rates)
    assert torch.equal(a.audio.values, b.audio.values) and torch.equal(a.texts.values, b.texts.values)
    with pytest.raises(ValueError, match="other settings"):
        build_feature_cache(towers, clips, tmp_path / "straight", **{**common, "signature": {"dtype": "float16"}}).attach(towers)


def test_cached_batches_resume_and_split(corpus, tmp_path):
    towers = towers_for(2, 2)
    shards = expand_sources(corpus)
    vocabularies = build_vocabularies(read_clips(shards, with_audio=False), 100)
    cache = build_feature_cache(towers, list(read_clips(shards))[:30], tmp_path / "c", signature={"dtype": "float32"},
                                vocabularies=vocabularies, stored=0, num_negatives=1, seed=0, progress=False).attach(towers)
    ranks = [iter(CachedBatches(cache, 4, seed=0, rank=r, world_size=2, bucket_size=8)) for r in range(2)]
    first = [next(r).ids for r in ranks]
    assert len(first[0]) == 4 and not set(first[0]) & set(first[1])
    batches = CachedBatches(cache, 5, seed=0)
    it = iter(batches)
    for _ in range(7):  # past the end of the first epoch (6 batches)
        next(it)
    state = batches.state_dict()
    expected = next(it).ids
    again = CachedBatches(cache, 5, seed=0)
    again.load_state_dict(state)
    assert next(iter(again)).ids == expected and state["epoch"] == 1


# ----- training -----


def test_resume_gives_the_same_next_losses(corpus, tmp_path, monkeypatch):
    overrides = ["optim.max_steps=6", "run.save_every=3", "run.eval_every=0", "run.log_every=1",
                 "data.heldout_permille=0", f"cache.dir={tmp_path / 'cache'}"]
    train(tiny_config(corpus, tmp_path / "straight", *overrides))

    save = train_main.ckpt.save_checkpoint

    def save_then_crash(path, state):
        save(path, state)
        raise KeyboardInterrupt  # killed right after the step-3 checkpoint

    monkeypatch.setattr(train_main.ckpt, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(corpus, tmp_path / "resumed", *overrides))
    monkeypatch.setattr(train_main.ckpt, "save_checkpoint", save)
    train(tiny_config(corpus, tmp_path / "resumed", *overrides))

    straight = records(tmp_path / "straight" / "metrics.jsonl", "train")
    resumed = records(tmp_path / "resumed" / "metrics.jsonl", "train")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight, resumed):
        for term in ("loss", "siglip", "hard_negative", "margin", "lr"):
            assert a[term] == pytest.approx(b[term], rel=1e-6, abs=1e-7), (a["step"], term)
    final = [VoiceCLAP.from_pretrained(tmp_path / run / "model").state_dict() for run in ("straight", "resumed")]
    for name, tensor in final[0].items():
        torch.testing.assert_close(final[1][name], tensor, rtol=0, atol=1e-6)


def test_training_separates_true_from_corrupted_transcripts(corpus, hearing_model, tmp_path):
    out = tmp_path / "run"
    config = tiny_config(corpus, out, f"model.init_from={hearing_model}", "model.audio_trainable_from_layer=2",
                         "model.text_trainable_from_layer=2", "optim.lr=1e-2", "optim.max_steps=300",
                         "run.eval_every=0", "run.save_every=0", "data.batch_size=16")
    train(config)
    before, after = records(out / "metrics.jsonl", "eval")
    assert before["step"] == 0 and after["step"] == 300
    assert after["eval/spearman"] < before["eval/spearman"] - 0.2  # scores fall with WER
    assert after["eval/R@1"] > before["eval/R@1"] + 0.2
    # It listens: against another clip's audio its candidates' scores track their WER far less.
    assert after["eval/spearman_other_audio"] > after["eval/spearman"] + 0.2
    assert (out / "loss_curve.png").stat().st_size > 10_000
    train_records = records(out / "metrics.jsonl", "train")
    assert train_records[-1]["loss"] < train_records[0]["loss"]

    # The export is a plain model directory: true transcripts outscore their corruptions on held-out clips.
    model = VoiceCLAP.from_pretrained(out / "model")
    vocabularies = build_vocabularies(read_clips(expand_sources(corpus), with_audio=False), 100)
    held = list(heldout_filter(read_clips(expand_sources(corpus)), 200, keep_heldout=True))[:20]
    examples = [make_example(c, 0, 3, vocabularies, seed=5, epoch=0) for c in held]
    true = model.score_pairs([e.audio for e in examples], [e.text for e in examples])
    corrupted = model.score_pairs([e.audio for e in examples], [e.candidates[-1].text for e in examples])
    assert (true > corrupted).mean() > 0.7


def test_logged_held_out_figures_equal_voiceclap_eval(corpus, hearing_model, tmp_path):
    """The trainer's evaluation is voiceclap eval's: same clips, candidates and functions, same numbers."""
    held_out = tmp_path / "heldout"
    held_out.mkdir()
    write_shard(held_out / "shard-000000.tar", 40, seed=7)
    out = tmp_path / "run"
    train(tiny_config(corpus, out, f"model.init_from={hearing_model}", f"data.eval={held_out}", "data.max_eval_clips=30",
                      "optim.max_steps=20", "run.eval_every=0", "run.seed=3"))
    logged = records(out / "metrics.jsonl", "eval")[-1]
    args = add_eval_arguments(argparse.ArgumentParser()).parse_args([
        "--model", str(out / "model"), "--heldout", str(held_out), "--max-clips", "30", "--seed", "3",
        "--n-boot", "200", "--out", str(tmp_path / "report"), "--no-progress",
    ])
    assert eval_from_args(args) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())["sets"]["heldout"]["results"]["clap"]
    assert logged["eval/clips"] == 30
    assert logged["eval/R@1"] == report["retrieval"]["overall"]["audio_to_text"]["R@1"]
    assert logged["eval/R@5"] == report["retrieval"]["overall"]["audio_to_text"]["R@5"]
    assert logged["eval/T2A_R@1"] == report["retrieval"]["overall"]["text_to_audio"]["R@1"]
    corruption = report["corruption"]
    assert logged["eval/spearman"] == pytest.approx(corruption["pooled"]["spearman"]["value"], abs=1e-9)
    assert logged["eval/spearman_ci95"] == pytest.approx(corruption["pooled"]["spearman"]["ci95"], abs=1e-9)
    assert logged["eval/spearman_en"] == pytest.approx(corruption["by_language"]["en"]["spearman"]["value"], abs=1e-9)
    assert logged["eval/spearman_other_audio"] == pytest.approx(
        corruption["other_audio_control"]["spearman"]["value"], abs=1e-9
    )


def test_streaming_training_with_workers_and_checkpointing(corpus, tmp_path):
    """The uncached (GPU) path: decoding workers, trainable front ends, gradient checkpointing."""
    out = tmp_path / "run"
    config = tiny_config(corpus, out, "cache.enabled=false", "data.num_workers=2", "model.audio_trainable_from_layer=0",
                         "model.text_trainable_from_layer=0", "model.train_text_embeddings=true",
                         "model.gradient_checkpointing=true", "optim.max_steps=3", "run.log_every=1",
                         "data.max_eval_clips=8", "optim.grad_accum_steps=2")
    train(config)
    assert [r["step"] for r in records(out / "metrics.jsonl", "train")] == [1, 2, 3]
    model = VoiceCLAP.from_pretrained(out / "model")
    assert model.config.trained_parameters[:2] == ["audio.head.", "text.head."]
    assert "text.encoder.embeddings." in model.config.trained_parameters


def test_cache_requires_frozen_front_ends(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, "model.audio_trainable_from_layer=0")
    with pytest.raises(ValueError, match="feature cache needs"):
        train(config)


def test_command_line_and_torchrun(corpus, tmp_path):
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    args = parser.parse_args(["--config", str(TINY_RECIPE), f"data.train={corpus}", f"run.out_dir={tmp_path / 'cli'}",
                              "optim.max_steps=2", "run.threads=1"])
    assert train_from_args(args) == 0
    assert (tmp_path / "cli" / "model" / "config.json").exists()

    # Two CPU processes under torchrun: gloo, rank 0 builds the cache while rank 1 waits.
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "voiceclap.train", "--config", str(TINY_RECIPE), f"data.train={corpus}",
               f"run.out_dir={tmp_path / 'ddp'}", "optim.max_steps=3", "run.log_every=1", "run.threads=1",
               "data.batch_size=4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    logged = records(tmp_path / "ddp" / "metrics.jsonl", "train")
    assert [r["step"] for r in logged] == [1, 2, 3]
    assert logged[0]["samples_per_s"] > 0


def test_clip_filter_selects_sources_and_spoken_pairs():
    keep = train_main.clip_filter(["pico", "uqm"], ["uqm"], spoken_negatives=False)
    assert keep("pico", None) and not keep("uqm", None) and not keep("espeak", None)
    assert not keep("pico", "spoken/EN_0000001")  # a clip of a spoken pair
    assert train_main.clip_filter([], [], spoken_negatives=True) is None  # everything
    assert train_main.clip_filter([], [], spoken_negatives=False)("espeak", None)
