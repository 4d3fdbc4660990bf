"""Precomputed outputs of the frozen parts of both towers, so CPU training never re-runs them.

Built once per (frozen weights, cut points, corpus, candidate seed): for each clip, the audio
states at the audio cut and the text states of its transcript and of its candidates fixed at build
time (stored ones and K corruptions, with their WER/CER), packed without padding (with offsets).

Layout of a cache directory::

    index.json              signature, chunk list, how many source clips were consumed, complete flag
    chunk-00000.safetensors audio, audio_offsets, text, text_offsets, error_rates; ids / languages /
    ...                     texts (each clip's transcript then its candidates) in the file's metadata

Chunks are written atomically (tmp file, then rename) and the index after each chunk, so an
interrupted build resumes after its last chunk by skipping that many source clips.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from voiceclap.clips import Clip
from voiceclap.model import state_dict_fingerprint
from voiceclap.towers import Features
from voiceclap.train.data import TrainBatch, bucketed_batches, make_example, stable_seed
from voiceclap.train.towers import TrainableTowers

INDEX_NAME = "index.json"
CACHE_FORMAT = 2  # 2: states at the cut always (no pooled vectors), stored candidates
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def _frozen_modules(towers: TrainableTowers) -> nn.ModuleDict:
    model, plan = towers.model, towers.plan
    frozen = {
        "audio_conv1": model.audio.encoder.conv1,
        "audio_conv2": model.audio.encoder.conv2,
        "audio_positions": model.audio.encoder.embed_positions,
        "text_embeddings": model.text.encoder.embeddings,
    }
    frozen.update({f"audio_layer_{i}": model.audio.encoder.layers[i] for i in range(plan.audio_from)})
    frozen.update({f"text_layer_{i}": model.text.layers[i] for i in range(plan.text_from)})
    if plan.audio_from == plan.audio_layers:
        frozen["audio_layer_norm"] = model.audio.encoder.layer_norm
    return nn.ModuleDict(frozen)


def cache_signature(
    towers: TrainableTowers, sources: list[str], vocabulary_digest: str, stored: int, num_negatives: int, seed: int,
    dtype: str,
) -> dict:
    """Everything the cached features depend on; a cache built under another signature is refused."""
    config = towers.model.config.to_dict()
    for key in ("trained_parameters", "base_checksums", "name"):
        config.pop(key)
    return {
        "format": CACHE_FORMAT,
        "frozen_weights": state_dict_fingerprint(_frozen_modules(towers)),
        "model_config": config,
        "audio_from": towers.plan.audio_from,
        "text_from": towers.plan.text_from,
        "sources": sources,
        "vocabularies": vocabulary_digest,
        "stored_candidates": stored,
        "num_negatives": num_negatives,
        "seed": seed,
        "dtype": dtype,
    }


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False))
    os.replace(tmp, path)


def _pack(features: Features, dtype: torch.dtype) -> list[torch.Tensor]:
    """A batch's states per item without padding: [T_i, d] each."""
    return [values[mask].to(dtype).cpu() for values, mask in zip(features.values, features.mask)]


def _frozen_chunk(towers: TrainableTowers, examples: list[Clip], batch_size: int, dtype: torch.dtype) -> dict:
    """The frozen forward of one chunk: inputs sorted by length so that batches carry little padding."""
    model = towers.model
    audio_parts: list = [None] * len(examples)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].audio))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = model.prepare_audio([examples[i].audio for i in rows]).to(model.device)
        for i, item in zip(rows, _pack(towers.frozen_audio(batch), dtype)):
            audio_parts[i] = item
    texts = [t for e in examples for t in (e.text, *(c.text for c in e.candidates))]
    text_parts: list = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    text_batch = batch_size * (1 + len(examples[0].candidates))
    for start in range(0, len(order), text_batch):
        rows = order[start : start + text_batch]
        batch = model.tokenize([texts[i] for i in rows]).to(model.device)
        for i, item in zip(rows, _pack(towers.frozen_text(batch), dtype)):
            text_parts[i] = item
    tensors = {"error_rates": torch.tensor([[c.error_rate for c in e.candidates] for e in examples])}
    for name, parts in (("audio", audio_parts), ("text", text_parts)):
        tensors[name] = torch.cat(parts)
        tensors[f"{name}_offsets"] = torch.tensor([0] + [p.shape[0] for p in parts]).cumsum(0)
    return tensors


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
    progress: bool = True,
) -> FeatureCache:
    """Run the frozen parts over ``clips`` (in their given, deterministic order) into ``directory``,
    resuming a partial build with the same signature."""
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
        with torch.inference_mode():
            tensors = _frozen_chunk(towers, pending, batch_size, dtype)
        name = f"chunk-{len(index['chunks']):05d}.safetensors"
        metadata = {
            "ids": json.dumps([e.id for e in pending]),
            "languages": json.dumps([e.language for e in pending]),
            "texts": json.dumps([[e.text, *(c.text for c in e.candidates)] for e in pending], ensure_ascii=False),
        }
        save_file(tensors, str(directory / f"{name}.tmp"), metadata=metadata)
        os.replace(directory / f"{name}.tmp", directory / name)
        audio_lengths = tensors["audio_offsets"].diff().tolist()
        index["chunks"].append({"file": name, "clips": len(pending), "audio_lengths": [int(n) for n in audio_lengths]})
        _atomic_write_json(index_path, index)
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


class FeatureCache:
    """Random access to a built cache; ``batch(indices)`` returns what ``TrainableTowers`` takes."""

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

    def __len__(self) -> int:
        return len(self.location)

    def _chunk(self, c: int):
        """(file handle, offsets and error rates in memory, metadata) of chunk c, opened once (mmap)."""
        if c not in self._open:
            handle = safe_open(str(self.directory / self.chunks[c]["file"]), framework="pt")
            small = {name: handle.get_tensor(name) for name in ("audio_offsets", "text_offsets", "error_rates")}
            meta = {k: json.loads(v) for k, v in handle.metadata().items()}
            self._open[c] = (handle, small, meta)
        return self._open[c]

    @staticmethod
    def _rows(handle, small: dict, name: str, rows: list[int]) -> list[torch.Tensor]:
        offsets = small[f"{name}_offsets"]
        tensor = handle.get_slice(name)
        return [tensor[int(offsets[r]) : int(offsets[r + 1])] for r in rows]

    def batch(self, indices: Iterable[int]) -> TrainBatch:
        audio, text, error_rates, ids, languages = [], [], [], [], []
        for i in indices:
            c, row = self.location[i]
            handle, small, meta = self._chunk(c)
            k1 = small["error_rates"].shape[1] + 1
            audio += self._rows(handle, small, "audio", [row])
            text += self._rows(handle, small, "text", list(range(row * k1, (row + 1) * k1)))
            error_rates.append(small["error_rates"][row])
            ids.append(meta["ids"][row])
            languages.append(meta["languages"][row])
        return TrainBatch(
            Features.from_rows([a.float() for a in audio]),
            Features.from_rows([t.float() for t in text]),
            torch.stack(error_rates),
            ids,
            languages,
        )


class CachedBatches:
    """Endless training batches from a feature cache for one rank.

    Each epoch is a seeded permutation cut into global batches of ``batch_size * world_size`` clips
    of similar audio length (bucketed); rank r takes slice r of each. The position (epoch, batch) is
    the whole data state, so resuming is exact.
    """

    def __init__(
        self, cache: FeatureCache, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
        bucket_size: int = 512,
    ):
        global_batch = batch_size * world_size
        if len(cache) < global_batch:
            raise ValueError(f"the feature cache holds {len(cache)} clips, less than a global batch ({global_batch})")
        self.cache = cache
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.bucket_size = bucket_size
        self.epoch, self.index = 0, 0

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(stable_seed(self.seed, "cache", epoch))
        order = list(range(len(self.cache)))
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
