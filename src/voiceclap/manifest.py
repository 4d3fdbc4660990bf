"""Manifest reading: which audio files to score against which transcripts.

Formats, chosen by the file extension:

- ``.tsv``: one row per line, fields separated by tabs, no quoting (transcripts keep their quote
  characters as written); the first line is the header.
- ``.csv``: RFC 4180 (quoted fields may hold commas, quotes and newlines); the first row is the header.
- ``.jsonl``: one JSON object per line; blank lines are skipped. The columns are the keys of the
  first object that parses.

Columns ``audio`` and ``text`` are required, ``id``, ``language`` and ``system`` optional (a
``system`` is the clip's speaker or TTS voice); other columns fill the :class:`voiceclap.clips.Clip`
fields of the same name (``intended_text``, ``true_wer``, ...) or are kept in ``Clip.extra``, the
``audio`` value as written among them. Audio paths are relative to the manifest's folder.

Problems with the manifest as a whole (missing file, unknown extension, no header -- for JSONL:
lines but none a JSON object --, a required column missing or repeated, invalid UTF-8 in the
header) raise :class:`ManifestError` before any work starts.
Problems with one row never abort: the row is kept with :attr:`Clip.error` set, so that it
shows up in the output as a failed row. Invalid UTF-8 is such a row problem: the row is reported,
not scored, because scoring a transcript with replacement characters would score a different text.
Other row problems: a wrong number of fields, a line that is not a JSON object, a CSV field over
the csv module's size limit, an empty audio path, an empty or whitespace-only transcript.
Duplicate ids are flagged on every row that shares the id and all those rows are still scored.
A row without an id gets ``row-<n>``, n its 1-based position among the data rows; whitespace runs
inside ids become one space, so that an id fits on one line of any output.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .clips import Clip
from .text import clean_text

REQUIRED_COLUMNS = ("audio", "text")
OPTIONAL_COLUMNS = ("id", "language", "system")
FORMATS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl"}


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (the message says why); nothing was scored."""


@dataclass
class Manifest:
    path: Path
    columns: list[str]
    clips: list[Clip]  # one per data row, in order; ``Clip.row`` is the 0-based position

    @property
    def duplicate_ids(self) -> dict[str, list[int]]:
        """Each id used by more than one row -> the indices of those rows."""
        found: dict[str, list[int]] = defaultdict(list)
        for clip in self.clips:
            if clip.duplicate_id:
                found[clip.id].append(clip.row)
        return dict(found)


def transcript_problem(text: str | None) -> str | None:
    """Why a transcript cannot be scored, or None. Shared by manifests and single-pair scoring."""
    if text is None or not clean_text(text):
        return "empty transcript"
    return None


def _is_surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udfff"


def _invalid_utf8(value: object) -> bool:
    # The file is decoded with errors="surrogateescape": every undecodable byte becomes a lone
    # surrogate, which is how a row learns that it held invalid UTF-8. A JSON "\ud800" escape gives
    # a lone surrogate too; it is no more encodable text than a bad byte, so it counts the same.
    return isinstance(value, str) and any(map(_is_surrogate, value))


def _printable(value: str | None) -> str | None:
    """Undecodable bytes as U+FFFD, so that a reported row can still be written as UTF-8."""
    return None if value is None else "".join("\ufffd" if _is_surrogate(ch) else ch for ch in value)


def _lines(text: str) -> list[str]:
    # Not str.splitlines(): that also splits at U+2028, U+0085 and other characters a transcript may hold.
    return [line.removesuffix("\r") for line in text.split("\n")]


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    except OSError as error:
        raise ManifestError(f"cannot read manifest {path}: {error.strerror or error}") from None
    return raw.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")


def _tsv_records(text: str) -> tuple[list[str] | None, list[dict | str]]:
    lines = _lines(text)
    if not lines[0].strip():
        return None, []
    header = [c.strip() for c in lines[0].split("\t")]
    records: list[dict | str] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            records.append(f"line {number} has {len(fields)} tab-separated fields, the header {len(header)}")
        else:
            records.append(dict(zip(header, fields)))
    return header, records


def _csv_records(text: str) -> tuple[list[str] | None, list[dict | str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise ManifestError(f"unreadable CSV header: {error}") from None
    if header is None:
        return None, []
    header = [c.strip() for c in header]
    records: list[dict | str] = []
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return header, records
        except csv.Error as error:  # e.g. a field over csv's size limit; the reader goes on after it
            records.append(f"line {reader.line_num}: {error}")
            continue
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            records.append(f"line {reader.line_num} has {len(fields)} fields, the header {len(header)}")
        else:
            records.append(dict(zip(header, fields)))


def _jsonl_records(text: str) -> tuple[list[str] | None, list[dict | str]]:
    header: list[str] | None = None
    records: list[dict | str] = []
    for number, line in enumerate(_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            records.append(f"line {number} is not valid JSON: {error}")
            continue
        if not isinstance(record, dict):
            records.append(f"line {number} is a JSON {type(record).__name__}, not an object")
            continue
        # Scalars are taken as their text so that ids written as numbers still work.
        record = {str(k): v if isinstance(v, str) or v is None else json.dumps(v) for k, v in record.items()}
        if header is None:
            header = list(record)
        records.append(record)
    return header, records


_PARSERS = {"tsv": _tsv_records, "csv": _csv_records, "jsonl": _jsonl_records}


def read_manifest(path: str | os.PathLike, format: str | None = None) -> Manifest:
    """Read and validate a manifest; see the module docstring for the rules."""
    path = Path(path)
    format = format or FORMATS.get(path.suffix.lower())
    if format not in _PARSERS:
        raise ManifestError(f"unknown manifest format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    header, records = _PARSERS[format](_read_text(path))
    if header is None:
        if format == "jsonl" and not records:
            header = list(REQUIRED_COLUMNS)  # an empty JSONL file is an empty manifest
        else:
            raise ManifestError(f"{path} has no header" if format != "jsonl" else f"{path} holds no JSON object")
    if any(_invalid_utf8(c) for c in header):
        raise ManifestError(f"{path}: the header is not valid UTF-8")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise ManifestError(f"{path}: column(s) {', '.join(repeated)} appear more than once in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(
            f"{path}: missing required column(s) {', '.join(missing)}; found {', '.join(header) or 'none'}"
        )
    base = path.parent
    clips = [_make_clip(index, record, base) for index, record in enumerate(records)]
    _flag_duplicates(clips)
    return Manifest(path=path, columns=header, clips=clips)


def _make_clip(index: int, record: dict | str, base: Path) -> Clip:
    generated_id = f"row-{index + 1}"
    if isinstance(record, str):  # the line could not be split into the header's columns
        return Clip(generated_id, "", row=index, error=record, extra={"audio": ""})
    bad = [k for k, v in record.items() if _invalid_utf8(v)]
    if bad:
        record = {k: _printable(v) for k, v in record.items()}
    values = {k: v for k, v in record.items() if v}  # absent, null and "" all mean "not given"
    row_id = values.get("id", "")
    values["id"] = " ".join(row_id.split()) if row_id.strip() else generated_id
    values.setdefault("text", "")
    written_audio = values.pop("audio", "")
    try:
        clip = Clip.from_json(values)
    except ValueError as error:  # a field that must be a number is not
        clip = Clip(values["id"], values["text"], error=str(error))
    clip.row = index
    clip.extra["audio"] = written_audio
    if bad:
        clip.error = f"invalid UTF-8 in column(s) {', '.join(bad)}"
    elif not written_audio.strip():
        clip.error = "empty audio path"
    elif clip.error is None:
        clip.audio = str(base / written_audio.strip())
        clip.error = transcript_problem(clip.text)
    return clip


def _flag_duplicates(clips: list[Clip]) -> None:
    by_id: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        by_id[clip.id].append(clip)
    for same in by_id.values():
        if len(same) > 1:
            for clip in same:
                clip.duplicate_id = True
