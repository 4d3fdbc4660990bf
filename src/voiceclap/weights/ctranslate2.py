"""CTranslate2's ``model.bin`` format, and Whisper converted from it to transformers'
``WhisperEncoder`` (the encoder alone) or ``WhisperForConditionalGeneration`` (encoder and decoder).

The layout is CTranslate2's binary versions 1-6 (see ``read_ct2_model``); the Whisper conversion maps a
``WhisperSpec``'s variable names onto transformers' parameter names.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import WhisperConfig

__all__ = ["CT2Model", "read_ct2_model", "whisper_encoder_from_ct2", "whisper_encoder_variable", "whisper_from_ct2"]

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


def whisper_encoder_variable(name: str) -> bool:
    """The variables the encoder conversion needs (the decoder is described by shapes only)."""
    return name.startswith("encoder/") or name == "decoder/num_heads"


def _linear(v: dict[str, torch.Tensor], state: dict[str, torch.Tensor], src: str, dst: str) -> None:
    state[dst + ".weight"] = _ct2_float(v, src + "/weight")
    state[dst + ".bias"] = _ct2_float(v, src + "/bias")


def _layer_norm(v: dict[str, torch.Tensor], state: dict[str, torch.Tensor], src: str, dst: str) -> None:
    state[dst + ".weight"] = _ct2_float(v, src + "/gamma")
    state[dst + ".bias"] = _ct2_float(v, src + "/beta")


def _fused_projections(v: dict[str, torch.Tensor], state: dict[str, torch.Tensor], src: str,
                       dsts: Sequence[str]) -> None:
    """A CTranslate2 projection that stacks several (q, k, v or k, v, in that order) along its output
    dimension, split into ``dsts``. Its key bias is always zero and has no counterpart: Whisper's
    ``k_proj`` has no bias."""
    weights = _ct2_float(v, src + "/weight").chunk(len(dsts), dim=0)
    biases = _ct2_float(v, src + "/bias").chunk(len(dsts), dim=0)
    for dst, weight, bias in zip(dsts, weights, biases):
        state[dst + ".weight"] = weight
        if not dst.endswith("k_proj"):
            state[dst + ".bias"] = bias
        elif torch.count_nonzero(bias):
            raise ValueError(f"{src}: non-zero key bias, which Whisper cannot represent")


def _self_attention_and_ffn(v: dict[str, torch.Tensor], state: dict[str, torch.Tensor], src: str,
                            dst: str) -> None:
    """The parts an encoder and a decoder layer share: self-attention and feed-forward, each pre-norm."""
    _fused_projections(v, state, src + "self_attention/linear_0",
                       [dst + "self_attn.q_proj", dst + "self_attn.k_proj", dst + "self_attn.v_proj"])
    _linear(v, state, src + "self_attention/linear_1", dst + "self_attn.out_proj")
    _layer_norm(v, state, src + "self_attention/layer_norm", dst + "self_attn_layer_norm")
    _linear(v, state, src + "ffn/linear_0", dst + "fc1")
    _linear(v, state, src + "ffn/linear_1", dst + "fc2")
    _layer_norm(v, state, src + "ffn/layer_norm", dst + "final_layer_norm")


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # One storage per tensor (q, k, v are views of the fused one): older safetensors releases
    # refuse to save tensors that share memory.
    return {k: t.clone(memory_format=torch.contiguous_format) for k, t in state.items()}


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
        _linear(v, state, f"encoder/{conv}", conv)
    state["embed_positions.weight"] = _ct2_float(v, "encoder/position_encodings/encodings")
    _layer_norm(v, state, "encoder/layer_norm", "layer_norm")
    encoder_layers = _count_layers(v, "encoder/")
    for i in range(encoder_layers):
        _self_attention_and_ffn(v, state, f"encoder/layer_{i}/", f"layers.{i}.")
    state = _contiguous(state)

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


def whisper_from_ct2(model: CT2Model) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """Map a whole CTranslate2 ``WhisperSpec`` (all variables loaded) onto transformers'
    ``WhisperForConditionalGeneration``.

    Returns ``(WhisperConfig, state_dict)`` keyed as that model's ``state_dict()`` without
    ``proj_out.weight``: the output projection is tied to the token embeddings, as in Whisper (and as
    CTranslate2 stores it, an alias). The encoder is :func:`whisper_encoder_from_ct2`'s. Each decoder
    layer adds to the encoder's layout a cross-attention whose query is ``attention/linear_0``, whose
    key and value are fused in ``attention/linear_1`` (k, then v) and whose output is
    ``attention/linear_2``. Token embeddings are not scaled (CTranslate2's ``scale_embeddings`` is
    off for Whisper, as transformers' ``scale_embedding``).
    """
    config, encoder = whisper_encoder_from_ct2(model)
    v = model.variables
    if model.aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ValueError("the decoder's output projection is not tied to its token embeddings")
    if int(v["decoder/scale_embeddings"]):
        raise ValueError("scaled decoder embeddings, which WhisperDecoder does not apply")
    state = {f"model.encoder.{name}": tensor for name, tensor in encoder.items()}
    decoder: dict[str, torch.Tensor] = {
        "embed_tokens.weight": _ct2_float(v, "decoder/embeddings/weight"),
        "embed_positions.weight": _ct2_float(v, "decoder/position_encodings/encodings"),
    }
    _layer_norm(v, decoder, "decoder/layer_norm", "layer_norm")
    for i in range(config.decoder_layers):
        src, dst = f"decoder/layer_{i}/", f"layers.{i}."
        _self_attention_and_ffn(v, decoder, src, dst)
        _linear(v, decoder, src + "attention/linear_0", dst + "encoder_attn.q_proj")
        _fused_projections(v, decoder, src + "attention/linear_1",
                           [dst + "encoder_attn.k_proj", dst + "encoder_attn.v_proj"])
        _linear(v, decoder, src + "attention/linear_2", dst + "encoder_attn.out_proj")
        _layer_norm(v, decoder, src + "attention/layer_norm", dst + "encoder_attn_layer_norm")
    state.update({f"model.decoder.{name}": tensor for name, tensor in _contiguous(decoder).items()})
    return config, state
