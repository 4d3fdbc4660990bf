"""Precomputed outputs of the frozen parts of both towers, so CPU training never re-runs them.

Two parts, so that models with different text towers share the costly audio pass:

- the **clip cache**, built once per (frozen audio weights and cut, corpus, candidate seed, teacher):
  for each clip the audio states at the audio cut, the ids of its transcript and of its candidates
  (fixed at build time: stored ones and K corruptions, with their WER/CER) and optionally the
  teacher's scores of them; each distinct text once, as a string;
- a **text table** per text tower whose lower layers are frozen: the states of every text of a clip
  cache at the text cut. A tower with no frozen text layer (an embeddings-only input stage, or one
  that trains whole) needs none: its batches tokenize the strings.

States are packed without padding (with offsets). Layout::

    index.json              signature, chunk list, how many source clips were consumed, complete flag
    chunk-00000.safetensors audio, audio_offsets, text_ids [N, 1+K], error_rates [N, K], teacher [N, 1+K]
    ...                     (NaN: not labelled); ids / languages / sources / the texts this chunk saw
                            first, in the file's metadata
    texts-<signature>/      a text table: index.json, chunk-00000.safetensors (text, text_offsets) ...

Chunks are written atomically (tmp file, then rename) and the index after each chunk, so an
interrupted build resumes after its last chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from voiceclap.clips import Clip
from voiceclap.model import state_dict_fingerprint
from voiceclap.towers import Features, TextBatch, encoder_autocast
from voiceclap.train.data import TrainBatch, bucketed_batches, make_example, stable_seed
from voiceclap.train.towers import TrainableTowers

INDEX_NAME = "index.json"
CACHE_FORMAT = 4  # 4: texts stored once each as strings, their states in text tables; teacher scores
DTYPES = {"float16": torch.float16, "float32": torch.float32}


AUDIO_CONFIG_KEYS = ("audio_encoder", "audio_encoder_config", "audio_pooling", "max_audio_seconds")
TEXT_CONFIG_KEYS = ("text_encoder", "text_encoder_config", "tokenizer", "text_mask", "text_num_layers",
                    "text_max_length", "text_pad_to_max_length", "text_prefix")


def _frozen_audio(towers: TrainableTowers) -> nn.ModuleDict:
    encoder, plan = towers.model.audio.encoder, towers.plan
    frozen = {"audio_conv1": encoder.conv1, "audio_conv2": encoder.conv2, "audio_positions": encoder.embed_positions}
    frozen.update({f"audio_layer_{i}": encoder.layers[i] for i in range(plan.audio_from)})
    if plan.audio_from == plan.audio_layers:
        frozen["audio_layer_norm"] = encoder.layer_norm
    return nn.ModuleDict(frozen)


def needs_text_table(towers: TrainableTowers) -> bool:
    """Frozen text layers produce states worth keeping; else the strings are tokenized per batch."""
    return towers.plan.text_from > 0


def cache_signature(
    towers: TrainableTowers, sources: list[str], vocabulary_digest: str, stored: int, num_negatives: int, seed: int,
    dtype: str, teacher: dict | None = None,
) -> dict:
    """Everything the clip cache depends on; a cache built under another signature is refused."""
    config = towers.model.config.to_dict()
    return {
        "format": CACHE_FORMAT,
        "frozen_weights": state_dict_fingerprint(_frozen_audio(towers)),
        "audio_config": {key: config[key] for key in AUDIO_CONFIG_KEYS},
        "audio_from": towers.plan.audio_from,
        "sources": sources,
        "vocabularies": vocabulary_digest,
        "stored_candidates": stored,
        "num_negatives": num_negatives,
        "seed": seed,
        "dtype": dtype,
        "teacher": teacher,
    }


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False))
    os.replace(tmp, path)


def _pack(features: Features, dtype: torch.dtype) -> list[torch.Tensor]:
    """A batch's states per item without padding: [T_i, d] each."""
    return [values[mask].to(dtype).cpu() for values, mask in zip(features.values, features.mask)]


class TeacherLabels:
    """Scores of each clip's candidates by Whisper's decoder, attending to the encoder states the
    audio tower computes anyway (one encoder pass for both): ``teacher`` is a
    :class:`voiceclap.teacher.WhisperTeacher` whose encoder weights are the audio tower's. The first
    ``max_clips`` cached clips are labelled."""

    def __init__(self, teacher, max_clips: int):
        self.teacher = teacher
        self.max_clips = max_clips

    def signature(self) -> dict:
        return {"normalization": self.teacher.normalization, "context": "audio tower (clip length, masked)",
                "clips": self.max_clips}

    def scores(self, states: torch.Tensor, clip: Clip) -> np.ndarray:
        """The normalized scores of the clip's transcript and candidates, given its encoder states [T, d]."""
        from voiceclap.teacher import EncodedAudio

        encoded = EncodedAudio(self.teacher.model.model.encoder.layer_norm(states)[None], False, False)
        return self.teacher.encoded_scores(encoded, [clip.text, *(c.text for c in clip.candidates)], clip.language)[0]


class _TextTable:
    """The distinct texts seen so far, in order of first appearance (rebuilt from chunks on resume)."""

    def __init__(self):
        self.ids: dict[str, int] = {}

    def add(self, texts: Iterable[str]) -> list[str]:
        """Register texts; returns those that are new, in id order."""
        new = []
        for text in texts:
            if text not in self.ids:
                self.ids[text] = len(self.ids)
                new.append(text)
        return new


def _frozen_chunk(
    towers: TrainableTowers, examples: list[Clip], table: _TextTable, batch_size: int, dtype: torch.dtype,
    teacher: TeacherLabels | None, first_position: int, audio_dtype: torch.dtype,
) -> dict:
    """The frozen forward of one chunk, whose first clip is the cache's ``first_position``-th: inputs
    sorted by length so that batches carry little padding."""
    model = towers.model
    audio_parts: list = [None] * len(examples)
    labels = torch.full((len(examples), 1 + len(examples[0].candidates)), float("nan"))
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].audio))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = model.prepare_audio([examples[i].audio for i in rows]).to(model.device)
        with encoder_autocast(model.device, audio_dtype):
            if teacher is None:
                features = towers.frozen_audio(batch)
            else:  # the teacher needs the 50-per-second states before the tower's finish
                states = model.audio.encoder_states(batch)
                features = model.audio.finish(states)
        if teacher is not None:
            for i, values, mask in zip(rows, states.values, states.mask):
                if first_position + i < teacher.max_clips:
                    labels[i] = torch.from_numpy(teacher.scores(values[mask], examples[i]))
        for i, item in zip(rows, _pack(features, dtype)):
            audio_parts[i] = item
    return {
        "audio": torch.cat(audio_parts),
        "audio_offsets": _offsets(audio_parts),
        "text_ids": torch.tensor([[table.ids[t] for t in (e.text, *(c.text for c in e.candidates))] for e in examples]),
        "error_rates": torch.tensor([[c.error_rate for c in e.candidates] for e in examples]),
        "teacher": labels,
    }


def _offsets(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.tensor([0] + [p.shape[0] for p in parts]).cumsum(0)


def build_feature_cache(
    towers: TrainableTowers,
    clips: Iterable[Clip],
    directory: str | Path,
    *,
    signature: dict,
    vocabularies: dict,
    stored: int,
    num_negatives: int,
    seed: int,
    chunk_size: int = 256,
    batch_size: int = 16,
    max_clips: int | None = None,
    teacher: TeacherLabels | None = None,
    audio_dtype: torch.dtype = torch.float32,
    progress: bool = True,
) -> FeatureCache:
    """Run the frozen parts over ``clips`` (in their given, deterministic order) into ``directory``,
    resuming a partial build with the same signature."""
    if teacher is not None and towers.plan.audio_from != towers.plan.audio_layers:
        raise ValueError("teacher labels share the audio tower's encoder pass: freeze the whole audio encoder")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index_path = directory / INDEX_NAME
    if index_path.exists():
        index = json.loads(index_path.read_text())
        if index["signature"] != signature:
            raise ValueError(
                f"{directory} holds a feature cache built with other settings; delete it or pick another cache.dir"
            )
    else:
        index = {"signature": signature, "chunks": [], "clips_read": 0, "complete": False}
    if index["complete"]:
        return FeatureCache(directory)

    dtype = DTYPES[signature["dtype"]]
    table = _TextTable()
    for chunk in index["chunks"]:
        with safe_open(str(directory / chunk["file"]), framework="pt") as handle:
            table.add(json.loads(handle.metadata()["new_texts"]))
    done = sum(c["clips"] for c in index["chunks"])
    source = iter(clips)
    for _ in range(index["clips_read"]):  # already in written chunks (or undecodable)
        next(source)
    bar = tqdm(total=max_clips, initial=done, unit="clip", desc="feature cache", disable=not progress)
    started, built = time.perf_counter(), 0
    was_training = towers.training
    towers.eval()
    pending: list[Clip] = []

    def flush() -> None:
        nonlocal built
        new_texts = table.add(t for e in pending for t in (e.text, *(c.text for c in e.candidates)))
        with torch.inference_mode():
            tensors = _frozen_chunk(towers, pending, table, batch_size, dtype, teacher, done + built, audio_dtype)
        name = f"chunk-{len(index['chunks']):05d}.safetensors"
        metadata = {
            "ids": json.dumps([e.id for e in pending]),
            "languages": json.dumps([e.language for e in pending]),
            "sources": json.dumps([e.source for e in pending]),
            "groups": json.dumps([e.group for e in pending]),
            "new_texts": json.dumps(new_texts, ensure_ascii=False),
        }
        audio_lengths = tensors["audio_offsets"].diff().tolist()
        index["chunks"].append({"file": name, "clips": len(pending), "audio_lengths": [int(n) for n in audio_lengths],
                                "new_texts": len(new_texts)})
        _write_chunk(directory, index, index_path, name, tensors, metadata)
        built += len(pending)
        bar.update(len(pending))  # the bar shows clips/s
        pending.clear()

    for clip in source:
        if max_clips is not None and done + built + len(pending) >= max_clips:
            break
        example = make_example(clip, stored, num_negatives, vocabularies, seed, epoch=0)
        index["clips_read"] += 1  # counted before a flush records it
        if example is not None:
            pending.append(example)
        if len(pending) == chunk_size:
            flush()
    if pending:
        flush()
    bar.close()
    elapsed = time.perf_counter() - started
    if built:
        rate = built / elapsed
        print(f"feature cache {directory}: {built} clips in {elapsed:.1f} s ({rate:.1f} clips/s)", flush=True)
    index["complete"] = True
    _atomic_write_json(index_path, index)
    towers.train(was_training)
    return FeatureCache(directory)


def _write_chunk(directory: Path, index: dict, index_path: Path, name: str, tensors: dict, metadata: dict) -> None:
    save_file(tensors, str(directory / f"{name}.tmp"), metadata=metadata)
    os.replace(directory / f"{name}.tmp", directory / name)
    _atomic_write_json(index_path, index)


def build_text_table(towers: TrainableTowers, cache: FeatureCache, chunk_size: int = 8192, batch_size: int = 64,
                     progress: bool = True) -> TextTable:
    """The states of every text of ``cache`` at the towers' text cut (resumable, chunk by chunk, stored
    in the clip cache's dtype), in ``cache.directory / texts-<signature digest>``."""
    model = towers.model
    dtype = cache.signature["dtype"]
    config = model.config.to_dict()
    frozen = nn.ModuleDict({"embeddings": model.text.encoder.embeddings,
                            **{f"layer_{i}": model.text.layers[i] for i in range(towers.plan.text_from)}})
    signature = {
        "format": CACHE_FORMAT,
        "clip_cache": cache.signature,
        "frozen_weights": state_dict_fingerprint(frozen),
        "text_config": {key: config[key] for key in TEXT_CONFIG_KEYS},
        "text_from": towers.plan.text_from,
        "dtype": dtype,
    }
    digest = hashlib.sha1(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:12]
    directory = cache.directory / f"texts-{digest}"
    directory.mkdir(exist_ok=True)
    index_path = directory / INDEX_NAME
    index = json.loads(index_path.read_text()) if index_path.exists() else {"signature": signature, "chunks": []}
    done = sum(c["texts"] for c in index["chunks"])
    bar = tqdm(total=len(cache.texts), initial=done, unit="text", desc="text table", disable=not progress)
    was_training = towers.training
    towers.eval()
    for start in range(done, len(cache.texts), chunk_size):
        texts = cache.texts[start : start + chunk_size]
        parts: list = [None] * len(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                batch = model.tokenize([texts[i] for i in rows]).to(model.device)
                for i, item in zip(rows, _pack(towers.frozen_text(batch), DTYPES[dtype])):
                    parts[i] = item
                bar.update(len(rows))
        name = f"chunk-{len(index['chunks']):05d}.safetensors"
        index["chunks"].append({"file": name, "texts": len(texts)})
        _write_chunk(directory, index, index_path, name, {"text": torch.cat(parts), "text_offsets": _offsets(parts)}, {})
    bar.close()
    towers.train(was_training)
    return TextTable(directory)


class TextTable:
    """Random access to the text states of a built :func:`build_text_table`."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.chunks = json.loads((directory / INDEX_NAME).read_text())["chunks"]
        self.location = [(c, row) for c, chunk in enumerate(self.chunks) for row in range(chunk["texts"])]
        self._open: dict[int, tuple] = {}

    def __len__(self) -> int:
        return len(self.location)

    def states(self, text_id: int) -> torch.Tensor:
        c, row = self.location[text_id]
        if c not in self._open:
            handle = safe_open(str(self.directory / self.chunks[c]["file"]), framework="pt")
            self._open[c] = (handle, handle.get_tensor("text_offsets"))
        handle, offsets = self._open[c]
        return handle.get_slice("text")[int(offsets[row]) : int(offsets[row + 1])].float()


class FeatureCache:
    """Random access to a built clip cache; ``batch(indices)`` returns what ``TrainableTowers`` takes.
    Its texts come from ``text_table`` when the text tower has frozen layers, else from ``tokenize``
    (the model's) applied to the strings (:meth:`attach`)."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        index = json.loads((self.directory / INDEX_NAME).read_text())
        if not index["complete"]:
            raise ValueError(f"feature cache {self.directory} is incomplete; rebuild it")
        self.signature = index["signature"]
        self.chunks = index["chunks"]
        self.location = [(c, row) for c, chunk in enumerate(self.chunks) for row in range(chunk["clips"])]
        self.audio_lengths = np.array([n for chunk in self.chunks for n in chunk["audio_lengths"]])
        self._open: dict[int, tuple] = {}
        self.texts: list[str] = []
        self.sources: list[str | None] = []
        self.groups: list[str | None] = []  # a spoken pair's group; None for other clips
        for c in range(len(self.chunks)):
            _, _, meta = self._chunk(c)
            self.texts += meta["new_texts"]
            self.sources += meta["sources"]
            self.groups += meta["groups"]
        self.text_table: TextTable | None = None
        self.tokenize: Callable[[list[str]], TextBatch] | None = None

    def attach(self, towers: TrainableTowers, progress: bool = True) -> FeatureCache:
        """Make batches for ``towers``: build (or reuse) the text table its frozen text layers need."""
        if needs_text_table(towers):
            self.text_table = build_text_table(towers, self, progress=progress)
        else:
            self.tokenize = towers.model.tokenize
        return self

    def __len__(self) -> int:
        return len(self.location)

    def _chunk(self, c: int):
        """(file handle, the small tensors in memory, metadata) of chunk c, opened once (mmap)."""
        if c not in self._open:
            handle = safe_open(str(self.directory / self.chunks[c]["file"]), framework="pt")
            names = ("audio_offsets", "text_ids", "error_rates", "teacher")
            small = {name: handle.get_tensor(name) for name in names}
            meta = {k: json.loads(v) for k, v in handle.metadata().items()}
            self._open[c] = (handle, small, meta)
        return self._open[c]

    def batch(self, indices: Iterable[int]) -> TrainBatch:
        if self.text_table is None and self.tokenize is None:
            raise RuntimeError("attach the cache to the towers first (FeatureCache.attach)")
        audio, text_ids, error_rates, teacher, ids, languages = [], [], [], [], [], []
        for i in indices:
            c, row = self.location[i]
            handle, small, meta = self._chunk(c)
            offsets = small["audio_offsets"]
            audio.append(handle.get_slice("audio")[int(offsets[row]) : int(offsets[row + 1])].float())
            text_ids.append(small["text_ids"][row])
            error_rates.append(small["error_rates"][row])
            teacher.append(small["teacher"][row])
            ids.append(meta["ids"][row])
            languages.append(meta["languages"][row])
        unique, text_index = torch.unique(torch.stack(text_ids), return_inverse=True)
        if self.text_table is not None:
            texts = Features.from_rows([self.text_table.states(t) for t in unique.tolist()])
        else:
            texts = self.tokenize([self.texts[t] for t in unique.tolist()])
        return TrainBatch(Features.from_rows(audio), texts, torch.stack(error_rates), ids, languages,
                          text_index=text_index, teacher=torch.stack(teacher))


class CachedBatches:
    """Endless training batches from a feature cache for one rank.

    Each epoch is a seeded permutation of the selected clips (``select(source, group)``, all by default) cut
    into global batches of ``batch_size * world_size`` clips of similar audio length (bucketed); rank
    r takes slice r of each. The position (epoch, batch) is the whole data state, so resuming is exact.
    """

    def __init__(
        self, cache: FeatureCache, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
        bucket_size: int = 512, select: Callable[[str | None, str | None], bool] | None = None,
    ):
        global_batch = batch_size * world_size
        self.indices = [i for i, clip in enumerate(zip(cache.sources, cache.groups)) if select is None or select(*clip)]
        if len(self.indices) < global_batch:
            raise ValueError(f"the feature cache holds {len(self.indices)} selected clips, less than a global "
                             f"batch ({global_batch})")
        self.cache = cache
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.bucket_size = bucket_size
        self.epoch, self.index = 0, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(stable_seed(self.seed, "cache", epoch))
        order = list(self.indices)
        rng.shuffle(order)
        lengths = self.cache.audio_lengths
        global_batch = self.batch_size * self.world_size
        return list(bucketed_batches(order, global_batch, self.bucket_size, rng, lambda i: lengths[i]))

    def __iter__(self) -> Iterator[TrainBatch]:
        while True:
            batches = self.epoch_batches(self.epoch)
            while self.index < len(batches):
                mine = batches[self.index][self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
                self.index += 1
                yield self.cache.batch(mine)
            self.epoch, self.index = self.epoch + 1, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.index = state["epoch"], state["index"]
