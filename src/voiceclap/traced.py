"""The model as TorchScript: a first score without transformers.

Loading a :class:`voiceclap.model.VoiceCLAP` imports transformers (seconds before anything else
happens), builds both encoders through it, loads the tokenizer through it and checks the base
weights; a one-pair ``voiceclap score`` paid all of that on every call. A traced model is made once
per model and machine, from the loaded float32 model, and loads with torch and tokenizers alone::

    <cache root>/traced/<key>/
        config.json        the model's ModelConfig
        audio.pt, text.pt  the towers, L2-normalized embeddings out, as TorchScript
        word_embeddings.npy  the text encoder's word-embedding table, memory-mapped: a score reads
                           the rows of its tokens, not e5's whole 384 MB table
        tokenizer.json     the tokenizer the model uses, for the tokenizers library
        sentencepiece.model  the same tokenizer for SentencePiece, where it is one (XLM-R's, e5's):
                           it loads in a fraction of the time (250,002 pieces)
        traced.json        what the towers were traced from (mel bands, padding id)
        calibration.json   when the model has one

``key`` hashes the model directory's path and files (name, size, mtime), the torch and voiceclap
versions and TRACE_FORMAT: a changed model is traced again, and the base encoders are those the model was checked
against when it was traced. A :class:`TracedCLAP` offers what :class:`voiceclap.scoring.ClapBackend`
needs of a model; it computes in float32 on a CPU.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import os
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import audio as A
from .config import CALIBRATION_NAME, CONFIG_NAME, ModelConfig
from .text import clean_text
from .towers import AudioBatch, TextBatch

if TYPE_CHECKING:
    from .model import VoiceCLAP

TRACED_DIR = "traced"
AUDIO_NAME = "audio.pt"
TEXT_NAME = "text.pt"
WORD_TABLE_NAME = "word_embeddings.npy"
TOKENIZER_NAME = "tokenizer.json"
SENTENCEPIECE_NAME = "sentencepiece.model"
TRACE_FORMAT = 2  # the directory's layout, part of its key: a new layout is traced again
META_NAME = "traced.json"  # written last: a directory without it is an interrupted trace
# A traced tower must give the model's embeddings on inputs of another shape than it was traced on
# (a trace records operations, not the Python that chose them): at most this far apart.
PARITY_TOLERANCE = 1e-4
# A SentencePiece form of the tokenizer is kept only if it gives the same ids on all of these.
TOKENIZER_PROBES = [
    "The quick brown fox jumps over the lazy dog.", "Grüße aus Köln, 1.234,56 €!", "¿Qué tal? l'homme d’affaires",
    "Привет, мир", "日本語のテキストです。", "中文句子，没有空格", "ﬁ ligature ① ½ Ⅻ", "  extra   spaces\tand\u00a0nbsp ",
    "emoji 🙂 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ಕನ್ನಡ ไทย العربية עברית", "x",
]


class CannotTrace(RuntimeError):
    """The model has no faithful traced form: its tokenizer is a slow (Python) one, or a traced tower
    did not reproduce the model on a batch shaped unlike the one it was traced on."""


class _NormalizedTower(nn.Module):
    """A tower on plain tensors (what torch.jit.trace takes) -> L2-normalized embeddings;
    ``make_batch`` builds the tower's batch from them."""

    def __init__(self, tower: nn.Module, make_batch: Callable[..., AudioBatch | TextBatch]):
        super().__init__()
        self.tower = tower
        self.make_batch = make_batch

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.tower(self.make_batch(*tensors)), dim=-1)


def _without_word_table(text_tower: nn.Module) -> nn.Module:
    """A copy of the text tower whose word-embedding table is a one-row stand-in: the traced model
    reads the rows it needs from a memory-mapped file instead of loading e5's 384 MB table."""
    tower = copy.deepcopy(text_tower)
    table = tower.encoder.embeddings.word_embeddings
    tower.encoder.embeddings.word_embeddings = nn.Embedding(1, table.embedding_dim)
    return tower


def _noise(*seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [0.1 * rng.standard_normal(int(s * A.SAMPLE_RATE)).astype(np.float32) for s in seconds]


def trace_model(model: VoiceCLAP, directory: str | os.PathLike) -> None:
    """Write ``model`` (float32, on a CPU) traced into ``directory``.

    Each tower is traced on a padded batch of two (so that its masks are exercised) and checked on
    one input of another length; a gap over PARITY_TOLERANCE raises :class:`CannotTrace`."""
    if model.audio.encoder_dtype != torch.float32 or model.device.type != "cpu":
        raise ValueError("trace a float32 model on the CPU (load_model(spec, 'cpu', 'float32'))")
    tokenizer = getattr(model.tokenizer, "backend_tokenizer", None)
    if tokenizer is None:
        raise CannotTrace(f"{type(model.tokenizer).__name__} is not a fast tokenizer (no tokenizer.json)")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table = model.text.encoder.embeddings.word_embeddings.weight.detach()
    np.save(directory / WORD_TABLE_NAME, table.float().numpy())

    def text_inputs(texts: list[str]) -> tuple[torch.Tensor, ...]:
        batch = model.tokenize(texts)
        return batch.input_ids, batch.attention_mask, table[batch.input_ids]

    def audio_inputs(clips: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
        batch = model.prepare_audio(clips)
        return batch.mel, batch.mel_lengths

    towers = {  # name: (tower, its inputs, example traced on, probe of another shape)
        AUDIO_NAME: (_NormalizedTower(model.audio, lambda mel, lengths: AudioBatch(mel, lengths, [])), audio_inputs,
                     _noise(2.0, 1.3), _noise(3.1)),
        TEXT_NAME: (_NormalizedTower(_without_word_table(model.text),
                                     lambda ids, mask, vectors: TextBatch(ids, mask, [], vectors)), text_inputs,
                    ["a b", "the quick brown fox jumps over the lazy dog"], ["Hello there, world!"]),
    }
    references = {AUDIO_NAME: lambda x: model.encode_audio(x), TEXT_NAME: lambda x: model.encode_text(x)}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the check below is what decides
        warnings.simplefilter("ignore", FutureWarning)  # transformers' notices about its own internals
        for name, (tower, inputs, example, probe) in towers.items():
            traced = torch.jit.trace(tower, inputs(example), check_trace=False)
            gap = float((traced(*inputs(probe)) - references[name](probe)).abs().max())
            if gap > PARITY_TOLERANCE:
                raise CannotTrace(f"traced {name.removesuffix('.pt')} tower is {gap:.2g} off the model")
            torch.jit.save(traced, str(directory / name))
    tokenizer.save(str(directory / TOKENIZER_NAME))
    specials = _write_sentencepiece(tokenizer, directory / SENTENCEPIECE_NAME)
    model.config.to_json(directory / CONFIG_NAME)
    if model.calibration is not None:
        model.calibration.save(directory / CALIBRATION_NAME)
    meta = {"n_mels": model.audio.n_mels, "pad_token_id": model.tokenizer.pad_token_id, "sentencepiece": specials,
            "voiceclap": __version__, "torch": torch.__version__}
    (directory / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


class TracedCLAP:
    """A traced model (see the module docstring): tokenize and prepare audio as the model does, and
    embed with its traced towers. For a VoiceCLAP's other uses (training, saving, GPUs, bfloat16),
    load the model itself."""

    def __init__(self, directory: str | os.PathLike):
        directory = Path(directory)
        meta = json.loads((directory / META_NAME).read_text(encoding="utf-8"))
        self.config = ModelConfig.from_json(directory / CONFIG_NAME)
        self.n_mels = meta["n_mels"]
        self.device = torch.device("cpu")
        self.pad_token_id = meta["pad_token_id"]
        self.audio = torch.jit.load(str(directory / AUDIO_NAME))
        self.text = torch.jit.load(str(directory / TEXT_NAME))
        self.word_table = np.load(directory / WORD_TABLE_NAME, mmap_mode="r")
        self._encode = _encoder(directory, meta, self.config.text_max_length)
        self.calibration = None
        if (directory / CALIBRATION_NAME).exists():
            from .calibration import Calibration

            self.calibration = Calibration.load(directory / CALIBRATION_NAME)

    def eval(self) -> TracedCLAP:
        return self  # traced in eval mode

    def prepare_audio(self, waveforms: Sequence[np.ndarray]) -> AudioBatch:
        return AudioBatch.from_waveforms(waveforms, self.n_mels, self.config.max_audio_seconds, self.config.audio_pooling)

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        """As the model's tokenize: clean, prefix, cut at text_max_length (flagged), pad."""
        rows = self._encode([self.config.text_prefix + clean_text(t) for t in texts])
        width = self.config.text_max_length if self.config.text_pad_to_max_length else max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, _) in enumerate(rows):
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention_mask[i, : len(ids)] = 1
        return TextBatch(input_ids, attention_mask, [truncated for _, truncated in rows])

    # TorchScript's profiling executor spends a graph's first runs profiling and re-optimizing it; for
    # these graphs of large matrix products that bought nothing: one pair scored in 0.12-0.14 s without
    # it against 0.22-0.28 s with it (the shipped model, first call), 0.07-0.10 against 0.16-0.19 s after.
    @torch.inference_mode()
    def embed_audio_batch(self, batch: AudioBatch) -> torch.Tensor:
        with torch.jit.optimized_execution(False):
            return self.audio(batch.mel, batch.mel_lengths)

    @torch.inference_mode()
    def embed_text_batch(self, batch: TextBatch) -> torch.Tensor:
        vectors = torch.from_numpy(self.word_table[batch.input_ids.numpy()])  # reads those rows only
        with torch.jit.optimized_execution(False):
            return self.text(batch.input_ids, batch.attention_mask, vectors)

    def estimate_wer(self, scores: np.ndarray) -> np.ndarray | None:
        return None if self.calibration is None else self.calibration.predict(np.asarray(scores))


def traced_key(model_dir: Path) -> str:
    """What a traced model depends on: the model directory's path and files, torch and voiceclap."""
    digest = hashlib.sha256(f"{model_dir.resolve()}\0{torch.__version__}\0{__version__}\0{TRACE_FORMAT}\0".encode())
    for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()[:24]


Encoder = Callable[[Sequence[str]], list[tuple[list[int], bool]]]  # texts -> (ids cut at the limit, cut?)


def _encoder(directory: Path, meta: dict, limit: int) -> Encoder:
    """The traced model's tokenizer: its SentencePiece form where it has one, else tokenizers'."""
    tokenizers_encoder = functools.cache(lambda: _tokenizers_encoder(directory / TOKENIZER_NAME, limit))
    if meta["sentencepiece"]:
        return _sentencepiece_encoder(directory / SENTENCEPIECE_NAME, limit, meta["sentencepiece"], tokenizers_encoder)
    return lambda texts: tokenizers_encoder()(texts)


def _tokenizers_encoder(path: Path, limit: int) -> Encoder:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(limit)  # as transformers asks it: specials kept, text cut

    def encode(texts: Sequence[str]) -> list[tuple[list[int], bool]]:
        return [(e.ids, bool(e.overflowing)) for e in tokenizer.encode_batch(list(texts))]

    return encode


def _sentencepiece_encoder(path: Path, limit: int, specials: dict, fallback: Callable[[], Encoder]) -> Encoder:
    """<s> pieces </s>, cut to ``limit``. A text that spells out a special token (``<mask>``) goes to
    the tokenizers library, which matches those in raw text where SentencePiece does not."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    bos, eos, spelled = specials["bos"], specials["eos"], specials["spelled"]

    def encode(texts: Sequence[str]) -> list[tuple[list[int], bool]]:
        if any(token in text for text in texts for token in spelled):
            return fallback()(texts)
        return [([bos, *ids[: limit - 2], eos], len(ids) + 2 > limit) for ids in processor.encode(list(texts))]

    return encode


def _write_sentencepiece(tokenizer, path: Path) -> dict | None:
    """Write ``tokenizer`` (a tokenizers.Tokenizer) as a SentencePiece model where it is one in
    tokenizers' form, as XLM-R's and e5's are: a Unigram model, SentencePiece's own normalizer,
    Metaspace pre-tokenization, <s> $A </s> around a text. Kept only if it gives the same ids on
    TOKENIZER_PROBES; returns what the encoder needs (the ids of <s> and </s>, the special tokens'
    spellings), or None where it is not kept."""
    from sentencepiece import SentencePieceProcessor
    from tokenizers import Tokenizer

    try:
        from sentencepiece import sentencepiece_model_pb2 as spm
    except Exception:  # noqa: BLE001 - protobuf missing, or older than sentencepiece's generated code asks
        return None

    serialized = tokenizer.to_str()
    spec = json.loads(serialized)
    model, normalizer, template = spec["model"], spec["normalizer"] or {}, spec["post_processor"] or {}
    single = [next(iter(part)) for part in template.get("single", [])]
    if (model["type"] != "Unigram" or model.get("byte_fallback") or normalizer.get("type") != "Precompiled"
            or "Metaspace" not in json.dumps(spec["pre_tokenizer"]) or single != ["SpecialToken", "Sequence", "SpecialToken"]):
        return None
    added = {token["id"]: token["content"] for token in spec["added_tokens"]}
    proto = spm.ModelProto()
    for i, (piece, score) in enumerate(model["vocab"]):
        entry = proto.pieces.add(piece=piece, score=score)
        if i == model["unk_id"]:
            entry.type = spm.ModelProto.SentencePiece.UNKNOWN
        elif i in added:
            entry.type = spm.ModelProto.SentencePiece.CONTROL
    proto.trainer_spec.model_type = spm.TrainerSpec.UNIGRAM
    proto.trainer_spec.unk_id = model["unk_id"]
    proto.trainer_spec.bos_id = proto.trainer_spec.eos_id = proto.trainer_spec.pad_id = -1  # ids of their own
    proto.normalizer_spec.name = "nmt_nfkc"
    proto.normalizer_spec.precompiled_charsmap = base64.b64decode(normalizer["precompiled_charsmap"])
    path.write_bytes(proto.SerializeToString())
    bos, eos = (template["single"][k]["SpecialToken"]["id"] for k in (0, 2))
    specials = {"bos": template["special_tokens"][bos]["ids"][0], "eos": template["special_tokens"][eos]["ids"][0],
                "spelled": sorted(added.values())}
    processor = SentencePieceProcessor(model_file=str(path))
    reference = Tokenizer.from_str(serialized)  # a copy, without the padding transformers may have set
    reference.no_padding()
    reference.no_truncation()
    ours = [[specials["bos"], *ids, specials["eos"]] for ids in processor.encode(TOKENIZER_PROBES)]
    if ours != [e.ids for e in reference.encode_batch(TOKENIZER_PROBES)]:
        path.unlink()
        return None
    return specials


def traced_root() -> Path:
    """Where traced models live: ``traced/`` under the cache root (``$VOICECLAP_CACHE``)."""
    from .weights.cache import cache_root

    return cache_root() / TRACED_DIR


def load_traced(spec: str | os.PathLike | None = None) -> TracedCLAP:
    """The traced form of a model directory (default: the shipped model), traced on its first use
    on this machine (a full load of the model, then seconds of tracing)."""
    from .pretrained import default_model_path

    model_dir = Path(default_model_path() if spec is None else spec)
    if not (model_dir / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{model_dir} is not a VoiceCLAP model directory (it has no {CONFIG_NAME})")
    directory = traced_root() / traced_key(model_dir)
    if not (directory / META_NAME).is_file():
        _trace_into(model_dir, directory)
    return TracedCLAP(directory)


def _trace_into(model_dir: Path, directory: Path) -> None:
    """Trace into a private directory, then rename it into place: a concurrent or killed run never
    leaves a half-written traced model where a loader looks."""
    from transformers.utils import logging as transformers_logging

    from .model import load_model
    from .runtime import quiet_transformers

    quiet_transformers()
    transformers_logging.set_verbosity_error()  # tracing reads config attributes transformers warns about
    print(f"voiceclap: tracing {model_dir} for fast starts (once per model and machine)", file=sys.stderr)
    staging = directory.with_name(f"{directory.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        trace_model(load_model(model_dir, "cpu", "float32"), staging)
        if (directory / META_NAME).is_file():
            return  # another process finished first: its trace is as good, and may be in use
        shutil.rmtree(directory, ignore_errors=True)  # an interrupted trace's leftovers
        staging.rename(directory)
    except OSError:
        if not (directory / META_NAME).is_file():  # not another process's finished trace
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
