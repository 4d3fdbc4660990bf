"""Evaluation sets: held-out and gold clips read from WebDataset shards or a manifest, decoded once.

Shards follow Emilia's layout: per clip ``<key>.json`` (id, text, language, speaker, duration; gold
clips also intended_text, spoken_text, true_wer) and ``<key>.flac`` / ``.mp3`` / ``.wav``. A manifest
(``.jsonl``, ``.tsv``, ``.csv``) has one row per clip with ``audio`` (a path, relative to the
manifest's folder), ``text``, ``language`` and optionally ``id``, ``true_wer``, ``system``,
``intended_text``, ``spoken_text``. In a gold manifest without ``intended_text``, ``text`` is the
intended text (what the audio should have said), as in a ``voiceclap score`` manifest.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import tarfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from voiceclap.audio import SAMPLE_RATE, AudioDecodeError, load_audio
from voiceclap.manifest import FORMATS as MANIFEST_FORMATS
from voiceclap.manifest import read_manifest
from voiceclap.metrics import error_rate

__all__ = ["EvalClip", "EvalSet", "id_hash", "load_eval_set"]

AUDIO_EXTENSIONS = ("flac", "mp3", "wav", "ogg", "opus", "m4a")


@dataclass(eq=False)  # identity semantics: clips key embedding caches, two sets may reuse an id
class EvalClip:
    id: str
    language: str
    text: str  # what the audio says: a held-out clip's transcript, a gold clip's spoken text
    audio: np.ndarray  # mono float32 at 16 kHz
    system: str | None = None  # the TTS voice / system that made the clip (Emilia's `speaker`)
    intended_text: str | None = None  # gold: the text the audio was meant to say
    true_wer: float | None = None  # gold: WER of what the audio says against intended_text

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


@dataclass
class EvalSet:
    clips: list[EvalClip]
    sources: list[str]
    n_available: int  # clips found before --max-clips sampling
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"id", "reason"} per dropped clip

    def summary(self) -> dict[str, Any]:
        languages: dict[str, int] = defaultdict(int)
        for clip in self.clips:
            languages[clip.language] += 1
        return {
            "sources": self.sources,
            "n_available": self.n_available,
            "n_clips": len(self.clips),
            "hours": sum(c.seconds for c in self.clips) / 3600,
            "languages": dict(sorted(languages.items())),
            "n_systems": len({c.system for c in self.clips if c.system is not None}),
            "skipped": self.skipped,
        }


def id_hash(clip_id: str, salt: str) -> int:
    """A stable pseudo-random integer for a clip id (sha256, so independent of PYTHONHASHSEED).
    ``salt`` keeps the different uses (sampling, calibration split) independent of each other."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{clip_id}".encode()).digest()[:8], "big")


@dataclass
class _Record:
    """A clip's metadata plus where its audio lives, before decoding."""

    meta: dict[str, Any]
    origin: str  # shard path or manifest path, for messages
    audio_ref: Any  # (shard path, member name) or a file path


def _expand(source: str) -> list[str]:
    """A folder (its ``*.tar`` shards, recursively), a glob, a shard or a manifest -> files."""
    if os.path.isdir(source):
        files = sorted(glob.glob(os.path.join(source, "**", "*.tar"), recursive=True))
        if not files:
            raise FileNotFoundError(f"no .tar shards under {source}")
        return files
    if glob.has_magic(source):
        files = sorted(glob.glob(source))
        if not files:
            raise FileNotFoundError(f"nothing matches {source}")
        return files
    if not os.path.exists(source):
        raise FileNotFoundError(f"no such file or folder: {source}")
    return [source]


def _split_name(name: str) -> tuple[str, str]:
    """WebDataset's convention: the key is the path up to the first dot of the base name."""
    directory, base = os.path.split(name)
    stem, _, extension = base.partition(".")
    return os.path.join(directory, stem), extension.lower()


def _read_shard(path: str) -> list[_Record]:
    # Only the small .json members are read here; audio is read later for the clips kept, so
    # sampling --max-clips from a large set does not read every clip's audio.
    groups: dict[str, dict[str, tarfile.TarInfo]] = defaultdict(dict)
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile():
                key, extension = _split_name(member.name)
                groups[key][extension] = member
        records = []
        for key, members in groups.items():
            if "json" not in members:
                continue
            meta = json.load(tar.extractfile(members["json"]))
            meta.setdefault("id", os.path.basename(key))
            audio = next((members[e].name for e in AUDIO_EXTENSIONS if e in members), None)
            records.append(_Record(meta, path, None if audio is None else (path, audio)))
    return records


def _read_manifest(path: str) -> list[_Record]:
    records = []
    for row in read_manifest(path).rows:
        meta = {**row.extra, "id": row.id, "text": row.text, "language": row.language, "system": row.system}
        if row.error is not None:
            meta["error"] = row.error  # the manifest reader's reason, reported as the skip reason
        records.append(_Record(meta, path, row.audio_path or None))
    return records


def _read_records(sources: Iterable[str]) -> tuple[list[_Record], list[str]]:
    records, files = [], []
    for source in sources:
        for path in _expand(source):
            files.append(path)
            if path.endswith(".tar"):
                records.extend(_read_shard(path))
            elif Path(path).suffix.lower() in MANIFEST_FORMATS:
                records.extend(_read_manifest(path))
            else:
                raise ValueError(f"{path}: expected .tar shards or a {'/'.join(MANIFEST_FORMATS)} manifest")
    return records, files


def _clip_fields(meta: dict[str, Any], gold: bool) -> dict[str, Any]:
    """Metadata -> EvalClip fields; raises ValueError naming what is missing."""
    language = str(meta.get("language") or "").strip().lower()
    if not language:
        raise ValueError("no language")
    fields: dict[str, Any] = {
        "id": str(meta["id"]),
        "language": language,
        "system": meta.get("system") or meta.get("speaker"),
    }
    if not gold:
        text = str(meta.get("text") or "").strip()  # Emilia's text often has a leading space
        if not text:
            raise ValueError("no text")
        return {**fields, "text": text}
    intended = str(meta.get("intended_text") or meta.get("text") or "").strip()
    spoken = str(meta.get("spoken_text") or "").strip()
    if not intended:
        raise ValueError("no intended_text")
    if meta.get("true_wer") is not None:
        true_wer = float(meta["true_wer"])
    elif spoken:
        true_wer = error_rate(intended, spoken, language)
    else:
        raise ValueError("no true_wer and no spoken_text to compute it from")
    if not np.isfinite(true_wer) or true_wer < 0:
        raise ValueError(f"true_wer {true_wer!r} is not a non-negative number")
    return {**fields, "text": spoken or intended, "intended_text": intended, "true_wer": true_wer}


def load_eval_set(
    sources: str | Sequence[str],
    gold: bool = False,
    max_clips: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> EvalSet:
    """Read and decode an evaluation set.

    ``sources``: shard folders, globs, ``.tar`` shards or manifests. ``gold``: the clips must carry an
    intended text and a true WER. ``max_clips``: keep a uniform sample of that many clips, chosen by
    a seeded hash of the id (the same clips on every run and whatever the shard order); ``n_available``
    counts the clips with usable metadata before sampling. Clips that
    cannot be used (no audio, undecodable, missing fields, repeated id) are skipped and listed in
    ``EvalSet.skipped`` with the reason, so a report says exactly what it was computed on.
    """
    sources = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    records, files = _read_records(str(s) for s in sources)
    skipped: list[dict[str, str]] = []
    parsed: list[tuple[dict[str, Any], _Record]] = []
    seen: set[str] = set()
    for record in records:
        clip_id = str(record.meta.get("id"))
        try:
            if record.meta.get("error"):
                raise ValueError(record.meta["error"])
            if clip_id in seen:
                raise ValueError(f"repeated id (first one kept), in {record.origin}")
            if record.audio_ref is None:
                raise ValueError("no audio")
            parsed.append((_clip_fields(record.meta, gold), record))
            seen.add(clip_id)
        except ValueError as error:
            skipped.append({"id": clip_id, "reason": str(error)})
    n_available = len(parsed)
    if max_clips is not None and len(parsed) > max_clips:
        parsed = sorted(parsed, key=lambda item: id_hash(item[0]["id"], f"sample/{seed}"))

    clips = []
    with contextlib.ExitStack() as stack:
        tars: dict[str, tarfile.TarFile] = {}  # each shard opened once, all closed at the end

        def read_audio(audio_ref: Any) -> np.ndarray:
            if isinstance(audio_ref, tuple):
                shard, member = audio_ref
                if shard not in tars:
                    tars[shard] = stack.enter_context(tarfile.open(shard))
                return load_audio(tars[shard].extractfile(member).read())
            return load_audio(audio_ref)

        for fields_, record in tqdm(parsed, desc="decode audio", unit="clip", disable=not progress):
            if max_clips is not None and len(clips) == max_clips:
                break  # clips that failed to decode were replaced by the next ones in sample order
            try:
                clips.append(EvalClip(audio=read_audio(record.audio_ref), **fields_))
            except (AudioDecodeError, OSError, KeyError) as error:
                skipped.append({"id": fields_["id"], "reason": f"audio: {error}"})
    return EvalSet(clips=clips, sources=files, n_available=n_available, skipped=skipped)
