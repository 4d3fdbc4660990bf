"""Reader of The Ur-Quan Masters' 3DO voice-over (Debian uqm-content and uqm-voice), cut into its
subtitle lines."""

from __future__ import annotations

import io
import re
import zipfile
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from voiceclap.audio import decode_native
from voiceclap.clips import Clip
from voiceclap.corpus.recorded.checks import audio_duration, audio_problem, counted, drop_copies, drop_duration_outliers
from voiceclap.corpus.recorded.report import SourceReport
from voiceclap.corpus.recorded.sources import SOURCES
from voiceclap.text import clean_text, normalize_for_wer

UQM_ROOT = Path("/usr/share/games/uqm/content")

# The 3DO credits (base/cutscene/credits/credits.txt in uqm-content), per conversation folder.
# Zoq-Fot-Pik is three characters voiced by two actors in the same recordings. Two folders are not
# credited: the Safe Ones are the Spathi of Spathiwa's moon (credited Spathi voice assumed) and the
# Yehat rebels are Yehat (credited Yehat voice assumed).
UQM_VOICE_ACTORS = {
    "arilou": "Rich Betz",
    "chmmr": "Erol Otus",
    "commander": "Alex Bennett",
    "druuge": "Rich Betz",
    "ilwrath": "David Bryce",
    "kohrah": "David Bryce",
    "melnorme": "Larry Zee",
    "mycon": "Paul Reiche III",
    "orz": "Greg Johnson",
    "pkunk": "Greg Johnson",
    "safeones": "David Bryce",
    "shofixti": "David Bryce",
    "slylandro": "Brad Van Tighem",
    "spathi": "David Bryce",
    "starbase": "Alex Bennett",
    "supox": "Lauren Forcella",
    "syreen": "Madeleine Wild",
    "talkingpet": "Paul Reiche III",
    "thraddash": "Richard Antaki",
    "umgah": "Larry Zee",
    "urquan": "Larry Zee",
    "utwig": "Greg Johnson",
    "vux": "Madeleine Wild",
    "yehat": "Bruce Leyland",
    "yehatrebels": "Bruce Leyland",
    "zoqfotpik": "Roy Blumenfeld & Madeleine Wild",
}
# The Slylandro probe is credited to "840-AV": a computer voice (the Macintosh Quadra 840AV shipped
# with speech synthesis), not a person.
_UQM_SYNTHETIC = {"probe"}
_UQM_RESOURCE_MAP = "3dovoice/3dovoice.rmp"
_UQM_DIALOGUE = re.compile(r"^comm\.[\w.]+\.dialogue\s*=\s*CONVERSATION:([^:]+):([^:]+):([^:]+)\s*$")
_UQM_ENTRY = re.compile(r"^#\(([^)]*)\)\s*(\S*)")
# Typography the game draws but nobody says: the Talking Pet's -<compulsion>-, *emphasis* and
# `quotes' opened with a backtick.
_UQM_COMPULSION = re.compile(r"-<(.*?)>-")
_UQM_MARKUP = str.maketrans({"*": None, "`": "'"})
_UQM_LICENSE = SOURCES["uqm"].license


@dataclass
class _UqmPackages:
    content: zipfile.ZipFile  # uqm-content: the conversation texts
    voice: zipfile.ZipFile  # uqm-voice: the 3DO recordings, their timings and the resource map

    def read(self, member: str) -> bytes:
        # The resource map names the voice pack's files "addons/...", everything else is content.
        if member.startswith("addons/"):
            return self.voice.read(member.removeprefix("addons/"))
        return self.content.read(member)

    def has(self, member: str) -> bool:
        if member.startswith("addons/"):
            return member.removeprefix("addons/") in self.voice.NameToInfo
        return member in self.content.NameToInfo

    def close(self) -> None:
        self.content.close()
        self.voice.close()


def _open_uqm(root: Path) -> _UqmPackages:
    contents = sorted(root.glob("packages/*content*.uqm"))
    voices = sorted(root.glob("addons/*voice*.uqm"))
    if not contents or not voices:
        raise FileNotFoundError(
            f"no uqm content and voice packages under {root}: apt-get install uqm-content uqm-voice"
        )
    return _UqmPackages(zipfile.ZipFile(contents[-1]), zipfile.ZipFile(voices[-1]))


def _uqm_entries(text: str) -> Iterator[tuple[str, str, list[str]]]:
    """(key, audio file, subtitle pages) of a conversation file. A page is a line: the game splits
    a text at line breaks and skips empty lines (SplitSubPages in its trackplayer)."""
    key, audio, pages = None, "", []
    for line in text.splitlines():
        entry = _UQM_ENTRY.match(line)
        if entry:
            if key is not None:
                yield key, audio, pages
            key, audio, pages = entry.group(1), entry.group(2), []
        elif key is not None and line:
            pages.append(line)
    if key is not None:
        yield key, audio, pages


def _uqm_timings(text: str) -> dict[str, list[int]]:
    """Per key, the page durations in ms; the game ignores zeros (GetTimeStamps)."""
    out = {}
    for line in text.splitlines():
        entry = _UQM_ENTRY.match(line)
        if entry:
            rest = line[entry.end(1) + 1 :]
            out[entry.group(1)] = [int(v) for v in re.findall(r"\d+", rest) if int(v)]
    return out


def uqm_page_bounds(n_pages: int, timings_ms: list[int], seconds: float) -> list[tuple[float, float]] | None:
    """(start, end) in seconds of each page of a clip, as the game plays them: page i lasts
    ``timings_ms[i]``, the last page without a timing runs to the end of the clip. More timings
    than pages mean the game appends more text later, so the clip's tail is left out. None when
    there are too few timings or they run past the clip."""
    if len(timings_ms) < n_pages - 1:
        return None
    ends = [float(end) for end in np.cumsum(timings_ms[:n_pages]) / 1000.0]
    if ends and ends[-1] > seconds:
        return None
    if len(ends) < n_pages:
        ends.append(seconds)
    starts = [0.0, *ends[:-1]]
    return list(zip(starts, ends))


def _scan_uqm(packages: _UqmPackages, report: SourceReport) -> Iterator[Clip]:
    resource_map = packages.voice.read(_UQM_RESOURCE_MAP).decode("utf-8")
    for line in resource_map.splitlines():
        dialogue = _UQM_DIALOGUE.match(line)
        if not dialogue:
            continue
        text_member, audio_folder, timing_member = dialogue.groups()
        character = Path(audio_folder).name
        timings = _uqm_timings(packages.read(timing_member).decode("utf-8"))
        for key, audio, pages in _uqm_entries(packages.read(text_member).decode("utf-8")):
            if not audio:
                continue  # the player's lines: on screen only, never spoken
            if character in _UQM_SYNTHETIC:
                report.drop("synthetic_voice", "en", len(pages))
                continue
            member = audio_folder + audio
            if not packages.has(member):
                report.drop("no_audio", "en", len(pages))
                continue
            seconds = audio_duration(packages.read(member))  # the recording's; its lines are the clips
            if seconds is None:
                report.drop("undecodable", "en", len(pages))
                continue
            bounds = uqm_page_bounds(len(pages), timings.get(key, []), seconds)
            if bounds is None:
                report.drop("timing_mismatch", "en", len(pages))
                continue
            for index, (page, (start, end)) in enumerate(zip(pages, bounds)):
                text = clean_text(_UQM_COMPULSION.sub(r"\1", page).translate(_UQM_MARKUP))
                if not normalize_for_wer(text, "en"):
                    report.drop("no_transcript", "en")
                    continue
                problem = audio_problem(end - start)
                if problem:
                    report.drop(problem, "en")
                    continue
                yield Clip(
                    id=f"uqm/{Path(audio).stem}-{index}",
                    text=text,
                    language="en",
                    duration=end - start,
                    speaker=f"uqm:{UQM_VOICE_ACTORS[character]}",
                    source="uqm",
                    extra={
                        "license": _UQM_LICENSE,
                        "character": character,
                        "recording": member,
                        "start": round(start, 3),
                        "end": round(end, 3),
                    },
                )


def _uqm_segment_of(clip: Clip) -> tuple:
    # Conversations may play one recording under several keys ("melnorme-204.ogg" twice).
    return clip.extra["recording"], clip.extra["start"], clip.extra["end"]


def _flac(samples: np.ndarray, sample_rate: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, sample_rate, format="FLAC", subtype="PCM_16")
    return out.getvalue()


def _cut_uqm(packages: _UqmPackages, segments: list[Clip]) -> Iterator[Clip]:
    """The kept segments with their audio cut out of the recording, as FLAC at its own rate;
    each recording is decoded once."""
    by_recording: dict[str, list[Clip]] = defaultdict(list)
    for clip in segments:
        by_recording[clip.extra["recording"]].append(clip)
    for member, clips in by_recording.items():
        samples, sample_rate = decode_native(packages.read(member))
        for clip in clips:
            start = round(clip.extra["start"] * sample_rate)
            end = round(clip.extra["end"] * sample_rate)
            clip.audio = _flac(samples[start:end], sample_rate)
            yield clip


def cut_uqm(segments: list[Clip], root: str | Path = UQM_ROOT) -> Iterator[Clip]:
    """Clips of ``read_uqm(with_audio=False)`` with their audio cut out of the recordings (FLAC at
    the recording's rate); each recording is decoded once."""
    packages = _open_uqm(Path(root))
    try:
        yield from _cut_uqm(packages, segments)
    finally:
        packages.close()


def read_uqm(
    root: str | Path = UQM_ROOT, report: SourceReport | None = None, with_audio: bool = True
) -> Iterator[Clip]:
    """The Ur-Quan Masters' 3DO voice-over, one clip per subtitle line (English, 11 kHz).

    ``root`` holds ``packages/*content*.uqm`` (uqm-content) and ``addons/*voice*.uqm`` (uqm-voice),
    both zip files. The voice pack's resource map (``3dovoice/3dovoice.rmp``) names, per alien
    race, the conversation text (``#(KEY)<TAB><race>-NNN.ogg`` then the lines), the recordings'
    folder and the line timings (``<race>.ts``: ``#(KEY) ms,ms,...``, one fewer than the lines).
    Each recording is cut at the timings into its lines, as the game pages its subtitles. The
    speaker is the credited voice actor (:data:`UQM_VOICE_ACTORS`), the race in
    ``extra["character"]``; ``extra`` also names the recording and the segment's start and end.
    ``with_audio=False`` skips the cutting (``audio`` stays None): the clips and the report in seconds
    rather than a minute; :func:`cut_uqm` cuts them later."""
    report = report if report is not None else SourceReport("uqm")
    packages = _open_uqm(Path(root))
    try:
        segments = drop_copies(list(_scan_uqm(packages, report)), report, _uqm_segment_of)
        segments = drop_duration_outliers(segments, report)
        yield from counted(_cut_uqm(packages, segments) if with_audio else segments, report)
    finally:
        packages.close()
