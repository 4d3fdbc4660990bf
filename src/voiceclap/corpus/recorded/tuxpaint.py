"""Reader of Tux Paint's spoken stamp descriptions (Debian tuxpaint-stamps-default)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

from voiceclap.clips import Clip
from voiceclap.corpus.recorded.checks import checked, file_clip
from voiceclap.corpus.recorded.report import SourceReport
from voiceclap.corpus.recorded.sources import SOURCES
from voiceclap.text import clean_text, normalize_for_wer

TUXPAINT_ROOT = Path("/usr/share/tuxpaint/stamps")

# "<stamp>_desc.ogg" is English, "<stamp>_desc_<locale>.ogg" another language; the text is line 1
# (English) or the "<locale>.utf8=" line of "<stamp>.txt".
_TUXPAINT_AUDIO = re.compile(r"^(?P<stamp>.+)_desc(?:_(?P<locale>[A-Za-z]{2,3}(?:_[A-Z]{2})?(?:@\w+)?))?\.ogg$")
_TUXPAINT_LICENSE = SOURCES["tuxpaint"].license


def _tuxpaint_texts(path: Path) -> dict[str, str]:
    """Locale -> description of a stamp's .txt ("" is English, the untagged first line)."""
    texts: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
        locale, sep, text = line.partition(".utf8=")
        if sep:
            texts[locale.strip()] = text
        elif number == 0:
            texts[""] = line
    return texts


def _language_of(locale: str) -> str:
    # "pt_BR" -> "pt", "ca@valencia" -> "ca", "" (Tux Paint's default) -> "en".
    return re.split(r"[_@]", locale)[0].lower() or "en"


def _scan_tuxpaint(root: Path, report: SourceReport) -> Iterator[Clip]:
    texts_of = functools.cache(_tuxpaint_texts)  # a stamp has a recording per language
    for path in sorted(root.rglob("*_desc*.ogg")):
        name = _TUXPAINT_AUDIO.match(path.name)
        if not name:
            report.drop("no_transcript", None)  # a file name that names no stamp and language
            continue
        locale = name["locale"] or ""
        language = _language_of(locale)
        text_file = path.with_name(name["stamp"] + ".txt")
        texts = texts_of(text_file) if text_file.exists() else {}
        text = clean_text(texts.get(locale, ""))
        if not normalize_for_wer(text, language):
            report.drop("no_transcript", language)
            continue
        stamp = path.relative_to(root).with_name(name["stamp"]).as_posix()
        clip = file_clip(
            report,
            path,
            language,
            id=f"tuxpaint/{language}/{stamp}",
            text=text,
            speaker=f"tuxpaint:{language}",
            source="tuxpaint",
            extra={"license": _TUXPAINT_LICENSE, "stamp": stamp, "concept": clean_text(texts.get("", stamp))},
        )
        if clip is not None:
            yield clip


def read_tuxpaint(root: str | Path = TUXPAINT_ROOT, report: SourceReport | None = None) -> Iterator[Clip]:
    """Tux Paint's spoken stamp descriptions ("A frog."), short phrases at 44.1 kHz.

    Who recorded each language is known only from the changelog's credits (be Kseniya Buraya,
    bg Krasimir Petkov, ca Pere Pujal i Carabantes, da Joe Dalton, el Kiriaki Serafeim, es Estefanía
    Ortiz, fr Jacques Chion and later PaulK, ro Tabbytha, ru Edwin Veber; en, nl, ml uncredited),
    so the speaker is the language (``tuxpaint:<language>``): mostly one person each, not always.
    ``extra["concept"]`` is the stamp's English description, which the split holds out in every
    language at once."""
    report = report if report is not None else SourceReport("tuxpaint")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no {root}: apt-get install tuxpaint-stamps-default")
    yield from checked(list(_scan_tuxpaint(root, report)), report)
