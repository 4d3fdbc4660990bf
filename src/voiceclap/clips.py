"""One clip record for the whole package, and the one reader and writer of the places clips live.

A :class:`Clip` is what a speech clip is everywhere: a manifest row being scored, a training
example, an evaluation clip, a corpus clip on its way into a shard. Its audio is whatever stage it
is at: a path, encoded bytes, a decoded 16 kHz waveform, or None (metadata only).

Where clips live:

- **Shards**: WebDataset tar files in Emilia's layout, per clip ``<key>.json`` (the record's
  metadata, :meth:`Clip.to_json`) and ``<key>.flac`` / ``.mp3`` / ... (its audio). Read and written
  with webdataset (:func:`read_shard`, :func:`write_shard`).
- **Tables**: ``.tsv`` / ``.csv`` / ``.jsonl`` manifests (:mod:`voiceclap.manifest` parses them, with
  row-level errors kept on the clip).

:func:`read_clips` reads any mix of both, in order.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

AUDIO_EXTENSIONS = ("flac", "mp3", "wav", "ogg", "opus", "m4a")
TABLE_EXTENSIONS = (".tsv", ".csv", ".jsonl")


@dataclass
class Candidate:
    """A transcript a clip is scored against besides its own, with its exact error rate.

    ``error_rate`` is the WER (CER for zh/ja) of ``text`` against what the clip says
    (:func:`voiceclap.metrics.error_rate`). ``kind`` says where the text comes from:
    ``corruption`` (the card's random edits), ``fluent`` (a natural sentence that differs from what
    was said: a word substitution that keeps it natural, or a near corpus sentence) or ``spoken``
    (the text of the clip's spoken pair: the same sentence with and without a corruption, both
    spoken)."""

    text: str
    error_rate: float
    kind: str = "corruption"

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "error_rate": round(float(self.error_rate), 6), "kind": self.kind}


# Metadata keys a shard's JSON or a manifest row may carry under other names.
_ALIASES = {"system": "speaker"}


@dataclass(eq=False)  # identity semantics: clips key embedding caches, two sets may reuse an id
class Clip:
    id: str
    text: str  # what the audio says
    language: str | None = None
    audio: str | bytes | np.ndarray | None = None  # a path, encoded bytes, a 16 kHz waveform, or None
    duration: float | None = None  # seconds; from metadata before decoding, of the whole file after
    speaker: str | None = None  # the speaker or TTS voice (Emilia's `speaker`, a manifest's `system`)
    source: str | None = None  # the corpus source (a TTS engine, a recorded corpus)
    intended_text: str | None = None  # what the audio was meant to say (gold clips, spoken negatives)
    true_wer: float | None = None  # WER of what the audio says against intended_text
    group: str | None = None  # clips that belong in one batch: a sentence and its spoken corruptions
    candidates: list[Candidate] = field(default_factory=list)  # stored negatives with their labels
    extra: dict[str, Any] = field(default_factory=dict)  # any other metadata, kept as read
    # Manifest rows only: position among the data rows, a row-level problem, an id used twice.
    row: int | None = None
    error: str | None = None
    duplicate_id: bool = False

    @property
    def seconds(self) -> float:
        """Length of a decoded waveform (else the metadata's duration, else 0)."""
        if isinstance(self.audio, np.ndarray):
            from voiceclap.audio import SAMPLE_RATE

            return len(self.audio) / SAMPLE_RATE
        return float(self.duration or 0.0)

    def to_json(self) -> dict[str, Any]:
        """The metadata written beside the audio in a shard (no audio, no manifest bookkeeping)."""
        meta: dict[str, Any] = {"id": self.id, "text": self.text, "language": self.language}
        for name in ("duration", "speaker", "source", "intended_text", "true_wer", "group"):
            value = getattr(self, name)
            if value is not None:
                meta[name] = value
        if self.candidates:
            meta["candidates"] = [c.to_json() for c in self.candidates]
        return {**self.extra, **meta}

    @classmethod
    def from_json(cls, meta: dict[str, Any], audio: str | bytes | np.ndarray | None = None, fallback_id: str = "") -> Clip:
        """A record from shard/manifest metadata; unknown keys go to ``extra``. Raises ValueError when
        the metadata has no text."""
        meta = {_ALIASES.get(k, k): v for k, v in meta.items()}
        # Gold shards name what the audio says `spoken_text` (`text` there repeats the intended text).
        text = meta.pop("spoken_text", None) or meta.get("text")
        if text is None:
            raise ValueError("no text")
        known = {f.name for f in dataclasses.fields(cls)} - {"audio", "candidates", "extra", "row", "error"}
        values = {k: v for k, v in meta.items() if k in known and v is not None}
        values["id"] = str(meta.get("id") or fallback_id)
        values["text"] = str(text).strip()  # Emilia's text often has a leading space
        language = str(meta.get("language") or "").strip().lower()
        values["language"] = language or None
        for name in ("duration", "true_wer"):
            if name in values:
                values[name] = float(values[name])
        candidates = [Candidate(**c) for c in meta.get("candidates") or ()]
        extra = {k: v for k, v in meta.items() if k not in known and k not in ("candidates",)}
        return cls(audio=audio, candidates=candidates, extra=extra, **values)


def id_hash(clip_id: str, salt: str) -> int:
    """A stable pseudo-random integer for a clip id (sha256, so independent of PYTHONHASHSEED).
    ``salt`` keeps its uses (sampling, calibration split, ...) independent of each other."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{clip_id}".encode()).digest()[:8], "big")


def hash_order(clips: Iterable[Clip], seed: int = 0) -> list[Clip]:
    """Clips in a seeded pseudo-random order of their ids: its first N are a uniform sample, the same
    on every run whatever order the clips were read in."""
    return sorted(clips, key=lambda c: id_hash(c.id, f"sample/{seed}"))


# ----- shards -----


def shard_key(clip_id: str) -> str:
    """A WebDataset key for an id: the key ends at the first dot of the member's base name, and a
    slash would make a folder, so both become '_' (the id itself stays in the JSON)."""
    return clip_id.replace("/", "_").replace(".", "_")


def read_shard(url: str, with_audio: bool = True) -> Iterator[Clip]:
    """The clips of one shard (a path, URL or "pipe:" command), audio left encoded.

    ``with_audio=False`` reads only the JSON members (fast: vocabularies, planning). A member the
    clip cannot be made from (no or unreadable metadata, no audio when asked for) comes as a clip with
    ``error`` set, so that every reader counts what it skips."""
    import webdataset as wds

    select = None if with_audio else (lambda name: name.endswith(".json"))
    for sample in wds.tarfile_samples([{"url": url}], select_files=select):
        key = os.path.basename(sample["__key__"])
        audio = next((sample[ext] for ext in AUDIO_EXTENSIONS if ext in sample), None)
        try:
            if "json" not in sample:
                raise ValueError("no metadata (.json) in the shard")
            clip = Clip.from_json(json.loads(sample["json"]), audio, fallback_id=key)
        except (ValueError, TypeError) as error:
            yield Clip(key, "", error=f"{url}: {error}")
            continue
        if with_audio and audio is None:
            clip.error = f"no audio in {url}"
        yield clip


def write_samples(path: str | Path, samples: Iterable[dict[str, Any]]) -> None:
    """One shard file from WebDataset samples (``__key__`` and one value per member extension: bytes,
    or a dict for ``json``), written under a temporary name and renamed when complete: a shard that
    exists is whole (resumable builds skip it). The file may be one the samples are read from."""
    import webdataset as wds

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with wds.TarWriter(str(tmp), mtime=0) as writer:
        for sample in samples:
            writer.write(sample)
    os.replace(tmp, path)


def write_shard(path: str | Path, clips: Iterable[tuple[Clip, bytes]], extension: str = "flac") -> None:
    """One shard file from (clip, encoded audio) pairs (:func:`write_samples`)."""
    write_samples(
        path, ({"__key__": shard_key(clip.id), "json": clip.to_json(), extension: audio} for clip, audio in clips)
    )


# ----- any source -----


def expand_sources(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard and table locations -> files: a folder (its ``*.tar`` shards, recursively), globs,
    brace patterns and "::"-separated lists (WebDataset's rules), files, URLs and "pipe:" commands."""
    import webdataset as wds

    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[str] = []
    for url in (u for s in specs for u in wds.shardlists.expand_urls(str(s))):
        if "://" in url or url.startswith("pipe:"):
            out.append(url)
        elif os.path.isdir(url):
            found = sorted(glob.glob(os.path.join(url, "**", "*.tar"), recursive=True))
            if not found:
                raise FileNotFoundError(f"no .tar shards under {url}")
            out.extend(found)
        elif glob.has_magic(url):
            found = sorted(glob.glob(url))
            if not found:
                raise FileNotFoundError(f"nothing matches {url!r}")
            out.extend(found)
        elif os.path.exists(url):
            out.append(url)
        else:
            raise FileNotFoundError(f"no such file or folder: {url}")
    if not out:
        raise ValueError(f"no data sources in {spec!r}")
    return out


def is_table(path: str) -> bool:
    return Path(path).suffix.lower() in TABLE_EXTENSIONS


def read_clips(sources: str | os.PathLike | Sequence[str | os.PathLike], with_audio: bool = True) -> Iterator[Clip]:
    """The clips of shards and manifest tables, in the given order. Shard audio stays encoded, a
    table's audio is its resolved path; a clip that cannot be used comes with ``error`` set."""
    from voiceclap.manifest import read_manifest

    for path in expand_sources(sources):
        if is_table(path):
            for clip in read_manifest(path).clips:
                if not with_audio:
                    clip.audio = None
                yield clip
        else:
            yield from read_shard(path, with_audio)


def decode_clip(clip: Clip, max_seconds: float | None = None) -> Clip:
    """The clip with its audio decoded to a 16 kHz mono waveform (``duration``: the whole file's),
    cut to ``max_seconds`` when given. Raises :class:`voiceclap.audio.AudioDecodeError` or OSError."""
    from voiceclap.audio import SAMPLE_RATE, load_audio

    if clip.audio is None:
        raise ValueError(f"clip {clip.id} has no audio")
    waveform = clip.audio if isinstance(clip.audio, np.ndarray) else load_audio(clip.audio)
    duration = len(waveform) / SAMPLE_RATE
    if max_seconds is not None:
        waveform = waveform[: int(max_seconds * SAMPLE_RATE)]
    return dataclasses.replace(clip, audio=waveform, duration=duration)
