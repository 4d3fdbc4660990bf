"""Precomputed outputs of the frozen parts of both towers, so CPU training never re-runs them.

Built once per (frozen weights, cut points, corpus, candidate seed, teacher): for each clip, the
audio states at the audio cut, the ids of its transcript and of its candidates (fixed at build time:
stored ones and K corruptions, with their WER/CER), and optionally the teacher's scores of them. Each
distinct text is stored once: its states at the text cut, or, when the text tower has no frozen
layers (an embeddings-only input stage, or a tower that trains whole), just the string, tokenized
when a batch is made. States are packed without padding (with offsets).

Layout of a cache directory::

    index.json              signature, chunk list, how many source clips were consumed, complete flag
    chunk-00000.safetensors audio, audio_offsets, text_ids [N, 1+K], error_rates [N, K], teacher [N, 1+K]
    ...                     (NaN: not labelled), text, text_offsets (the states of the texts this chunk
                            saw first); ids / languages / sources / new texts in the file's metadata

Chunks are written atomically (tmp file, then rename) and the index after each chunk, so an
interrupted build resumes after its last chunk by skipping that many source clips.
"""

from __future__ import annotations

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
from voiceclap.towers import Features, TextBatch
from voiceclap.train.data import TrainBatch, bucketed_batches, make_example, stable_seed
from voiceclap.train.towers import TrainableTowers

INDEX_NAME = "index.json"
CACHE_FORMAT = 3  # 3: texts stored once each (states or strings), teacher scores
DTYPES = {"float16": torch.float16, "float32": torch.float32}


def _frozen_modules(towers: TrainableTowers) -> nn.ModuleDict:
    model, plan = towers.model, towers.plan
    frozen = {
        "audio_conv1": model.audio.encoder.conv1,
        "audio_conv2": model.audio.encoder.conv2,
        "audio_positions": model.audio.encoder.embed_positions,
    }
    frozen.update({f"audio_layer_{i}": model.audio.encoder.layers[i] for i in range(plan.audio_from)})
    if plan.audio_from == plan.audio_layers:
        frozen["audio_layer_norm"] = model.audio.encoder.layer_norm
    if texts_as_states(towers):
        frozen["text_embeddings"] = model.text.encoder.embeddings
        frozen.update({f"text_layer_{i}": model.text.layers[i] for i in range(plan.text_from)})
    return nn.ModuleDict(frozen)


def texts_as_states(towers: TrainableTowers) -> bool:
    """Texts are cached as their states at the cut when frozen layers produce them; otherwise as
    strings (the input stage is an embedding lookup, or trains)."""
    return towers.plan.text_from > 0


def cache_signature(
    towers: TrainableTowers, sources: list[str], vocabulary_digest: str, stored: int, num_negatives: int, seed: int,
    dtype: str, teacher: dict | None = None,
) -> dict:
    """Everything the cached features depend on; a cache built under another signature is refused."""
    config = towers.model.config.to_dict()
    for key in ("trained_parameters", "base_checksums", "name", "audio_head", "text_head"):
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
        from voiceclap.teacher import EncodedAudio, normalized_scores

        teacher = self.teacher
        encoded = EncodedAudio(teacher.model.model.encoder.layer_norm(states)[None], False, False)
        texts = [clip.text, *(c.text for c in clip.candidates)]
        likelihoods = teacher.log_likelihoods(encoded, texts, clip.language)
        reference = None
        if teacher.normalization == "pmi_silence":
            reference = teacher.log_likelihoods(teacher.silence_like(encoded), texts, clip.language)
        return normalized_scores(likelihoods, teacher.normalization, reference)


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
    towers: TrainableTowers, examples: list[Clip], new_texts: list[str], table: _TextTable, batch_size: int,
    dtype: torch.dtype, teacher: TeacherLabels | None, first_position: int,
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
        if teacher is None:
            features = towers.frozen_audio(batch)
        else:  # the teacher needs the 50-per-second states before the tower's finish
            states = model.audio.encoder_states(batch)
            features = model.audio.finish(states)
            for i, values, mask in zip(rows, states.values, states.mask):
                if first_position + i < teacher.max_clips:
                    labels[i] = torch.from_numpy(teacher.scores(values[mask], examples[i]))
        for i, item in zip(rows, _pack(features, dtype)):
            audio_parts[i] = item
    tensors = {
        "audio": torch.cat(audio_parts),
        "audio_offsets": torch.tensor([0] + [p.shape[0] for p in audio_parts]).cumsum(0),
        "text_ids": torch.tensor([[table.ids[t] for t in (e.text, *(c.text for c in e.candidates))] for e in examples]),
        "error_rates": torch.tensor([[c.error_rate for c in e.candidates] for e in examples]),
        "teacher": labels,
    }
    if texts_as_states(towers) and new_texts:
        text_parts: list = [None] * len(new_texts)
        order = sorted(range(len(new_texts)), key=lambda i: len(new_texts[i]))
        for start in range(0, len(order), batch_size * 4):
            rows = order[start : start + batch_size * 4]
            batch = model.tokenize([new_texts[i] for i in rows]).to(model.device)
            for i, item in zip(rows, _pack(towers.frozen_text(batch), dtype)):
                text_parts[i] = item
        tensors["text"] = torch.cat(text_parts)
        tensors["text_offsets"] = torch.tensor([0] + [p.shape[0] for p in text_parts]).cumsum(0)
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
    teacher: TeacherLabels | None = None,
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
        index = {"signature": signature, "texts_as_states": texts_as_states(towers), "chunks": [], "clips_read": 0,
                 "complete": False}
    if index["complete"]:
        return FeatureCache(directory, towers.model.tokenize)

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
            tensors = _frozen_chunk(towers, pending, new_texts, table, batch_size, dtype, teacher, done + built)
        name = f"chunk-{len(index['chunks']):05d}.safetensors"
        metadata = {
            "ids": json.dumps([e.id for e in pending]),
            "languages": json.dumps([e.language for e in pending]),
            "sources": json.dumps([e.source for e in pending]),
            "new_texts": json.dumps(new_texts, ensure_ascii=False),
        }
        save_file(tensors, str(directory / f"{name}.tmp"), metadata=metadata)
        os.replace(directory / f"{name}.tmp", directory / name)
        audio_lengths = tensors["audio_offsets"].diff().tolist()
        index["chunks"].append({"file": name, "clips": len(pending), "audio_lengths": [int(n) for n in audio_lengths],
                                "new_texts": len(new_texts)})
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
    return FeatureCache(directory, towers.model.tokenize)


class FeatureCache:
    """Random access to a built cache; ``batch(indices)`` returns what ``TrainableTowers`` takes.
    ``tokenize`` (the model's) makes the text inputs when the cache holds texts as strings."""

    def __init__(self, directory: str | Path, tokenize: Callable[[list[str]], TextBatch] | None = None):
        self.directory = Path(directory)
        index = json.loads((self.directory / INDEX_NAME).read_text())
        if not index["complete"]:
            raise ValueError(f"feature cache {self.directory} is incomplete; rebuild it")
        self.signature = index["signature"]
        self.chunks = index["chunks"]
        self.texts_as_states = index["texts_as_states"]
        if not self.texts_as_states and tokenize is None:
            raise ValueError("this cache holds texts as strings: give the model's tokenize")
        self.tokenize = tokenize
        self.location = [(c, row) for c, chunk in enumerate(self.chunks) for row in range(chunk["clips"])]
        self.audio_lengths = np.array([n for chunk in self.chunks for n in chunk["audio_lengths"]])
        self._open: dict[int, tuple] = {}
        # text id -> (chunk, row within the chunk's new texts), and the strings themselves
        self.texts: list[str] = []
        self.text_location: list[tuple[int, int]] = []
        self.sources: list[str | None] = []
        for c in range(len(self.chunks)):
            _, _, meta = self._chunk(c)
            self.text_location += [(c, row) for row in range(len(meta["new_texts"]))]
            self.texts += meta["new_texts"]
            self.sources += meta["sources"]

    def __len__(self) -> int:
        return len(self.location)

    def _chunk(self, c: int):
        """(file handle, the small tensors in memory, metadata) of chunk c, opened once (mmap)."""
        if c not in self._open:
            handle = safe_open(str(self.directory / self.chunks[c]["file"]), framework="pt")
            names = ("audio_offsets", "text_ids", "error_rates", "teacher", "text_offsets")
            small = {name: handle.get_tensor(name) for name in names if name in handle.keys()}  # noqa: SIM118
            meta = {k: json.loads(v) for k, v in handle.metadata().items()}
            self._open[c] = (handle, small, meta)
        return self._open[c]

    def _rows(self, c: int, name: str, rows: list[int]) -> list[torch.Tensor]:
        handle, small, _ = self._chunk(c)
        offsets = small[f"{name}_offsets"]
        tensor = handle.get_slice(name)
        return [tensor[int(offsets[r]) : int(offsets[r + 1])] for r in rows]

    def batch(self, indices: Iterable[int]) -> TrainBatch:
        audio, text_ids, error_rates, teacher, ids, languages = [], [], [], [], [], []
        for i in indices:
            c, row = self.location[i]
            _, small, meta = self._chunk(c)
            audio += self._rows(c, "audio", [row])
            text_ids.append(small["text_ids"][row])
            error_rates.append(small["error_rates"][row])
            teacher.append(small["teacher"][row])
            ids.append(meta["ids"][row])
            languages.append(meta["languages"][row])
        text_ids = torch.stack(text_ids)
        unique, text_index = torch.unique(text_ids, return_inverse=True)
        if self.texts_as_states:
            texts = Features.from_rows([self._text_states(t) for t in unique.tolist()])
        else:
            texts = self.tokenize([self.texts[t] for t in unique.tolist()])
        return TrainBatch(
            Features.from_rows([a.float() for a in audio]), texts, torch.stack(error_rates), ids, languages,
            text_index=text_index, teacher=torch.stack(teacher),
        )

    def _text_states(self, text_id: int) -> torch.Tensor:
        c, row = self.text_location[text_id]
        return self._rows(c, "text", [row])[0].float()


class CachedBatches:
    """Endless training batches from a feature cache for one rank.

    Each epoch is a seeded permutation of the selected clips (``select(source)``, all by default) cut
    into global batches of ``batch_size * world_size`` clips of similar audio length (bucketed); rank
    r takes slice r of each. The position (epoch, batch) is the whole data state, so resuming is exact.
    """

    def __init__(
        self, cache: FeatureCache, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
        bucket_size: int = 512, select: Callable[[str | None], bool] | None = None,
    ):
        global_batch = batch_size * world_size
        self.indices = [i for i, source in enumerate(cache.sources) if select is None or select(source)]
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
