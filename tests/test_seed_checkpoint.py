"""The seed's open_clip `model.pt` imports exactly: checked against a forward pass written here from
scratch on the raw checkpoint tensors (openai-whisper and BERT arithmetic), independent of the model code."""

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from voiceclap import audio as A
from voiceclap.config import get_model_config
from voiceclap.model import MissingWeightsError
from voiceclap.seed_checkpoint import import_seed_checkpoint

AUDIO_WIDTH, AUDIO_LAYERS, AUDIO_HEADS = 32, 2, 2
TEXT_WIDTH, TEXT_LAYERS, TEXT_HEADS, VOCAB = 24, 2, 2, 260
JOINT = 40
TEXT_HIDDEN = (TEXT_WIDTH + JOINT) // 2


def seed_config():
    """The seed's architecture choices (seed pooling, pad-id quirk, 77 padded tokens) at toy size."""
    return dataclasses.replace(
        get_model_config("whisper-small-mMiniLM"),
        name="seed-layout-test",
        audio_encoder=None,
        audio_encoder_config={
            "d_model": AUDIO_WIDTH, "encoder_layers": AUDIO_LAYERS, "encoder_attention_heads": AUDIO_HEADS,
            "encoder_ffn_dim": 2 * AUDIO_WIDTH, "num_mel_bins": 80, "max_source_positions": 1500,
        },
        text_encoder=None,
        text_encoder_config={
            "model_type": "bert", "vocab_size": VOCAB, "hidden_size": TEXT_WIDTH, "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": TEXT_HEADS, "intermediate_size": 2 * TEXT_WIDTH, "max_position_embeddings": 128,
            "type_vocab_size": 2, "pad_token_id": 0,
        },
        tokenizer="byte-level",
        joint_dim=JOINT,
    )


def seed_state_dict(generator) -> dict[str, torch.Tensor]:
    """Random tensors under the exact names and shapes the seed's training stack writes."""
    def rand(*shape):
        return torch.randn(*shape, generator=generator) * 0.2

    def norm(prefix, width):
        return {f"{prefix}.weight": 1 + rand(width), f"{prefix}.bias": rand(width)}

    d, sd = AUDIO_WIDTH, {}
    sd["audio.encoder.conv1.weight"], sd["audio.encoder.conv1.bias"] = rand(d, 80, 3), rand(d)
    sd["audio.encoder.conv2.weight"], sd["audio.encoder.conv2.bias"] = rand(d, d, 3), rand(d)
    sd["audio.encoder.positional_embedding"] = rand(1500, d)
    sd["audio.encoder.audio_bos_eos_token"] = rand(2, d)
    for i in range(AUDIO_LAYERS):
        b = f"audio.encoder.blocks.{i}"
        for name in ("query", "value", "out"):
            sd[f"{b}.attn.{name}.weight"], sd[f"{b}.attn.{name}.bias"] = rand(d, d), rand(d)
        sd[f"{b}.attn.key.weight"] = rand(d, d)
        sd.update(norm(f"{b}.attn_ln", d))
        sd[f"{b}.mlp.0.weight"], sd[f"{b}.mlp.0.bias"] = rand(2 * d, d), rand(2 * d)
        sd[f"{b}.mlp.2.weight"], sd[f"{b}.mlp.2.bias"] = rand(d, 2 * d), rand(d)
        sd.update(norm(f"{b}.mlp_ln", d))
    sd.update(norm("audio.encoder.ln_post", d))
    sd["audio.encoder.proj.weight"], sd["audio.encoder.proj.bias"] = rand(d, d), rand(d)
    sd["audio.proj.0.weight"], sd["audio.proj.0.bias"] = rand(JOINT, d), rand(JOINT)
    sd["audio.proj.2.weight"], sd["audio.proj.2.bias"] = rand(JOINT, JOINT), rand(JOINT)

    w, t = TEXT_WIDTH, "text.transformer"
    sd[f"{t}.embeddings.word_embeddings.weight"] = rand(VOCAB, w)
    sd[f"{t}.embeddings.position_embeddings.weight"] = rand(128, w)
    sd[f"{t}.embeddings.token_type_embeddings.weight"] = rand(2, w)
    sd[f"{t}.embeddings.position_ids"] = torch.arange(128)[None]
    sd.update(norm(f"{t}.embeddings.LayerNorm", w))
    for i in range(TEXT_LAYERS):
        b = f"{t}.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            sd[f"{b}.attention.self.{name}.weight"], sd[f"{b}.attention.self.{name}.bias"] = rand(w, w), rand(w)
        sd[f"{b}.attention.output.dense.weight"], sd[f"{b}.attention.output.dense.bias"] = rand(w, w), rand(w)
        sd.update(norm(f"{b}.attention.output.LayerNorm", w))
        sd[f"{b}.intermediate.dense.weight"], sd[f"{b}.intermediate.dense.bias"] = rand(2 * w, w), rand(2 * w)
        sd[f"{b}.output.dense.weight"], sd[f"{b}.output.dense.bias"] = rand(w, 2 * w), rand(w)
        sd.update(norm(f"{b}.output.LayerNorm", w))
    sd["text.proj.0.weight"], sd["text.proj.2.weight"] = rand(TEXT_HIDDEN, w), rand(JOINT, TEXT_HIDDEN)
    sd["logit_scale"], sd["logit_bias"] = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    return sd


def attention(x, q_w, q_b, k_w, k_b, v_w, v_b, heads, key_mask=None):
    batch, length, width = x.shape
    split = lambda y: y.view(batch, length, heads, width // heads).transpose(1, 2)
    q, k, v = split(F.linear(x, q_w, q_b)), split(F.linear(x, k_w, k_b)), split(F.linear(x, v_w, v_b))
    scores = q @ k.transpose(-1, -2) / math.sqrt(width // heads)
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)


def reference_audio(sd, mel):
    """openai-whisper encoder as the seed modified it: blocks, avg-pool 2, ln_post, proj, mean, MLP."""
    e = "audio.encoder"
    x = F.gelu(F.conv1d(mel, sd[f"{e}.conv1.weight"], sd[f"{e}.conv1.bias"], padding=1))
    x = F.gelu(F.conv1d(x, sd[f"{e}.conv2.weight"], sd[f"{e}.conv2.bias"], stride=2, padding=1)).transpose(1, 2)
    x = x + sd[f"{e}.positional_embedding"]
    for i in range(AUDIO_LAYERS):
        b = f"{e}.blocks.{i}"
        h = F.layer_norm(x, (AUDIO_WIDTH,), sd[f"{b}.attn_ln.weight"], sd[f"{b}.attn_ln.bias"])
        h = attention(h, sd[f"{b}.attn.query.weight"], sd[f"{b}.attn.query.bias"], sd[f"{b}.attn.key.weight"], None,
                      sd[f"{b}.attn.value.weight"], sd[f"{b}.attn.value.bias"], AUDIO_HEADS)
        x = x + F.linear(h, sd[f"{b}.attn.out.weight"], sd[f"{b}.attn.out.bias"])
        h = F.layer_norm(x, (AUDIO_WIDTH,), sd[f"{b}.mlp_ln.weight"], sd[f"{b}.mlp_ln.bias"])
        h = F.linear(F.gelu(F.linear(h, sd[f"{b}.mlp.0.weight"], sd[f"{b}.mlp.0.bias"])), sd[f"{b}.mlp.2.weight"], sd[f"{b}.mlp.2.bias"])
        x = x + h
    x = F.avg_pool1d(x.transpose(1, 2), 2).transpose(1, 2)
    x = F.layer_norm(x, (AUDIO_WIDTH,), sd[f"{e}.ln_post.weight"], sd[f"{e}.ln_post.bias"])
    x = F.linear(x, sd[f"{e}.proj.weight"], sd[f"{e}.proj.bias"]).mean(1)
    x = F.gelu(F.linear(x, sd["audio.proj.0.weight"], sd["audio.proj.0.bias"]))
    return F.normalize(F.linear(x, sd["audio.proj.2.weight"], sd["audio.proj.2.bias"]), dim=-1)


def reference_text(sd, input_ids):
    """BERT with the seed's mask (ids != config pad id 0), mean pooling, bias-free MLP."""
    t = "text.transformer"
    mask = input_ids != 0
    positions = torch.arange(input_ids.shape[1])
    x = sd[f"{t}.embeddings.word_embeddings.weight"][input_ids] + sd[f"{t}.embeddings.position_embeddings.weight"][positions]
    x = x + sd[f"{t}.embeddings.token_type_embeddings.weight"][0]
    ln = lambda y, p: F.layer_norm(y, (TEXT_WIDTH,), sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-12)
    x = ln(x, f"{t}.embeddings.LayerNorm")
    for i in range(TEXT_LAYERS):
        b = f"{t}.encoder.layer.{i}"
        s = f"{b}.attention.self"
        h = attention(x, sd[f"{s}.query.weight"], sd[f"{s}.query.bias"], sd[f"{s}.key.weight"], sd[f"{s}.key.bias"],
                      sd[f"{s}.value.weight"], sd[f"{s}.value.bias"], TEXT_HEADS, key_mask=mask)
        x = ln(x + F.linear(h, sd[f"{b}.attention.output.dense.weight"], sd[f"{b}.attention.output.dense.bias"]), f"{b}.attention.output.LayerNorm")
        h = F.gelu(F.linear(x, sd[f"{b}.intermediate.dense.weight"], sd[f"{b}.intermediate.dense.bias"]))
        x = ln(x + F.linear(h, sd[f"{b}.output.dense.weight"], sd[f"{b}.output.dense.bias"]), f"{b}.output.LayerNorm")
    m = mask[..., None].float()
    pooled = (x * m).sum(1) / m.sum(1)
    pooled = F.linear(F.gelu(F.linear(pooled, sd["text.proj.0.weight"])), sd["text.proj.2.weight"])
    return F.normalize(pooled, dim=-1)


@pytest.fixture(scope="module")
def seed_checkpoint(tmp_path_factory):
    sd = seed_state_dict(torch.Generator().manual_seed(0))
    path = tmp_path_factory.mktemp("seed") / "model.pt"
    # As the seed's DDP training wrote it: `module.` prefixes, epoch and name beside the weights.
    torch.save({"epoch": 8, "name": "whisper-small-mMiniLM", "state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
    return path, sd


def test_import_matches_independent_forward(seed_checkpoint):
    path, sd = seed_checkpoint
    model = import_seed_checkpoint(path, seed_config())
    rng = np.random.default_rng(1)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 40000)]
    texts = ["the quick brown fox", "Größere Übung macht den Meister, 你好"]

    ours_audio = model.encode_audio(waves)
    mel = torch.stack([A.log_mel_spectrogram(A.pad_or_trim(w)) for w in waves])
    assert mel.shape[-1] == A.N_FRAMES  # the seed always sees 30 s
    torch.testing.assert_close(ours_audio, reference_audio(sd, mel), atol=1e-5, rtol=1e-4)

    ours_text = model.encode_text(texts)
    ids = model.tokenize(texts).input_ids
    assert ids.shape[1] == 77  # padded to the seed's 77 tokens, pads counted in the mean as there
    torch.testing.assert_close(ours_text, reference_text(sd, ids), atol=1e-5, rtol=1e-4)
    assert model.logit_bias.item() == pytest.approx(-10.0)


def test_every_tensor_is_used_and_filled(seed_checkpoint, tmp_path):
    _, sd = seed_checkpoint
    extra = dict(sd, **{"audio.encoder.surprise.weight": torch.zeros(2)})
    torch.save({"state_dict": extra}, tmp_path / "extra.pt")
    with pytest.raises(MissingWeightsError, match="surprise"):
        import_seed_checkpoint(tmp_path / "extra.pt", seed_config())

    short = {k: v for k, v in sd.items() if k != "text.proj.2.weight"}
    torch.save({"state_dict": short}, tmp_path / "short.pt")
    with pytest.raises(MissingWeightsError, match="lacks 1 tensors"):
        import_seed_checkpoint(tmp_path / "short.pt", seed_config())


class _Payload:
    """A pickle that, if unpickled without restriction, would create a file."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_malicious_pickle_is_refused(tmp_path):
    target = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"state_dict": {"logit_scale": _Payload(target)}}, f)
    with pytest.raises(pickle.UnpicklingError):
        import_seed_checkpoint(tmp_path / "evil.pt", seed_config())
    assert not target.exists()


def test_converted_model_round_trips(seed_checkpoint, tmp_path):
    path, _ = seed_checkpoint
    model = import_seed_checkpoint(path, seed_config())
    model.save_pretrained(tmp_path / "converted")
    from voiceclap.model import VoiceCLAP

    again = VoiceCLAP.from_pretrained(tmp_path / "converted")
    wave = np.random.default_rng(2).standard_normal(24000).astype(np.float32) * 0.1
    assert again.score(wave, "hello") == pytest.approx(model.score(wave, "hello"), abs=1e-6)
