"""Training data: shards and manifests (:mod:`voiceclap.clips`) -> examples with candidates -> batches.

An example is a decoded :class:`voiceclap.clips.Clip` whose ``candidates`` are the transcripts it is
trained against besides its own, a fixed number per clip so that a batch is a rectangle: first the
candidates stored with the clip (fluent variants, its spoken pair's text; see
:mod:`voiceclap.corpus`), then K corruptions of the card's kind. Empty slots repeat the transcript
with error rate 0, which the loss masks.

Everything random is a pure function of (seed, epoch, ...): the shard order of an epoch, the
shuffle of each consumer's stream, each clip's corruptions (seeded by its id). A stream can
therefore be resumed at a batch index by skipping records, without decoding them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import soundfile
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from voiceclap.audio import AudioDecodeError
from voiceclap.clips import Candidate, Clip, decode_clip, read_clips
from voiceclap.corruption import Vocabulary, build_vocabulary, make_corruptions
from voiceclap.towers import AudioBatch, Features, TextBatch

logger = logging.getLogger(__name__)


@dataclass
class TrainBatch:
    """A batch as the towers take it: audio as model inputs or as cached frozen features; the batch's
    distinct texts likewise, and per clip the indices of its 1 + K texts among them (its own
    transcript first)."""

    audio: AudioBatch | Features
    texts: TextBatch | Features
    error_rates: torch.Tensor  # [B, K]: each candidate's WER/CER against what the clip says
    ids: list[str]
    languages: list[str]
    text_index: torch.Tensor  # [B, 1 + K] into texts
    teacher: torch.Tensor | None = None  # [B, 1 + K] the teacher's scores; NaN where not labelled

    def to(self, device: torch.device) -> TrainBatch:
        teacher = None if self.teacher is None else self.teacher.to(device)
        return replace(self, audio=self.audio.to(device), texts=self.texts.to(device),
                       error_rates=self.error_rates.to(device), text_index=self.text_index.to(device), teacher=teacher)


def stable_seed(*parts) -> int:
    """A seed from any printable parts that is the same in every process and Python run."""
    return int.from_bytes(hashlib.sha1(repr(parts).encode()).digest()[:8], "little")


def is_heldout(clip_id: str, permille: int) -> bool:
    """The seed's split: a clip is held out when sha1(id) mod 1000 < permille."""
    return int(hashlib.sha1(clip_id.encode()).hexdigest(), 16) % 1000 < permille


def heldout_filter(clips: Iterable[Clip], permille: int, keep_heldout: bool) -> Iterator[Clip]:
    return (c for c in clips if is_heldout(c.id, permille) == keep_heldout)


def trainable(clips: Iterable[Clip], exclude_speakers: Sequence[str] = ()) -> Iterator[Clip]:
    """Clips fit to train on, with a duration to bucket batches by before any decoding: a clip with a
    problem is skipped with a warning, one of an excluded speaker (a voice that does not say its text)
    silently; one without a duration gets its file header's (0 when unreadable: it buckets as
    shortest and decoding reports why)."""
    excluded = set(exclude_speakers)
    for clip in clips:
        if clip.error:
            logger.warning("clip %s skipped: %s", clip.id, clip.error)
            continue
        if clip.speaker in excluded:
            continue
        if not clip.duration and isinstance(clip.audio, str):
            try:
                clip.duration = soundfile.info(clip.audio).duration
            except (soundfile.LibsndfileError, RuntimeError):
                clip.duration = 0.0
        yield clip


def decode_or_skip(clip: Clip) -> Clip | None:
    """The clip with its waveform, or None (a warning says why) when its audio cannot be decoded."""
    try:
        return decode_clip(clip)
    except (AudioDecodeError, OSError) as error:
        logger.warning("clip %s skipped: %s", clip.id, error)
        return None


# ----- corruption vocabularies and candidates -----


def build_vocabularies(clips: Iterable[Clip], max_size: int) -> dict[str, Vocabulary]:
    """One corruption vocabulary per language from the transcripts (languages too small for one,
    fewer than 2 distinct units, are left out: their clips get no corruptions)."""
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


def training_candidates(
    clip: Clip, stored: int, num_negatives: int, vocabularies: dict[str, Vocabulary], seed: int, epoch: int
) -> list[Candidate]:
    """``stored`` slots for the clip's stored candidates and ``num_negatives`` corruptions, drawn from
    a generator seeded by (seed, epoch, clip id): the same in any process, worker or resumed run. A
    clip with more stored candidates than slots keeps its spoken pair's text first (the negative only
    listening tells apart), then a seeded choice of the rest. A slot with nothing to fill repeats the
    transcript at error rate 0 (no vocabulary for the language, fewer stored candidates than slots)."""
    rng = random.Random(stable_seed(seed, epoch, clip.id))
    spoken = [c for c in clip.candidates if c.kind == "spoken"]
    others = [c for c in clip.candidates if c.kind != "spoken"]
    rng.shuffle(others)
    chosen = (spoken + others)[:stored]
    empty = Candidate(clip.text, 0.0, "none")
    slots = chosen + [empty] * (stored - len(chosen))
    vocabulary = vocabularies.get(clip.language)
    if num_negatives and vocabulary is not None:
        corruptions = make_corruptions(clip.text, clip.language, num_negatives, vocabulary, rng)
        return slots + [Candidate(c.text, c.error_rate, "corruption") for c in corruptions]
    return slots + [empty] * num_negatives


def make_example(clip: Clip, stored: int, num_negatives: int, vocabularies, seed: int, epoch: int) -> Clip | None:
    example = decode_or_skip(clip)
    if example is not None:
        example.candidates = training_candidates(clip, stored, num_negatives, vocabularies, seed, epoch)
    return example


def collate(model, examples: Sequence[Clip]) -> TrainBatch:
    """Model inputs for a batch: log-mels, and the distinct texts (each clip's transcript and its
    candidates) tokenized once."""
    per_clip = [(e.text, *(c.text for c in e.candidates)) for e in examples]
    distinct = list(dict.fromkeys(t for texts in per_clip for t in texts))
    position = {text: i for i, text in enumerate(distinct)}
    return TrainBatch(
        audio=model.prepare_audio([e.audio for e in examples]),
        texts=model.tokenize(distinct),
        error_rates=torch.tensor([[c.error_rate for c in e.candidates] for e in examples], dtype=torch.float32),
        ids=[e.id for e in examples],
        languages=[e.language for e in examples],
        text_index=torch.tensor([[position[t] for t in texts] for texts in per_clip]),
    )


# ----- batching -----


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
                    yield self.stream.collate(examples), (consumer, epoch, index)
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
        collate: Callable[[Sequence[Clip]], TrainBatch],
        vocabularies: dict[str, Vocabulary],
        *,
        batch_size: int,
        stored_candidates: int,
        num_negatives: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        heldout_permille: int = 0,
        exclude_speakers: Sequence[str] = (),
        shuffle_buffer: int = 1000,
        bucket_size: int = 512,
    ):
        self.sources = list(sources)
        self.collate = collate
        self.vocabularies = vocabularies
        self.batch_size = batch_size
        self.stored_candidates = stored_candidates
        self.num_negatives = num_negatives
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.num_workers = num_workers
        self.heldout_permille = heldout_permille
        self.exclude_speakers = list(exclude_speakers)
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
        clips = trainable(heldout_filter(clips, self.heldout_permille, keep_heldout=False), self.exclude_speakers)
        rng = random.Random(stable_seed(self.seed, "order", epoch, consumer))
        clips = shuffled(clips, self.shuffle_buffer, rng)
        yield from bucketed_batches(clips, self.batch_size, self.bucket_size, rng, length=lambda c: c.duration)

    def example(self, clip: Clip, epoch: int) -> Clip | None:
        return make_example(clip, self.stored_candidates, self.num_negatives, self.vocabularies, self.seed, epoch)

    def __iter__(self) -> Iterator[TrainBatch]:
        workers = max(self.num_workers, 1)
        start = {consumer: (epoch, index) for consumer, (epoch, index) in self.positions.items()}
        dataset = _ConsumerStream(self, start, rotation=self.served % workers)
        loader = DataLoader(dataset, batch_size=None, num_workers=self.num_workers, persistent_workers=False)
        for batch, (consumer, epoch, index) in loader:
            self.positions[consumer] = (epoch, index + 1)
            self.served += 1
            yield batch

    def state_dict(self) -> dict:
        return {"served": self.served, "positions": {str(k): list(v) for k, v in self.positions.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.served = state["served"]
        self.positions = {int(k): tuple(v) for k, v in state["positions"].items()}
