"""Recorded human speech with transcripts that Debian ships: one reader per package, a per-source
report of what was kept and why the rest was dropped, and a speaker-held-out split rule.

=============  ===============================================  ===========================  ==========
source         Debian packages                                  language(s)                  license
=============  ===============================================  ===========================  ==========
``uqm``        ``uqm-content`` (texts), ``uqm-voice`` (audio)   en                           CC BY-NC-SA 2.5
``tuxpaint``   ``tuxpaint-stamps-default``                      be bg ca da el en es fr ...  GPL-2+
``fillets``    ``fillets-ng-data`` (texts), ``-nl`` (audio)     nl                           GPL-2
``festvox-ru`` ``festvox-ru``                                   ru                           BSD-like
=============  ===============================================  ===========================  ==========

:data:`SOURCES` holds each source's license, whether it allows commercial use and its packages;
``scripts/install_corpus_tools.sh --recorded`` installs them.

Each reader (:func:`read_uqm`, :func:`read_tuxpaint`, :func:`read_fillets`, :func:`read_festvox_ru`;
:data:`READERS` by source name) takes the package's install location (Debian's by default) and a
:class:`SourceReport` to fill, and yields :class:`voiceclap.clips.Clip` records: ``audio`` is the
file's path, or for ``uqm`` the cut line segment as FLAC bytes (or None, to be cut later by
:func:`cut_uqm`); ``extra["license"]`` names the license. Nothing bad is kept silently: a clip
without a transcript, with audio that is missing, undecodable, shorter than 0.1 s or longer than
Whisper's 30 s, a copy of another clip's audio, or whose duration does not fit its text
(:func:`fit_duration`) is dropped and counted per language and reason in the report. The report
is complete once the reader's iterator is exhausted (the duration fit needs every clip of a
language, so a reader scans its package before yielding).

:func:`split_of` assigns every clip to ``train``, ``dev`` or ``test`` from the clip alone.

Modules: :mod:`.sources` (license and packages per source), :mod:`.report` (:class:`SourceReport`,
drop reasons, tables), :mod:`.checks` (audio problems, copies, duration vs. text length),
one reader each in :mod:`.uqm`, :mod:`.tuxpaint`, :mod:`.fillets` and :mod:`.festvox_ru`, and
:mod:`.splits` (the held-out rule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from voiceclap.clips import Clip
from voiceclap.corpus.recorded.checks import DURATION_FACTOR, MIN_CLIPS_FOR_FIT, PAUSE_ALLOWANCE, fit_duration
from voiceclap.corpus.recorded.festvox_ru import FESTVOX_RU_ROOT, FESTVOX_RU_SPEAKER, read_festvox_ru
from voiceclap.corpus.recorded.fillets import FILLETS_ROOT, FILLETS_SPEAKERS, read_fillets
from voiceclap.corpus.recorded.report import REASONS, SourceReport, drop_table, source_table
from voiceclap.corpus.recorded.sources import SOURCES, SourceInfo
from voiceclap.corpus.recorded.splits import HELD_OUT_SHARE, SPLITS, split_of
from voiceclap.corpus.recorded.tuxpaint import TUXPAINT_ROOT, read_tuxpaint
from voiceclap.corpus.recorded.uqm import UQM_ROOT, UQM_VOICE_ACTORS, cut_uqm, read_uqm, uqm_page_bounds

READERS: dict[str, Callable[..., Iterator[Clip]]] = {
    "uqm": read_uqm,
    "tuxpaint": read_tuxpaint,
    "fillets": read_fillets,
    "festvox-ru": read_festvox_ru,
}

__all__ = [
    "DURATION_FACTOR",
    "FESTVOX_RU_ROOT",
    "FESTVOX_RU_SPEAKER",
    "FILLETS_ROOT",
    "FILLETS_SPEAKERS",
    "HELD_OUT_SHARE",
    "MIN_CLIPS_FOR_FIT",
    "PAUSE_ALLOWANCE",
    "READERS",
    "REASONS",
    "SOURCES",
    "SPLITS",
    "TUXPAINT_ROOT",
    "UQM_ROOT",
    "UQM_VOICE_ACTORS",
    "SourceInfo",
    "SourceReport",
    "cut_uqm",
    "drop_table",
    "fit_duration",
    "read_festvox_ru",
    "read_fillets",
    "read_tuxpaint",
    "read_uqm",
    "source_table",
    "split_of",
    "uqm_page_bounds",
]
