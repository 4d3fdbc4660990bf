"""The one way the corpus is written: planned units -> shard jobs -> a process pool, resumable.

A part plans *units*: lists of JSON-able planned clips that belong together and are written
adjacent in one shard (a synthesized clip, a spoken pair, the lines of one recording). A split's
units are cut into shards of at most ``shard_size`` clips (a unit is never cut), each one
:class:`ShardJob`: its units and the part's ``render(unit) -> [(Clip, FLAC bytes)]``, a module-level
function so that jobs pickle to the pool's workers. A unit that cannot be rendered raises
:class:`UnitFailed` and is left out, listed in the shard's stats.

A shard is done when its stats file (``shard-NNNNNN.stats.json``) exists: it is written last,
atomically, after the shard itself (:func:`voiceclap.clips.write_shard` writes under a temporary
name and renames). An interrupted build resumes by skipping the done shards; ``plan.json`` holds
the fingerprint of a part's plan, so that a different plan is refused rather than mixed in.

:func:`run_jobs` runs any jobs with ``path``, ``size`` (progress units), ``done()`` and
``run(advance) -> str``: the shard jobs here and the annotation of existing shards
(:mod:`voiceclap.corpus.annotate`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import queue
import signal
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
from tqdm import tqdm

from voiceclap.audio import SAMPLE_RATE
from voiceclap.clips import Clip, read_shard, write_shard

__all__ = [
    "Job",
    "ShardJob",
    "UnitFailed",
    "check_plan",
    "fingerprint",
    "flac",
    "read_stats",
    "remove_stale",
    "run_jobs",
    "shard_jobs",
    "shard_stats",
    "stats_path",
    "write_json",
]

Unit = list[dict]
Render = Callable[[Unit], list[tuple[Clip, bytes]]]

# Version of the plan fingerprint; 1 is the first corpus's.
_PLAN_VERSION = 1
# Plan keys quoted when a directory holds a different plan.
_PLAN_KEYS = ("seed", "clips", "shard_size", "max_sentences", "augment")
_PROGRESS_BATCH = 10  # clips a worker reports at once


class UnitFailed(Exception):
    """A unit that cannot be rendered (a synthesis failure, unreadable audio): left out, counted
    against ``source``."""

    def __init__(self, message: str, source: str) -> None:
        super().__init__(message)
        self.source = source


class Job(Protocol):
    path: str

    @property
    def size(self) -> int: ...

    def done(self) -> bool: ...

    def run(self, advance: Callable[[int], None]) -> str: ...


def flac(waveform: np.ndarray) -> bytes:
    """The shards' audio: a 16 kHz mono waveform as 16-bit FLAC."""
    buffer = io.BytesIO()
    sf.write(buffer, waveform, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue()


def write_json(path: Path, data: dict) -> None:
    """``data`` as JSON at ``path``, atomically (temporary name, then rename)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    os.replace(tmp, path)


# ----- plans


def fingerprint(splits: dict[str, list[Unit]], shard_size: int) -> str:
    """A digest of every planned clip, in split and unit order (the first corpus's, for its plan)."""
    digest = hashlib.sha256(f"v{_PLAN_VERSION}:{shard_size}".encode())
    for units in splits.values():
        for unit in units:
            for clip in unit:
                digest.update(json.dumps(clip, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def check_plan(directory: Path, description: dict) -> None:
    """Record the plan in ``directory/plan.json``, or refuse a plan other than the one recorded."""
    plan_path = directory / "plan.json"
    if plan_path.exists():
        previous = json.loads(plan_path.read_text())
        if previous.get("fingerprint") != description["fingerprint"]:
            recorded = ", ".join(f"{key}={previous[key]}" for key in _PLAN_KEYS if key in previous)
            raise RuntimeError(
                f"{directory} holds a build with a different plan ({recorded}); resume it with the "
                "same arguments, installed voices and sources, or choose a new --out"
            )
    else:
        directory.mkdir(parents=True, exist_ok=True)
        write_json(plan_path, description)


def remove_stale(directory: Path) -> None:
    """Remove the temporary files an interrupted run left under ``directory``."""
    for stale in directory.glob("**/*.tmp-*"):
        stale.unlink()


# ----- shard jobs


def stats_path(shard: str | Path) -> Path:
    shard = Path(shard)
    return shard.with_name(shard.name.replace(".tar", ".stats.json"))


def shard_stats(clips: Iterable[Clip]) -> dict:
    """Clips and seconds in total and per (source, language, speaker): what summaries add up."""
    rows: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
    for clip in clips:
        row = rows[(clip.source, clip.language, clip.speaker)]
        row[0] += 1
        row[1] += clip.duration or 0.0
    speakers = [
        {"source": source, "language": language, "speaker": speaker, "clips": n, "seconds": round(seconds, 3)}
        for (source, language, speaker), (n, seconds) in sorted(rows.items(), key=lambda item: tuple(map(str, item[0])))
    ]
    return {
        "clips": sum(row["clips"] for row in speakers),
        "seconds": round(sum(row["seconds"] for row in speakers), 3),
        "speakers": speakers,
    }


def _first_corpus_clips(shard: Path) -> Iterable[Clip]:
    for clip in read_shard(str(shard), with_audio=False):
        clip.source = clip.source or clip.extra["engine"]  # its clips name the engine only
        yield clip


def read_stats(path: Path) -> dict:
    """A shard's stats. Stats files of the first corpus count per voice only: they are completed
    from the shard's metadata (once; the file is rewritten)."""
    stats = json.loads(path.read_text())
    if "speakers" not in stats:
        stats.update(shard_stats(_first_corpus_clips(path.with_name(path.name.replace(".stats.json", ".tar")))))
        stats["failed"] = [{"ids": [f["id"]], "source": None, "error": f["error"]} for f in stats["failed"]]
        write_json(path, stats)
    return stats


@dataclass(frozen=True)
class ShardJob:
    """One shard to write: ``units`` rendered by ``render``."""

    path: str
    units: list[Unit]
    render: Render

    @property
    def size(self) -> int:
        return sum(len(unit) for unit in self.units)

    def done(self) -> bool:
        return stats_path(self.path).exists()

    def run(self, advance: Callable[[int], None]) -> str:
        path = Path(self.path)
        failed: list[dict] = []
        written: list[Clip] = []

        def rendered():
            for unit in self.units:
                try:
                    clips = self.render(unit)
                except UnitFailed as error:
                    failed.append(
                        {"ids": [clip["id"] for clip in unit], "source": error.source, "error": str(error)[:300]}
                    )
                    continue
                finally:
                    advance(len(unit))
                for clip, audio in clips:
                    written.append(clip)
                    yield clip, audio

        write_shard(path, rendered())
        stats = {"shard": f"{path.parent.name}/{path.name}", **shard_stats(written), "failed": failed}
        # The stats file comes last, atomically: a shard is done when its stats file exists.
        write_json(stats_path(path), stats)
        return (
            f"finished {stats['shard']}: {stats['clips']} clips, {stats['seconds'] / 3600:.2f} h"
            + (f", {len(failed)} failed" if failed else "")
        )


def _cut(units: list[Unit], shard_size: int) -> list[list[Unit]]:
    """Consecutive runs of units of at most ``shard_size`` clips (a larger unit alone)."""
    shards: list[list[Unit]] = []
    size = math.inf
    for unit in units:
        if size + len(unit) > shard_size:
            shards.append([])
            size = 0
        shards[-1].append(unit)
        size += len(unit)
    return shards


def shard_jobs(directory: Path, splits: dict[str, list[Unit]], shard_size: int, render: Render) -> list[ShardJob]:
    """The shards of every split, ``directory/<split>/shard-NNNNNN.tar``, in split order."""
    return [
        ShardJob(str(directory / split / f"shard-{index:06d}.tar"), shard, render)
        for split, units in splits.items()
        for index, shard in enumerate(_cut(units, shard_size))
    ]


# ----- running


_progress_queue = None


def _init_worker(progress) -> None:
    global _progress_queue
    _progress_queue = progress


def _run_in_worker(job: Job) -> str:
    pending = 0

    def advance(n: int) -> None:
        nonlocal pending
        pending += n
        if pending >= _PROGRESS_BATCH:
            _progress_queue.put(pending)
            pending = 0

    line = job.run(advance)
    if pending:
        _progress_queue.put(pending)
    return line


def run_jobs(jobs: Sequence[Job], workers: int, progress: bool, desc: str, unit: str = "clip") -> None:
    """Run the jobs, in order, on ``workers`` processes (forked), with a progress bar in ``unit``."""
    bar = tqdm(
        total=sum(job.size for job in jobs),
        unit=unit,
        disable=not progress,
        mininterval=1 if sys.stderr.isatty() else 30,
        desc=desc,
        dynamic_ncols=True,
    )
    if workers <= 1:
        for job in jobs:
            bar.write(job.run(bar.update))
        bar.close()
        return
    context = multiprocessing.get_context("fork")
    reports = context.Queue()  # workers report finished progress units here
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set() or not reports.empty():
            try:
                bar.update(reports.get(timeout=0.5))
            except queue.Empty:
                continue

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    # SIGTERM (kill, a scheduler ending the job) unwinds like Ctrl-C, so the pool below terminates
    # its workers instead of leaving them orphaned and still writing shards.
    previous_handler = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        with context.Pool(workers, initializer=_init_worker, initargs=(reports,)) as pool:
            # Tasks are handed out in submission order (chunksize 1), which keeps the priority order
            # (evaluation splits first); results arrive as jobs finish.
            for line in pool.imap_unordered(_run_in_worker, jobs, chunksize=1):
                bar.write(line)
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        stop.set()
        reader.join()
        bar.close()
