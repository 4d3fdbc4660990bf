"""Precomputed outputs of the frozen parts of both towers, so CPU training never re-runs them.

Built once per (frozen weights, cut points, corpus, corruption seed): for each clip, the audio
features after the frozen audio layers and the text features of its transcript and of K corruptions
fixed at build time (with their WER/CER). Features are hidden states (packed without padding, with
offsets) or pooled vectors when a whole encoder is frozen (see ``towers``).

Layout of a cache directory::

    index.json              signature, chunk list, how many source clips were consumed, complete flag
    chunk-00000.safetensors audio, audio_offsets, text, text_offsets, error_rates; ids / languages /
    ...                     texts in the file's metadata

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

from voiceclap.model import state_dict_fingerprint
from voiceclap.train.data import Clip, Example, bucketed_batches, make_example, stable_seed
from voiceclap.train.towers import Features, TrainableTowers

INDEX_NAME = "index.json"
CACHE_FORMAT = 1
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
    frozen.update({f"text_layer_{i}": model.text.encoder.encoder.layer[i] for i in range(plan.text_from)})
    if plan.audio_frozen:
        frozen["audio_layer_norm"] = model.audio.encoder.layer_norm
    return nn.ModuleDict(frozen)


def cache_signature(
    towers: TrainableTowers, sources: list[str], vocabulary_digest: str, num_negatives: int, seed: int, dtype: str
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
        "num_negatives": num_negatives,
        "seed": seed,
        "dtype": dtype,
    }


def _atomic_write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False))
    os.replace(tmp, path)


def _item(features: Features, j: int, dtype: torch.dtype) -> torch.Tensor:
    """Item j of a batch's features without its padding: pooled [d] or hidden states [T_j, d]."""
    values = features.values[j] if features.pooled else features.values[j][features.mask[j]]
    return values.to(dtype).cpu()


def _frozen_chunk(towers: TrainableTowers, examples: list[Example], batch_size: int, dtype: torch.dtype) -> dict:
    """The frozen forward of one chunk: clips sorted by length so that batches carry little padding."""
    model = towers.model
    k1 = len(examples[0].texts)
    audio_parts, text_parts = [None] * len(examples), [None] * (len(examples) * k1)
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].waveform))
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = model.prepare_audio([examples[i].waveform for i in rows])
        hidden = towers.frozen_audio(batch.mel.to(model.device), batch.mel_lengths.to(model.device))
        features = towers.pool_audio(hidden)
        for j, i in enumerate(rows):
            audio_parts[i] = _item(features, j, dtype)
    texts = [t for e in examples for t in e.texts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size * k1):
        rows = order[start : start + batch_size * k1]
        batch = model.tokenize([texts[i] for i in rows])
        hidden = towers.frozen_text(batch.input_ids.to(model.device), batch.attention_mask.to(model.device))
        features = towers.pool_text(hidden)
        for j, i in enumerate(rows):
            text_parts[i] = _item(features, j, dtype)

    tensors = {"error_rates": torch.tensor([e.error_rates for e in examples], dtype=torch.float32)}
    for name, parts in (("audio", audio_parts), ("text", text_parts)):
        if parts[0].dim() == 1:
            tensors[name] = torch.stack(parts)
        else:
            tensors[name] = torch.cat(parts)
            lengths = torch.tensor([0] + [p.shape[0] for p in parts])
            tensors[f"{name}_offsets"] = lengths.cumsum(0)
    return tensors


def build_feature_cache(
    towers: TrainableTowers,
    clips: Iterable[Clip],
    directory: str | Path,
    *,
    signature: dict,
    vocabularies: dict,
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
    pending: list[Example] = []

    def flush() -> None:
        nonlocal built
        with torch.inference_mode():
            tensors = _frozen_chunk(towers, pending, batch_size, dtype)
        name = f"chunk-{len(index['chunks']):05d}.safetensors"
        metadata = {
            "ids": json.dumps([e.id for e in pending]),
            "languages": json.dumps([e.language for e in pending]),
            "texts": json.dumps([e.texts for e in pending], ensure_ascii=False),
        }
        save_file(tensors, str(directory / f"{name}.tmp"), metadata=metadata)
        os.replace(directory / f"{name}.tmp", directory / name)
        pooled = "audio_offsets" not in tensors
        audio_lengths = (torch.ones(len(pending)) if pooled else tensors["audio_offsets"].diff()).tolist()
        index["chunks"].append({"file": name, "clips": len(pending), "audio_lengths": [int(n) for n in audio_lengths]})
        _atomic_write_json(index_path, index)
        built += len(pending)
        bar.update(len(pending))  # the bar shows clips/s
        pending.clear()

    for clip in source:
        if max_clips is not None and done + built + len(pending) >= max_clips:
            break
        example = make_example(clip, num_negatives, vocabularies, seed, epoch=0)
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
        """(file handle, the small tensors in memory, metadata) of chunk c, opened once (mmap)."""
        if c not in self._open:
            handle = safe_open(str(self.directory / self.chunks[c]["file"]), framework="pt")
            small = {
                k: handle.get_tensor(k)
                for k in handle.keys()  # noqa: SIM118 -- a safetensors handle is not iterable
                if k.endswith("offsets") or k == "error_rates"
            }
            for name in ("audio", "text"):  # pooled features are small too
                if f"{name}_offsets" not in small:
                    small[name] = handle.get_tensor(name)
            meta = {k: json.loads(v) for k, v in handle.metadata().items()}
            self._open[c] = (handle, small, meta)
        return self._open[c]

    @staticmethod
    def _rows(handle, small: dict, name: str, rows: list[int]) -> list[torch.Tensor]:
        if name in small:
            return [small[name][r] for r in rows]
        offsets = small[f"{name}_offsets"]
        tensor = handle.get_slice(name)
        return [tensor[int(offsets[r]) : int(offsets[r + 1])] for r in rows]

    def batch(self, indices: Iterable[int]) -> dict:
        audio, text, error_rates, ids, languages, texts = [], [], [], [], [], []
        for i in indices:
            c, row = self.location[i]
            handle, small, meta = self._chunk(c)
            k1 = small["error_rates"].shape[1] + 1
            audio += self._rows(handle, small, "audio", [row])
            text += self._rows(handle, small, "text", list(range(row * k1, (row + 1) * k1)))
            error_rates.append(small["error_rates"][row])
            ids.append(meta["ids"][row])
            languages.append(meta["languages"][row])
            texts.append(meta["texts"][row])
        return {
            "audio": _collate_features(audio),
            "text": _collate_features(text),
            "error_rates": torch.stack(error_rates),
            "ids": ids,
            "languages": languages,
            "texts": texts,
        }


def _collate_features(rows: list[torch.Tensor]) -> Features:
    if rows[0].dim() == 1:
        return Features(torch.stack(rows).float(), None)
    lengths = torch.tensor([r.shape[0] for r in rows])
    values = torch.zeros(len(rows), int(lengths.max()), rows[0].shape[-1])
    for i, r in enumerate(rows):
        values[i, : r.shape[0]] = r.float()
    return Features(values, torch.arange(values.shape[1])[None, :] < lengths[:, None])


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

    def __iter__(self) -> Iterator[dict]:
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


def eval_cache_batches(cache: FeatureCache, batch_size: int) -> Iterator[dict]:
    """The whole cache in order (evaluation)."""
    for start in range(0, len(cache), batch_size):
        yield cache.batch(range(start, min(start + batch_size, len(cache))))
