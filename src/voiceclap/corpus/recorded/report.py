"""The per-source report of recorded speech: what a reader kept and what it dropped for which
reason (:data:`REASONS`), and the Markdown tables of both."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from voiceclap.audio import CHUNK_LENGTH
from voiceclap.clips import Clip
from voiceclap.corpus.recorded.sources import SOURCES

# Why a clip is dropped; the report counts each per language.
REASONS = {
    "no_transcript": "no text for the audio (or only punctuation)",
    "no_audio": "the text names an audio file that does not exist",
    "undecodable": "the audio file cannot be read",
    "too_short": "shorter than 0.1 s",
    "too_long": f"longer than Whisper's {CHUNK_LENGTH} s",
    "timing_mismatch": "uqm: the line timings do not fit the lines or the clip",
    "synthetic_voice": "uqm: the Slylandro probe, credited to a speech synthesizer",
    "unknown_speaker": "fillets: a line of a character without a known voice",
    "duplicate_audio": "the same audio file as a kept clip with the same text",
    "ambiguous_audio": "the same audio file under different texts (at most one can be right)",
    "duration_mismatch": "the duration does not fit the text length (DURATION_FACTOR, PAUSE_ALLOWANCE)",
    "unchecked": "too few clips of the speaker to check durations against (MIN_CLIPS_FOR_FIT)",
}


@dataclass
class SourceReport:
    """What a reader kept (clips, seconds, speakers per language) and dropped (per language and reason)."""

    source: str
    clips: Counter = field(default_factory=Counter)  # language -> kept clips
    seconds: Counter = field(default_factory=Counter)  # language -> kept seconds
    speakers: set[str] = field(default_factory=set)
    dropped: Counter = field(default_factory=Counter)  # (language, reason) -> clips

    def drop(self, reason: str, language: str | None, count: int = 1) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown drop reason {reason!r}")
        if count:
            self.dropped[(language or "?", reason)] += count

    def keep(self, clip: Clip) -> None:
        self.clips[clip.language] += 1
        self.seconds[clip.language] += clip.duration
        self.speakers.add(clip.speaker)

    @property
    def hours(self) -> float:
        return sum(self.seconds.values()) / 3600

    def dropped_by_reason(self) -> Counter:
        out: Counter = Counter()
        for (_, reason), count in self.dropped.items():
            out[reason] += count
        return out


def source_table(reports: Iterable[SourceReport]) -> str:
    """Markdown table: per source clips, hours, speakers, languages, license, commercial use."""
    lines = [
        "| source | clips | hours | speakers | languages | license | commercial use |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for report in reports:
        info = SOURCES[report.source]
        languages = " ".join(sorted(report.clips))
        lines.append(
            f"| {report.source} | {sum(report.clips.values())} | {report.hours:.2f} | {len(report.speakers)} | "
            f"{languages} | {info.license} | {'yes' if info.commercial_use else 'no'} |"
        )
    return "\n".join(lines)


def drop_table(reports: Iterable[SourceReport]) -> str:
    """Markdown table: per source and language, clips kept and dropped per reason."""
    reports = list(reports)
    reasons = [r for r in REASONS if any(report.dropped_by_reason()[r] for report in reports)]
    lines = [
        "| source | language | kept | " + " | ".join(reasons) + " |",
        "|---|---|---:|" + "---:|" * len(reasons),
    ]
    for report in reports:
        languages = sorted(set(report.clips) | {language for language, _ in report.dropped})
        for language in languages:
            counts = [str(report.dropped[(language, reason)]) for reason in reasons]
            lines.append(f"| {report.source} | {language} | {report.clips[language]} | " + " | ".join(counts) + " |")
    return "\n".join(lines)
