"""Reader of the recordings behind Festival's Russian voice msu_ru_nsh (Debian festvox-ru)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from voiceclap.clips import Clip
from voiceclap.corpus.recorded.checks import checked, file_clip
from voiceclap.corpus.recorded.report import SourceReport
from voiceclap.corpus.recorded.sources import SOURCES
from voiceclap.text import clean_text, normalize_for_wer

FESTVOX_RU_ROOT = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")

_FESTVOX_PROMPT = re.compile(r'^\(\s*(\S+)\s+"(.*)"\s*\)\s*$')
FESTVOX_RU_SPEAKER = "festvox-ru:msu_ru_nsh"
_FESTVOX_RU_LICENSE = SOURCES["festvox-ru"].license


def _scan_festvox_ru(root: Path, report: SourceReport) -> Iterator[Clip]:
    prompts = {}
    for line in (root / "etc" / "txt.done.data").read_text(encoding="utf-8").splitlines():
        prompt = _FESTVOX_PROMPT.match(line.strip())
        if prompt:
            prompts[prompt.group(1)] = prompt.group(2)
    recorded = {path.stem: path for path in sorted((root / "wav").glob("*.wav"))}
    report.drop("no_audio", "ru", len(prompts.keys() - recorded.keys()))
    for path in recorded.values():
        # "+" marks the stressed vowel for the synthesizer; it is not written Russian.
        text = clean_text(prompts.get(path.stem, "").replace("+", ""))
        if not normalize_for_wer(text, "ru"):
            report.drop("no_transcript", "ru")
            continue
        clip = file_clip(
            report,
            path,
            "ru",
            id=f"festvox-ru/{path.stem}",
            text=text,
            speaker=FESTVOX_RU_SPEAKER,
            source="festvox-ru",
            extra={"license": _FESTVOX_RU_LICENSE},
        )
        if clip is not None:
            yield clip


def read_festvox_ru(root: str | Path = FESTVOX_RU_ROOT, report: SourceReport | None = None) -> Iterator[Clip]:
    """The 620 read sentences (16 kHz, one male speaker) of Festival's Russian voice msu_ru_nsh:
    ``etc/txt.done.data`` (``( ru_0001 "text" )``, stress marked with ``+``) and ``wav/<id>.wav``."""
    report = report if report is not None else SourceReport("festvox-ru")
    root = Path(root)
    if not (root / "etc" / "txt.done.data").exists():
        raise FileNotFoundError(f"no {root}/etc/txt.done.data: apt-get install festvox-ru")
    yield from checked(list(_scan_festvox_ru(root, report)), report)
