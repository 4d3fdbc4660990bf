"""Reader of Fish Fillets - Next Generation's Dutch voice-over (Debian fillets-ng-data and
fillets-ng-data-nl)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from voiceclap.clips import Clip
from voiceclap.corpus.recorded.checks import checked, file_clip
from voiceclap.corpus.recorded.report import SourceReport
from voiceclap.corpus.recorded.sources import SOURCES
from voiceclap.text import clean_text, normalize_for_wer

FILLETS_ROOT = Path("/usr/share/games/fillets-ng")

# dialogId("id", "font", "English") then dialogStr("Dutch"); Lua strings with backslash escapes.
_FILLETS_DIALOG = re.compile(
    r'dialogId\(\s*"(?P<id>[^"]+)"\s*,\s*"?(?P<font>[\w]*)"?\s*,\s*"(?:[^"\\]|\\.)*"\s*\)'
    r'\s*(?:dialogStr\(\s*"(?P<text>(?:[^"\\]|\\.)*)"\s*\))?'
)
# The two fish, who say every voiced line; each character's lines are drawn in its own font.
FILLETS_SPEAKERS = {"font_small": "small fish", "font_big": "big fish"}
_FILLETS_LANGUAGE = "nl"
_FILLETS_LICENSE = SOURCES["fillets"].license


def _fillets_dialogs(root: Path) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(folder, line id) -> (font, Dutch text or None) from every ``*dialogs_nl.lua``; the folder is
    the level's (``script/<level>/``) or ``share`` for lines of every level."""
    out = {}
    for path in sorted((root / "script").rglob(f"*dialogs_{_FILLETS_LANGUAGE}.lua")):
        folder = path.parent.relative_to(root / "script").as_posix()
        for match in _FILLETS_DIALOG.finditer(path.read_text(encoding="utf-8", errors="replace")):
            text = match["text"]
            out[(folder, match["id"])] = (match["font"], None if text is None else text.replace('\\"', '"'))
    return out


def _scan_fillets(root: Path, report: SourceReport) -> Iterator[Clip]:
    dialogs = _fillets_dialogs(root)
    language = _FILLETS_LANGUAGE
    for path in sorted((root / "sound").rglob(f"{language}/*.ogg")):
        level = path.parent.parent.relative_to(root / "sound").as_posix()  # "airplane", "share/blackjokes"
        font, text = dialogs.get((level.split("/")[0], path.stem), ("", None))
        text = clean_text(text or "")
        if not normalize_for_wer(text, language):
            report.drop("no_transcript", language)
            continue
        if font not in FILLETS_SPEAKERS:
            report.drop("unknown_speaker", language)
            continue
        clip = file_clip(
            report,
            path,
            language,
            id=f"fillets/{level}/{path.stem}",
            text=text,
            speaker=f"fillets:{FILLETS_SPEAKERS[font]}",
            source="fillets",
            extra={"license": _FILLETS_LICENSE, "level": level},
        )
        if clip is not None:
            yield clip


def read_fillets(root: str | Path = FILLETS_ROOT, report: SourceReport | None = None) -> Iterator[Clip]:
    """Fish Fillets NG's Dutch voice-over (22 kHz stereo): ``sound/<level>/nl/<id>.ogg`` says
    ``dialogStr`` after ``dialogId("<id>", ...)`` in ``script/<level>/dialogs_nl.lua`` (levels'
    shared jokes: ``sound/share/<set>/nl`` and ``script/share/*dialogs_nl.lua``). Only the two fish
    speak; the speaker is the fish (:data:`FILLETS_SPEAKERS`, from the line's font), whose Dutch
    voice actors are not credited. ``extra["level"]`` is the audio's level folder."""
    report = report if report is not None else SourceReport("fillets")
    root = Path(root)
    if not (root / "sound").is_dir():
        raise FileNotFoundError(f"no {root}/sound: apt-get install fillets-ng-data fillets-ng-data-nl")
    yield from checked(list(_scan_fillets(root, report)), report)
