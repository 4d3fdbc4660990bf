"""Model: pooling modes, tokenizer truncation, checkpoints (full and trained-parts-only)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import random_model, tone

from voiceclap import audio as A
from voiceclap.model import MissingWeightsError, VoiceCLAP


def _waves():
    rng = np.random.default_rng(1)
    return [tone(300, 1.1) + 0.05 * rng.standard_normal(int(1.1 * A.SAMPLE_RATE)).astype(np.float32), tone(500, 4.3)]


def _seed_pooling_copy(model: VoiceCLAP) -> VoiceCLAP:
    config = dataclasses.replace(model.config, audio_pooling="seed")
    seed = VoiceCLAP.from_config(config, load_base_weights=False)
    seed.load_state_dict(model.state_dict())
    return seed.eval()


def test_masked_pooling_ignores_padding_and_batch_composition(tiny_model):
    short, long = _waves()
    alone = tiny_model.encode_audio([short])
    with_long = tiny_model.encode_audio([short, long])
    with_long_reversed = tiny_model.encode_audio([long, short])
    torch.testing.assert_close(with_long[0], alone[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(with_long_reversed[1], alone[0], atol=1e-5, rtol=0)
    # Masked mode pads a batch only to its longest clip, not to 30 s.
    assert tiny_model.prepare_audio([short, long]).mel.shape[-1] < A.N_FRAMES


def test_seed_pooling_pads_to_30_s_and_differs_from_masked(tiny_model):
    seed = _seed_pooling_copy(tiny_model)
    short, long = _waves()
    batch = seed.prepare_audio([short, long])
    assert batch.mel.shape == (2, tiny_model.audio.n_mels, A.N_FRAMES)
    assert batch.mel_lengths.tolist() == [A.N_FRAMES, A.N_FRAMES]
    seed_emb, masked_emb = seed.encode_audio([short]), tiny_model.encode_audio([short])
    assert not torch.allclose(seed_emb, masked_emb, atol=1e-3)  # padding frames count in the seed's mean
    # Every clip is padded to 30 s, so batch composition does not matter here either.
    torch.testing.assert_close(seed.encode_audio([short, long])[0], seed_emb[0], atol=1e-5, rtol=0)


def test_tokenizer_reports_truncation_instead_of_cutting_silently(tiny_model):
    limit = tiny_model.config.text_max_length
    batch = tiny_model.tokenize(["short one", "x" * (limit * 2)])
    assert batch.truncated == [False, True]
    assert batch.input_ids.shape[1] == limit
    # Exactly at the limit (byte-level: one token per byte, plus <s> and </s>) is not truncated.
    assert tiny_model.tokenize(["y" * (limit - 2)]).truncated == [False]
    assert tiny_model.tokenize(["y" * (limit - 1)]).truncated == [True]


def test_save_load_round_trip_gives_identical_scores(tiny_model, tmp_path):
    waves, texts = _waves(), ["one transcript", "another, longer transcript"]
    tiny_model.save_pretrained(tmp_path / "m")
    loaded = VoiceCLAP.from_pretrained(tmp_path / "m")
    assert loaded.config == dataclasses.replace(tiny_model.config, base_checksums=None)
    np.testing.assert_array_equal(loaded.score_pairs(waves, texts), tiny_model.score_pairs(waves, texts))


def _save_audio_base(encoder, directory) -> None:
    """A whole (tiny) Whisper checkpoint holding `encoder`, laid out as hub ids are."""
    from transformers import WhisperConfig, WhisperModel

    config = WhisperConfig(**{**encoder.config.to_dict(), "decoder_layers": 1, "decoder_attention_heads": 2, "decoder_ffn_dim": 64})
    whole = WhisperModel(config)
    whole.encoder.load_state_dict(encoder.state_dict())
    whole.save_pretrained(directory)


def _with_local_bases(model: VoiceCLAP, directory):
    """The model's encoders saved as base-encoder directories its config names as sources."""
    _save_audio_base(model.audio.encoder, directory / "audio-base")
    model.text.encoder.save_pretrained(directory / "text-base")
    model.config = dataclasses.replace(
        model.config,
        audio_encoder=str(directory / "audio-base"),
        text_encoder=str(directory / "text-base"),
        trained_parameters=["audio.head.", "text.head.", "logit_scale", "logit_bias"],
    )
    return model


def test_trained_weights_round_trip_and_base_checksum(tmp_path):
    model = _with_local_bases(random_model(), tmp_path)
    model.save_pretrained(tmp_path / "m", weights="trained")
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "m" / "model.safetensors")
    assert saved and all(k.startswith(tuple(model.config.trained_parameters)) for k in saved)
    waves, texts = _waves(), ["one transcript", "another one"]
    loaded = VoiceCLAP.from_pretrained(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score_pairs(waves, texts), model.score_pairs(waves, texts))

    # A changed base encoder no longer matches the checksum the trained parts were saved with.
    with torch.no_grad():
        model.audio.encoder.conv1.weight.add_(0.01)
    _save_audio_base(model.audio.encoder, tmp_path / "audio-base")
    with pytest.raises(MissingWeightsError, match="audio base encoder"):
        VoiceCLAP.from_pretrained(tmp_path / "m")


def test_trained_weights_need_base_encoders_that_come_from_a_source(tmp_path):
    model = random_model()  # encoders built from an architecture: nothing to pin them by
    model.config = dataclasses.replace(model.config, trained_parameters=["audio.head.proj", "text.head"])
    with pytest.raises(ValueError, match="comes from no source"):
        model.save_pretrained(tmp_path / "m", weights="trained")


def test_base_checksum_reads_the_weight_files(tmp_path):
    from voiceclap.weights import weight_files_checksum

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no weight files"):
        weight_files_checksum(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    first = weight_files_checksum(str(tmp_path))
    (tmp_path / "config.json").write_text('{"changed": true}')  # not a weight file
    assert weight_files_checksum(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert weight_files_checksum(str(tmp_path)) != first


def test_score_pairs_accepts_paths_and_waveforms(tiny_model, tmp_path):
    from conftest import write_audio

    wave = tone(440, 1.0)
    path = write_audio(tmp_path / "a.wav", wave, subtype="FLOAT")
    by_path = tiny_model.score(str(path), "hello")
    assert by_path == pytest.approx(tiny_model.score(wave, "hello"), abs=1e-6)
    assert -1.0 <= by_path <= 1.0


@pytest.mark.parametrize(("user_setting", "expected"), [(None, "8"), ("64", "64")])
def test_onednn_primitive_cache_is_small_once_a_model_loads_unless_the_user_sized_it(user_setting, expected):
    # Masked pooling convolves a new length almost every batch; a per-shape primitive cache only grows,
    # while one forward pass's few shapes are reused. Importing changes nothing; the entry points
    # (load_model, the CLI) set it.
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if user_setting is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = user_setting
    code = (
        "import os, voiceclap.model as m; before = os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY'); "
        "m.load_model('random:tiny-test'); print(before, os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == [str(user_setting), expected]


def test_bfloat16_audio_encoder_keeps_embeddings_and_refuses_to_save(tmp_path):
    exact, rounded = random_model(), random_model()
    rounded.audio.set_encoder_dtype(torch.bfloat16)
    waves = _waves()
    cosine = (exact.encode_audio(waves) * rounded.encode_audio(waves)).sum(-1)
    assert cosine.min() > 0.99  # rounded weights and products, float32 norms and residual stream
    assert not torch.equal(exact.encode_audio(waves), rounded.encode_audio(waves))
    assert exact.encode_text(["a text"]).equal(rounded.encode_text(["a text"]))  # the text tower untouched
    with pytest.raises(ValueError, match="float32"):
        rounded.save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match="load the model again"):
        rounded.audio.set_encoder_dtype(torch.float16)


def test_audio_precision_resolves_by_name_and_device(monkeypatch):
    from voiceclap.model import audio_encoder_dtype

    assert audio_encoder_dtype("float32") is torch.float32
    assert audio_encoder_dtype("bfloat16") is torch.bfloat16
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert audio_encoder_dtype("auto") is torch.bfloat16
    assert audio_encoder_dtype("auto", "cuda:0") is torch.float32  # not measured there: left as trained
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert audio_encoder_dtype("auto") is torch.float32
    with pytest.raises(ValueError, match="audio_precision"):
        audio_encoder_dtype("int4")
