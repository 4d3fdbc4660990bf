"""Batch scoring engine: every manifest row ends as a score or an explicit error.

How a run goes (`score_manifest`, with a :class:`ScoringEngine`):

1. Rows already in the output (``resume=True``) are skipped; the rest are cut into windows of
   ``window_batches * batch_size`` rows. A thread pool decodes the next window while the model
   computes the current one (libsndfile, FFmpeg and soxr release the GIL while they work).
2. Within a window, clips are sorted by length and batched, so a batch holds clips of similar
   length and padding (which costs compute in ``masked`` pooling) stays small. A batch holds at
   most ``batch_size`` clips (one, for ``seed`` pooling on a CPU) and ``batch_seconds`` of padded
   audio (by default 60 s on a CPU, 960 s on a GPU): attention memory grows with clips x length^2,
   and 16 clips of 30 s would need over 1 GB for the attention weights alone.
   Scores do not depend on the batch a clip lands in (masked pooling ignores padding).
3. The backend scores a batch: the CLAP (:class:`ClapBackend`) sends each unique transcript through
   the text tower once and keeps its embedding in an LRU cache.
4. Records are appended to the output and flushed after every batch, so a killed run loses at most
   the batch in flight. At the end the output is rewritten in input order (atomically, via a
   temporary file and a rename) and a :class:`Summary` is computed from it.

Sharding: under ``torchrun`` (``WORLD_SIZE`` > 1) rank r scores rows i with i % world == r into
``<output>.part-<r>-of-<world>.jsonl``; after a barrier, rank 0 merges the parts into the output in
input order. A resumed run reads every part and the output, whatever world size wrote them.

Outcome per row, in the ``error`` field or as flags:

- file missing, empty, a directory, not audio, or damaged so that no decoder reads it to its end:
  ``error`` (the decoders' message). A damaged file the decoders do read (an MP3 or WAV cut short is
  a valid shorter stream; FFmpeg drops FLAC frames that fail their CRC) is scored on what decodes;
  ``duration`` shows how much that was.
- under 0.1 s, NaN or infinite samples: ``error``.
- any channel count, any sample rate: downmixed and resampled, scored.
- over ``max_audio_seconds`` (30 s): scored on the start, ``truncated_audio``.
- silence (peak below -60 dBFS): scored and flagged ``silent``. Silent output is a real failure of
  the system under test (a TTS that produced nothing), so it gets the low score it earns rather than
  disappearing as an error; the flag tells it apart from speech that merely mismatches.
- empty or whitespace-only transcript: ``error`` (there is nothing to compare the audio with).
- transcript over the tokenizer limit: scored on its start, ``truncated_text``.
- manifest-level row problems (invalid UTF-8, wrong field count, bad JSON): ``error``.
- duplicate id: scored, ``duplicate_id``.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
import statistics
import sys
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import audio as A
from .clips import Clip, decode_clip
from .manifest import Manifest, transcript_problem

if TYPE_CHECKING:  # a traced model scores without transformers, which voiceclap.model imports
    from .model import VoiceCLAP
    from .traced import TracedCLAP

OUTPUT_FORMATS = {".jsonl": "jsonl", ".csv": "csv"}
FLAGS = ("truncated_audio", "truncated_text", "silent", "duplicate_id")
# A torchrun job whose rank dies is torn down by torchrun itself, so a long barrier timeout never
# leaves a failed job hanging; it only has to cover ranks finishing at different times.
BARRIER_TIMEOUT = timedelta(hours=24)


# Padded audio per model call on CPU. On benchmarks/speed.py's 200 clips with the default model, 60 s
# beat 120 s in time (10.7-11.0 vs 12.6-14.7 s) and in peak memory (1,138-1,145 vs 1,217-1,221 MiB).
DEFAULT_BATCH_SECONDS = 60.0
# On an accelerator, larger batches are what keep it busy: 960 s is 32 seed-pooled (30 s) clips, whose
# attention weights take ~1.2 GB per layer in bf16 even where no fused kernel avoids storing them.
GPU_BATCH_SECONDS = 960.0


def default_batch_seconds(device: torch.device) -> float:
    """The padded-audio budget per model call when none is given: small on a CPU, large elsewhere."""
    return DEFAULT_BATCH_SECONDS if device.type == "cpu" else GPU_BATCH_SECONDS


class ScoringError(RuntimeError):
    """Nothing could be scored (bad output path, an output from another manifest, ...)."""


# ----- what the engine scores with -----


class ClapBackend:
    """The CLAP (the default): cosine of the clip's and the transcript's embeddings. Each distinct transcript goes
    through the text tower once and stays in an LRU cache of ``text_cache_size`` entries, so a
    transcript repeated across the manifest (one sentence, many systems) is usually not encoded again."""

    def __init__(self, model: VoiceCLAP | TracedCLAP, text_cache_size: int = 16384):
        self.model = model.eval()
        self.device = model.device
        self.needs_language = False
        self.max_seconds = model.config.max_audio_seconds
        # Seed pooling pads every clip to 30 s: that, not the clip, is what a batch costs.
        self.padded_seconds = A.CHUNK_LENGTH if model.config.audio_pooling == "seed" else None
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[str, tuple[torch.Tensor, bool]] = OrderedDict()

    @property
    def calibrated(self) -> bool:
        return self.model.calibration is not None

    def estimate_wer(self, scores: np.ndarray) -> np.ndarray | None:
        return self.model.estimate_wer(scores)

    @torch.inference_mode()
    def prepare(self, texts: set[str]) -> None:
        """Text-tower pass over the transcripts not in the cache, in length-sorted batches."""
        for text in texts & self._text_cache.keys():
            self._text_cache.move_to_end(text)  # in use: evicted last
        new = sorted((t for t in texts if t not in self._text_cache), key=len)
        for start in range(0, len(new), 64):
            chunk = new[start : start + 64]
            tokens = self.model.tokenize(chunk)
            embeddings = self.model.embed_text_batch(tokens).float().cpu()
            for text, embedding, truncated in zip(chunk, embeddings, tokens.truncated):
                self._text_cache[text] = (embedding, bool(truncated))
        # Evict only after the window's own texts are in: they are needed until it is scored.
        while len(self._text_cache) > max(self.text_cache_size, len(texts)):
            self._text_cache.popitem(last=False)

    @torch.inference_mode()
    def score(self, clips: Sequence[Clip]) -> tuple[np.ndarray, list[bool]]:
        """Decoded clips (their texts prepared) -> (scores, transcript truncated per clip)."""
        audio = self.model.embed_audio_batch(self.model.prepare_audio([c.audio for c in clips]))
        texts = [self._text_cache[c.text] for c in clips]
        text = torch.stack([embedding for embedding, _ in texts]).to(audio.device)
        return (audio * text).sum(-1).float().cpu().numpy(), [truncated for _, truncated in texts]


class TeacherBackend:
    """Whisper's decoder (:class:`voiceclap.teacher.WhisperTeacher`): the likelihood it gives the
    transcript, normalized as the teacher is configured. Slower and more accurate than the CLAP; it
    needs each row's language (Whisper is told, not asked, what language it hears)."""

    needs_language = True

    def __init__(self, teacher):
        if teacher.normalization == "pmi_other":
            raise ValueError("pmi_other compares a clip with another clip's audio: use it in voiceclap eval")
        self.teacher = teacher
        self.device = teacher.device
        self.max_seconds = A.CHUNK_LENGTH
        self.padded_seconds = A.CHUNK_LENGTH if teacher.context == "full" else None

    @property
    def calibrated(self) -> bool:
        return self.teacher.calibration is not None

    def estimate_wer(self, scores: np.ndarray) -> np.ndarray | None:
        return self.teacher.estimate_wer(scores)

    def prepare(self, texts: set[str]) -> None:
        """Nothing to prepare: every pair goes through the decoder with its own clip."""

    def score(self, clips: Sequence[Clip]) -> tuple[np.ndarray, list[bool]]:
        scores, truncated = [], []
        for clip in clips:
            score, likelihoods = self.teacher.encoded_scores(self.teacher.encode(clip.audio), [clip.text], clip.language)
            scores.append(score[0])
            truncated.append(likelihoods.text_truncated[0])
        return np.array(scores), truncated


def fields_for(backend: ClapBackend | TeacherBackend) -> list[str]:
    """Output columns; ``estimated_wer`` only for a calibrated scorer."""
    calibrated = ["estimated_wer"] if backend.calibrated else []
    return ["row", "id", "audio", "language", "system", "score", *calibrated, "duration", *FLAGS, "error"]


# ----- the engine -----


def decode_row(clip: Clip) -> Clip:
    """One row's audio decoded (whole); every failure becomes the row's error, never an exception."""
    try:
        return decode_clip(clip)
    except A.AudioDecodeError as error:
        message = str(error)
    except OSError as error:  # a directory, no permission, an I/O error
        message = f"cannot read {clip.audio}: {error.strerror or error}"
    except Exception as error:  # noqa: BLE001 - third-party decoders raise anything; one file must not end the run
        message = f"cannot decode audio: {type(error).__name__}: {error}"
    return replace(clip, error=message)


def base_record(clip: Clip, fields: Sequence[str]) -> dict:
    record = dict.fromkeys(fields)
    record.update(row=clip.row, id=clip.id, audio=clip.extra.get("audio"), language=clip.language, system=clip.speaker)
    record.update(dict.fromkeys(FLAGS, False), duplicate_id=clip.duplicate_id)
    return record


class ScoringEngine:
    """Scores manifest rows with a backend; see the module docstring for the pipeline."""

    def __init__(
        self,
        backend: ClapBackend | TeacherBackend,
        batch_size: int = 16,
        batch_seconds: float | None = None,
        decode_workers: int = 2,
        window_batches: int = 8,
    ):
        batch_seconds = default_batch_seconds(backend.device) if batch_seconds is None else batch_seconds
        if batch_size < 1 or decode_workers < 1 or window_batches < 1 or batch_seconds <= 0:
            raise ValueError("batch_size, decode_workers, window_batches and batch_seconds must be positive")
        self.backend = backend
        # On a CPU one 30 s padded clip keeps both cores busy, and two per batch were slower per clip
        # (0.62 against 0.58 s, 100 clips, whisper-base); short unpadded clips do gain from batching.
        on_cpu = backend.device.type == "cpu"
        self.batch_size = 1 if on_cpu and backend.padded_seconds else batch_size
        self.batch_samples = batch_seconds * A.SAMPLE_RATE
        self.decode_workers = decode_workers
        self.window = batch_size * window_batches
        self.fields = fields_for(backend)

    def score_rows(self, clips: Iterable[Clip]) -> Iterator[list[dict]]:
        """Records for manifest rows, one list per batch (failed rows come in lists of their own)."""
        clips = list(clips)
        windows = [clips[i : i + self.window] for i in range(0, len(clips), self.window)]
        with ThreadPoolExecutor(self.decode_workers, thread_name_prefix="voiceclap-decode") as pool:

            def submit(window: list[Clip]) -> list[Future]:
                return [pool.submit(decode_row, clip) for clip in window if self._problem(clip) is None]

            pending = submit(windows[0]) if windows else []
            for k, window in enumerate(windows):
                current = pending
                # Queue the next window now: it decodes while this one is on the model.
                pending = submit(windows[k + 1]) if k + 1 < len(windows) else []
                failed = [self._error(clip, self._problem(clip)) for clip in window if self._problem(clip) is not None]
                decoded = [future.result() for future in current]
                failed += [self._error(clip, clip.error) for clip in decoded if clip.error is not None]
                if failed:
                    yield failed
                yield from self._score_window([clip for clip in decoded if clip.error is None])

    def _problem(self, clip: Clip) -> str | None:
        """Why a row cannot be scored before its audio is even read, or None."""
        if clip.error is None and self.backend.needs_language and not clip.language:
            return "this scorer needs the clip's language (a `language` column)"
        return clip.error

    def _error(self, clip: Clip, message: str) -> dict:
        record = base_record(clip, self.fields)
        record["error"] = " ".join(message.split())  # one line, whatever the decoder said
        return record

    def _score_window(self, clips: list[Clip]) -> Iterator[list[dict]]:
        clips.sort(key=lambda c: len(c.audio))
        self.backend.prepare({c.text for c in clips})
        for batch in self.batches(clips):
            try:
                yield self._score_batch(batch)
            except Exception as error:  # noqa: BLE001 - a model failure on one batch must not end the run
                # Retry one by one, so that only the clip that breaks the model fails.
                if len(batch) == 1:
                    yield [self._error(batch[0], f"model error: {type(error).__name__}: {error}")]
                else:
                    for clip in batch:
                        yield from self._score_window([clip])

    def batches(self, clips: list[Clip]) -> Iterator[list[Clip]]:
        """Consecutive runs of length-sorted clips within both the clip and the padded-audio budget."""
        max_samples = int(self.backend.max_seconds * A.SAMPLE_RATE)
        padded = self.backend.padded_seconds
        batch: list[Clip] = []
        for clip in clips:
            # Sorted: this clip is the longest of the batch so far.
            length = int(padded * A.SAMPLE_RATE) if padded else min(len(clip.audio), max_samples)
            if batch and (len(batch) == self.batch_size or (len(batch) + 1) * length > self.batch_samples):
                yield batch
                batch = []
            batch.append(clip)
        if batch:
            yield batch

    def _score_batch(self, batch: list[Clip]) -> list[dict]:
        max_samples = int(self.backend.max_seconds * A.SAMPLE_RATE)
        scores, text_truncated = self.backend.score([replace(c, audio=c.audio[:max_samples]) for c in batch])
        estimated = self.backend.estimate_wer(scores)
        records = []
        for i, clip in enumerate(batch):
            record = base_record(clip, self.fields)
            record.update(
                score=round(float(scores[i]), 6),
                duration=round(len(clip.audio) / A.SAMPLE_RATE, 3),
                truncated_audio=len(clip.audio) > max_samples,
                truncated_text=text_truncated[i],
                silent=A.is_silent(clip.audio),
            )
            if estimated is not None:
                record["estimated_wer"] = round(float(estimated[i]), 6)
            records.append(record)
        return records


def score_pair(backend: ClapBackend | TeacherBackend, audio: str | os.PathLike, text: str,
               language: str | None = None) -> dict:
    """One (audio file, transcript) pair -> the same record a manifest row would get."""
    clip = Clip("pair", text, language, audio=str(audio), row=0, error=transcript_problem(text),
                extra={"audio": str(audio)})
    (records,) = ScoringEngine(backend, batch_size=1, decode_workers=1).score_rows([clip])
    return records[0]


# ----- output files -----


def output_format(path: str | os.PathLike) -> str:
    fmt = OUTPUT_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ScoringError(f"output must end in {' or '.join(OUTPUT_FORMATS)}: {path}")
    return fmt


def _csv_value(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    # One physical line per record: resuming cuts a killed run's output at its last newline.
    return str(value).replace("\r", " ").replace("\n", " ")


def serialize(records: Iterable[dict], fmt: str, fields: Sequence[str]) -> str:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([_csv_value(r.get(f)) for f in fields] for r in records)
    return buffer.getvalue()


def csv_header(fields: Sequence[str]) -> str:
    return serialize([dict(zip(fields, fields))], "csv", fields)


def _typed_csv_record(raw: dict[str, str]) -> dict:
    record: dict = {}
    for key, value in raw.items():
        if key in FLAGS:
            record[key] = value == "true"
        elif key == "row":
            record[key] = int(value)
        elif key in ("score", "estimated_wer", "duration"):
            record[key] = float(value) if value else None
        else:
            record[key] = value or None
    return record


def _complete_text(path: Path) -> str:
    """The file up to its last newline: what a killed writer left complete."""
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].decode("utf-8")


def read_records(path: str | os.PathLike, fields: Sequence[str] | None = None) -> list[dict]:
    """Complete records of an output file (JSONL or CSV); a torn last line is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        text = _complete_text(path)
        if output_format(path) == "jsonl":
            records = [json.loads(line) for line in text.split("\n") if line.strip()]
            if not all(isinstance(r, dict) for r in records):
                raise ValueError("a line is not a JSON object")
            return records
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if reader.fieldnames is None:
            return []
        if fields is not None and list(reader.fieldnames) != list(fields):
            raise ScoringError(
                f"{path} has columns {','.join(reader.fieldnames)}, this model writes {','.join(fields)}; "
                "score into a new file"
            )
        return [_typed_csv_record(raw) for raw in reader]
    except (ValueError, KeyError) as error:
        raise ScoringError(f"cannot resume from {path}: it is not an output of voiceclap score ({error})") from None


class RecordWriter:
    """Appends records to an output file, flushing after every batch."""

    def __init__(self, path: Path, fmt: str, fields: Sequence[str], append: bool):
        self.fmt, self.fields = fmt, fields
        if append and path.exists():
            # Cut a torn last line (the process was killed mid-write) before appending after it.
            with open(path, "rb+") as f:
                f.truncate(len(_complete_text(path).encode("utf-8")))
        try:
            # Open for the writer's lifetime; score_manifest closes it in a finally block.
            self.file = open(path, "a" if append else "w", encoding="utf-8", newline="")  # noqa: SIM115
        except OSError as error:
            raise ScoringError(f"cannot write {path}: {error.strerror or error}") from None
        if fmt == "csv" and self.file.tell() == 0:
            self.file.write(csv_header(fields))

    def write(self, records: list[dict]) -> None:
        self.file.write(serialize(records, self.fmt, self.fields))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


# ----- summary -----


@dataclass
class Summary:
    total: int
    scored: int
    failed: int
    flags: dict[str, int]
    groups: dict[str, dict[str, dict]]  # "all"/"language"/"system" -> group value -> stats
    output: str = ""
    first_errors: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, records: Sequence[dict], output: str = "") -> Summary:
        """Mean, median and count of scores overall, per language and per system; failures counted."""
        scores: dict[tuple[str, str], list[float]] = defaultdict(list)
        failures: dict[tuple[str, str], int] = defaultdict(int)
        for record in records:
            keys = [("all", "all"), ("language", record.get("language") or "-"), ("system", record.get("system") or "-")]
            for key in keys:
                if record.get("error"):
                    failures[key] += 1
                else:
                    scores[key].append(record["score"])
        groups: dict[str, dict[str, dict]] = {"all": {}, "language": {}, "system": {}}
        for key in sorted(set(scores) | set(failures), key=lambda k: (list(groups).index(k[0]), k[1])):
            values = scores.get(key, [])
            groups[key[0]][key[1]] = {
                "count": len(values),
                "mean": statistics.fmean(values) if values else None,
                "median": statistics.median(values) if values else None,
                "failed": failures.get(key, 0),
            }
        errors = [r for r in records if r.get("error")]
        return cls(
            total=len(records),
            scored=len(records) - len(errors),
            failed=len(errors),
            flags={flag: sum(bool(r.get(flag)) for r in records) for flag in FLAGS},
            groups=groups,
            output=output,
            first_errors=[f"row {r['row'] + 1} ({r['id']}): {r['error']}" for r in errors[:3]],
        )

    @property
    def exit_code(self) -> int:
        return 0 if self.failed == 0 else 1

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "scored": self.scored,
            "failed": self.failed,
            "flags": self.flags,
            "groups": self.groups,
            "output": self.output,
        }

    def format(self) -> str:
        lines = [f"scored {self.scored} of {self.total} rows, {self.failed} failed" + (f" -> {self.output}" if self.output else "")]
        flagged = ", ".join(f"{k} {v}" for k, v in self.flags.items() if v)
        if flagged:
            lines.append(f"flagged rows: {flagged}")
        lines.extend(f"  e.g. {e}" for e in self.first_errors)
        lines.append(f"{'':24s} {'count':>7s} {'mean':>8s} {'median':>8s} {'failed':>7s}")
        for kind, groups in self.groups.items():
            for name, stats in groups.items():
                label = "all" if kind == "all" else f"{kind} {name}"
                mean = "-" if stats["mean"] is None else f"{stats['mean']:.4f}"
                median = "-" if stats["median"] is None else f"{stats['median']:.4f}"
                lines.append(f"{label[:24]:24s} {stats['count']:7d} {mean:>8s} {median:>8s} {stats['failed']:7d}")
        return "\n".join(lines)


# ----- sharding -----


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @classmethod
    def from_env(cls) -> Shard:
        """torchrun's RANK/WORLD_SIZE/LOCAL_RANK/LOCAL_WORLD_SIZE; a single process without them."""
        def env(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        return cls(env("RANK", 0), env("WORLD_SIZE", 1), env("LOCAL_RANK", 0), env("LOCAL_WORLD_SIZE", 1))

    def owns(self, clip: Clip) -> bool:
        return clip.row % self.world == self.rank


def default_device(shard: Shard) -> torch.device:
    return torch.device(f"cuda:{shard.local_rank}") if torch.cuda.is_available() else torch.device("cpu")


def part_path(output: Path, shard: Shard) -> Path:
    return output.with_name(f"{output.name}.part-{shard.rank}-of-{shard.world}.jsonl")


def _all_parts(output: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(glob.escape(str(output)) + ".part-*-of-*.jsonl"))


# ----- a whole manifest -----


def _check_belongs(records: Iterable[dict], manifest: Manifest, source: Path) -> dict[int, dict]:
    """Records by row; each must be the manifest's row of that index (same id), else the output is
    from another manifest and resuming into it would mix two jobs."""
    found: dict[int, dict] = {}
    for record in records:
        index = record.get("row")
        if not isinstance(index, int) or not 0 <= index < len(manifest.clips) or manifest.clips[index].id != record.get("id"):
            raise ScoringError(
                f"{source} does not match {manifest.path} (record {record.get('row')!r}, id {record.get('id')!r}); "
                "score into a new file or drop --resume"
            )
        found.setdefault(index, record)
    return found


def score_manifest(
    backend: ClapBackend | TeacherBackend,
    manifest: Manifest,
    output: str | os.PathLike,
    *,
    batch_size: int = 16,
    batch_seconds: float | None = None,
    resume: bool = False,
    decode_workers: int = 2,
    progress: bool | None = None,
    shard: Shard | None = None,
) -> Summary:
    """Score every row of `manifest` into `output` (.jsonl or .csv); see the module docstring.

    Returns the summary of the whole output (on every rank when sharded)."""
    output = Path(output)
    fmt = output_format(output)
    shard = shard or Shard.from_env()
    engine = ScoringEngine(backend, batch_size=batch_size, batch_seconds=batch_seconds, decode_workers=decode_workers)
    sharded = shard.world > 1
    own_group = sharded and not torch.distributed.is_initialized()
    if own_group:
        torch.distributed.init_process_group("gloo", timeout=BARRIER_TIMEOUT)

    done: set[int] = set()
    if resume:
        sources = [output, *_all_parts(output)]
        for source in sources:
            done.update(_check_belongs(read_records(source, engine.fields if source == output else None), manifest, source))
    todo = [clip for clip in manifest.clips if shard.owns(clip) and clip.row not in done]

    working = part_path(output, shard) if sharded else output
    writer = RecordWriter(working, "jsonl" if sharded else fmt, engine.fields, append=resume)
    bar = _progress(len(todo), progress if shard.rank == 0 else False)
    try:
        for records in engine.score_rows(todo):
            writer.write(records)
            bar.update(len(records))
    finally:
        writer.close()
        bar.close()

    summary = None
    if sharded:
        torch.distributed.barrier()
    if shard.rank == 0:
        summary = _merge(manifest, output, fmt, engine.fields, resume, shard)
    if sharded:
        shared = [summary]
        torch.distributed.broadcast_object_list(shared, src=0)
        summary = shared[0]
    if own_group:
        torch.distributed.destroy_process_group()
    return summary


def _merge(manifest: Manifest, output: Path, fmt: str, fields: Sequence[str], resume: bool, shard: Shard) -> Summary:
    """Rewrite `output` in input order from itself and the part files; check that no row is missing.

    A fresh run reads only what it wrote (the output itself, or this world's parts); a resumed one
    also reads what earlier runs left, whatever world size wrote it."""
    parts = _all_parts(output)
    if resume:
        sources = [output, *parts]
    elif shard.world > 1:
        sources = [part_path(output, Shard(rank, shard.world)) for rank in range(shard.world)]
    else:
        sources = [output]
    by_row: dict[int, dict] = {}
    for source in sources:
        for index, record in _check_belongs(read_records(source, fields if source == output else None), manifest, source).items():
            by_row.setdefault(index, record)
    missing = [clip.id for clip in manifest.clips if clip.row not in by_row]
    if missing:
        raise ScoringError(f"{len(missing)} rows have no record after scoring, e.g. {missing[:3]}")
    records = [{f: by_row[i].get(f) for f in fields} for i in range(len(manifest.clips))]
    temporary = output.with_name(output.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as f:
        if fmt == "csv":
            f.write(csv_header(fields))
        f.write(serialize(records, fmt, fields))
    os.replace(temporary, output)
    for part in parts:
        part.unlink()
    return Summary.of(records, str(output))


def _progress(total: int, enabled: bool | None):
    from tqdm import tqdm

    # None: a bar only when stderr is a terminal, so logs and CI output stay clean.
    return tqdm(total=total, unit="row", disable=(not sys.stderr.isatty()) if enabled is None else not enabled)
