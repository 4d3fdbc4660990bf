"""Training data: Emilia-layout WebDataset shards and JSONL manifests -> clips -> bucketed batches.

A clip is one (audio, transcript, language) record. Shards hold per clip ``<key>.json`` (id, text,
language, duration, ...) and ``<key>.flac`` / ``.mp3`` (any format ``voiceclap.audio`` decodes);
a JSONL manifest has one ``{"audio": path, "text", "language", "id"[, "duration"]}`` per line, paths
relative to the manifest.

Everything random is a pure function of (seed, epoch, ...): the shard order of an epoch, the
shuffle of each consumer's stream, each clip's corruptions (seeded by its id). A stream can
therefore be resumed at a batch index by skipping records, without decoding them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from voiceclap.audio import AudioDecodeError, load_audio
from voiceclap.corruption import Vocabulary, build_vocabulary, make_corruptions

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = ("flac", "mp3", "wav", "opus", "ogg", "m4a")


@dataclass
class Clip:
    id: str
    text: str
    language: str
    duration: float  # seconds, from the metadata: batches are bucketed before any decoding
    audio: bytes | str | None  # encoded bytes (shards), a path (manifests), None (texts only)


@dataclass
class Example:
    """A decoded clip with its candidate transcripts: texts[0] is the truth, texts[1:] corruptions."""

    id: str
    language: str
    waveform: np.ndarray
    texts: list[str]
    error_rates: list[float]


def stable_seed(*parts) -> int:
    """A seed from any printable parts that is the same in every process and Python run."""
    return int.from_bytes(hashlib.sha1(repr(parts).encode()).digest()[:8], "little")


def is_heldout(clip_id: str, permille: int) -> bool:
    """The seed's split: a clip is held out when sha1(id) mod 1000 < permille."""
    return int(hashlib.sha1(clip_id.encode()).hexdigest(), 16) % 1000 < permille


# ----- sources -----


def expand_sources(spec: str | Sequence[str]) -> list[str]:
    """Shard / manifest locations: "::"-separated lists and brace patterns expanded (WebDataset's
    rules), local globs matched (sorted)."""
    specs = [spec] if isinstance(spec, str) else list(spec)
    out = []
    for url in (u for s in specs for u in wds.shardlists.expand_urls(s)):
        is_local = "://" not in url and not url.startswith("pipe:")
        if is_local and any(c in url for c in "*?["):
            matched = sorted(glob.glob(url))
            if not matched:
                raise FileNotFoundError(f"no files match {url!r}")
            out.extend(matched)
        else:
            out.append(url)
    if not out:
        raise ValueError(f"no data sources in {spec!r}")
    return out


def _clip_from_metadata(meta: dict, audio, fallback_id: str) -> Clip:
    return Clip(
        id=str(meta.get("id") or fallback_id),
        text=meta["text"],
        language=meta.get("language") or "en",
        duration=float(meta.get("duration") or 0.0),
        audio=audio,
    )


def _shard_clips(url: str, with_audio: bool) -> Iterator[Clip]:
    select = None if with_audio else (lambda name: name.endswith(".json"))
    for sample in wds.tarfile_samples([{"url": url}], select_files=select):
        if "json" not in sample:
            continue
        meta = json.loads(sample["json"])
        audio = next((sample[ext] for ext in AUDIO_EXTENSIONS if ext in sample), None) if with_audio else None
        if with_audio and audio is None:
            logger.warning("clip %s in %s has no audio; skipped", sample["__key__"], url)
            continue
        yield _clip_from_metadata(meta, audio, sample["__key__"])


def _manifest_clips(path: str, with_audio: bool) -> Iterator[Clip]:
    root = Path(path).parent
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            audio = str(root / row["audio"])
            if with_audio and not row.get("duration"):
                try:
                    row["duration"] = soundfile.info(audio).duration  # the header only
                except (soundfile.LibsndfileError, RuntimeError):
                    row["duration"] = 0.0  # buckets as shortest; decoding reports the real problem
            yield _clip_from_metadata(row, audio if with_audio else None, f"{Path(path).stem}:{line_number}")


def read_clips(sources: Sequence[str], with_audio: bool = True) -> Iterator[Clip]:
    """The clips of shards and manifests, in the given order (audio left encoded)."""
    for source in sources:
        if source.endswith(".jsonl"):
            yield from _manifest_clips(source, with_audio)
        else:
            yield from _shard_clips(source, with_audio)


def heldout_filter(clips: Iterable[Clip], permille: int, keep_heldout: bool) -> Iterator[Clip]:
    return (c for c in clips if is_heldout(c.id, permille) == keep_heldout)


def decode(clip: Clip) -> np.ndarray | None:
    try:
        return load_audio(clip.audio)
    except AudioDecodeError as error:
        logger.warning("clip %s skipped: %s", clip.id, error)
        return None


# ----- corruption vocabularies and hard negatives -----


def build_vocabularies(clips: Iterable[Clip], max_size: int) -> dict[str, Vocabulary]:
    """One corruption vocabulary per language from the transcripts (languages too small for one,
    fewer than 2 distinct units, are left out: their clips get no hard negatives)."""
    texts = defaultdict(list)
    for clip in clips:
        texts[clip.language].append(clip.text)
    vocabularies = {}
    for language, sentences in sorted(texts.items()):
        try:
            vocabularies[language] = build_vocabulary(sentences, language, max_size=max_size)
        except ValueError as error:
            logger.warning("no corruption vocabulary for %s: %s", language, error)
    return vocabularies


def save_vocabularies(vocabularies: dict[str, Vocabulary], path: Path) -> None:
    path.write_text(json.dumps({lang: list(v) for lang, v in vocabularies.items()}, ensure_ascii=False))


def load_vocabularies(path: Path) -> dict[str, Vocabulary]:
    return {lang: Vocabulary(units, lang) for lang, units in json.loads(path.read_text()).items()}


def candidates(
    clip: Clip, num_negatives: int, vocabularies: dict[str, Vocabulary], seed: int, epoch: int
) -> tuple[list[str], list[float]]:
    """The transcript and K corruptions of it with their WER/CER, drawn from a generator seeded by
    (seed, epoch, clip id): the same in any process, worker or resumed run. Without a vocabulary for
    the language, the K slots repeat the transcript with error rate 0 (the loss masks those)."""
    vocabulary = vocabularies.get(clip.language)
    if num_negatives == 0 or vocabulary is None:
        return [clip.text] * (1 + num_negatives), [0.0] * num_negatives
    rng = random.Random(stable_seed(seed, epoch, clip.id))
    corruptions = make_corruptions(clip.text, clip.language, num_negatives, vocabulary, rng)
    return [clip.text] + [c.text for c in corruptions], [c.error_rate for c in corruptions]


def make_example(clip: Clip, num_negatives: int, vocabularies, seed: int, epoch: int) -> Example | None:
    waveform = decode(clip)
    if waveform is None:
        return None
    texts, error_rates = candidates(clip, num_negatives, vocabularies, seed, epoch)
    return Example(clip.id, clip.language, waveform, texts, error_rates)


# ----- batching -----


def collate(model, examples: Sequence[Example]) -> dict:
    """Model inputs for a batch: log-mels, the 1 + K transcripts per clip tokenized clip-major."""
    audio = model.prepare_audio([e.waveform for e in examples])
    text = model.tokenize([t for e in examples for t in e.texts])
    return {
        "mel": audio.mel,
        "mel_lengths": audio.mel_lengths,
        "input_ids": text.input_ids,
        "attention_mask": text.attention_mask,
        "error_rates": torch.tensor([e.error_rates for e in examples], dtype=torch.float32),
        "ids": [e.id for e in examples],
        "languages": [e.language for e in examples],
    }


def shuffled(items: Iterable, buffer_size: int, rng: random.Random) -> Iterator:
    """Streaming shuffle: each incoming item replaces a random one of a full buffer, which is emitted."""
    buffer = []
    for item in items:
        if len(buffer) < buffer_size:
            buffer.append(item)
            continue
        j = rng.randrange(buffer_size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


def bucketed_batches(
    items: Iterable, batch_size: int, bucket_size: int, rng: random.Random, length: Callable[[object], float]
) -> Iterator[list]:
    """Full batches of similar length (little padding): every ``bucket_size`` items are sorted by
    ``length``, cut into batches, and the batches shuffled. An incomplete last batch is dropped."""

    def cut(bucket):
        bucket.sort(key=length)
        batches = [bucket[i : i + batch_size] for i in range(0, len(bucket) - batch_size + 1, batch_size)]
        rng.shuffle(batches)
        return batches

    bucket = []
    for item in items:
        bucket.append(item)
        if len(bucket) >= max(bucket_size, batch_size):
            yield from cut(bucket)
            bucket = []
    yield from cut(bucket)


class _ConsumerStream(IterableDataset):
    """The batches of one rank's DataLoader workers (each worker a separate consumer)."""

    def __init__(self, stream: StreamingBatches, start: dict[int, tuple[int, int]], rotation: int):
        self.stream = stream
        self.start = start
        self.rotation = rotation

    def __iter__(self):
        info = get_worker_info()
        workers = info.num_workers if info else 1
        # Worker 0 is served first; after a resume that must be the consumer whose turn was next.
        consumer = ((info.id if info else 0) + self.rotation) % workers
        epoch, skip = self.start.get(consumer, (0, 0))
        while True:
            produced = 0
            for index, clips in enumerate(self.stream.epoch_batches(epoch, consumer, workers)):
                produced += 1
                if index < skip:
                    continue
                examples = [self.stream.example(c, epoch) for c in clips]
                examples = [e for e in examples if e is not None]
                if examples:
                    batch = self.stream.collate(examples)
                    batch["position"] = (consumer, epoch, index)
                    yield batch
            if produced == 0:
                raise RuntimeError("a data consumer got no full batch in an epoch: too few clips for batch_size")
            epoch, skip = epoch + 1, 0


class StreamingBatches:
    """Endless training batches for one rank, decoded and corrupted on the fly (the GPU path).

    Shards are shuffled per epoch and split across ranks x workers (consumers); with fewer shards
    than consumers, every consumer reads all shards and keeps every n-th clip. ``state_dict`` is the
    position of each consumer; resuming skips the consumed batches without decoding them.
    """

    def __init__(
        self,
        sources: Sequence[str],
        collate: Callable[[Sequence[Example]], dict],
        vocabularies: dict[str, Vocabulary],
        *,
        batch_size: int,
        num_negatives: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        heldout_permille: int = 0,
        shuffle_buffer: int = 1000,
        bucket_size: int = 512,
    ):
        self.sources = list(sources)
        self.collate = collate
        self.vocabularies = vocabularies
        self.batch_size = batch_size
        self.num_negatives = num_negatives
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        self.heldout_permille = heldout_permille
        self.shuffle_buffer = shuffle_buffer
        self.bucket_size = bucket_size
        self.positions: dict[int, tuple[int, int]] = {}  # consumer -> (epoch, next batch index)
        self.served = 0

    def epoch_batches(self, epoch: int, worker: int, workers: int) -> Iterator[list[Clip]]:
        """The clip batches of one consumer in one epoch (audio still encoded)."""
        consumers = self.world_size * workers
        consumer = self.rank * workers + worker
        sources = list(self.sources)
        random.Random(stable_seed(self.seed, "sources", epoch)).shuffle(sources)
        if len(sources) >= consumers:
            clips = read_clips(sources[consumer::consumers])
        else:
            clips = (c for i, c in enumerate(read_clips(sources)) if i % consumers == consumer)
        clips = heldout_filter(clips, self.heldout_permille, keep_heldout=False)
        rng = random.Random(stable_seed(self.seed, "order", epoch, consumer))
        clips = shuffled(clips, self.shuffle_buffer, rng)
        yield from bucketed_batches(clips, self.batch_size, self.bucket_size, rng, length=lambda c: c.duration)

    def example(self, clip: Clip, epoch: int) -> Example | None:
        return make_example(clip, self.num_negatives, self.vocabularies, self.seed, epoch)

    def __iter__(self) -> Iterator[dict]:
        workers = max(self.num_workers, 1)
        start = {consumer: (epoch, index) for consumer, (epoch, index) in self.positions.items()}
        dataset = _ConsumerStream(self, start, rotation=self.served % workers)
        loader = DataLoader(dataset, batch_size=None, num_workers=self.num_workers, persistent_workers=False)
        for batch in loader:
            consumer, epoch, index = batch.pop("position")
            self.positions[consumer] = (epoch, index + 1)
            self.served += 1
            yield batch

    def state_dict(self) -> dict:
        return {"served": self.served, "positions": {str(k): list(v) for k, v in self.positions.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.served = state["served"]
        self.positions = {int(k): tuple(v) for k, v in state["positions"].items()}


def eval_examples(
    sources: Sequence[str],
    vocabularies: dict[str, Vocabulary],
    *,
    num_negatives: int,
    seed: int,
    max_clips: int,
    heldout_permille: int | None,
) -> list[Example]:
    """The evaluation clips: the first ``max_clips`` decodable clips (of the hash split's held-out
    side when ``heldout_permille`` is given) with fixed corruptions (epoch -1), sorted by duration."""
    clips = read_clips(sources)
    if heldout_permille is not None:
        clips = heldout_filter(clips, heldout_permille, keep_heldout=True)
    examples = []
    for clip in clips:
        if len(examples) >= max_clips:
            break
        example = make_example(clip, num_negatives, vocabularies, seed, epoch=-1)
        if example is not None:
            examples.append(example)
    examples.sort(key=lambda e: len(e.waveform))
    return examples
