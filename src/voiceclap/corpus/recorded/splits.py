"""The held-out rule of recorded speech: ``train``, ``dev`` or ``test`` for a clip from the clip alone."""

from __future__ import annotations

import hashlib

from voiceclap.clips import Clip
from voiceclap.text import normalize_for_wer

SPLITS = ("train", "dev", "test")

# uqm holds out whole voice actors (every character they voice): dev about 1.2 h, test about 1.1 h
# of the 11.4 h; each set has a female and a male voice.
_UQM_HELD_OUT_ACTORS = {
    "Madeleine Wild": "dev",
    "Roy Blumenfeld": "dev",  # only in the Zoq-Fot-Pik recordings, with Madeleine Wild
    "Rich Betz": "test",
    "Lauren Forcella": "test",
}
# Sources without held-out speakers hold out this share of their groups, half dev, half test.
HELD_OUT_SHARE = 0.16
# Whole fillets levels are few (81) and unequal, so some hash salts leave dev or test at 2 %; this
# is the first of "v1".."v9" with which dev and test each hold 6.5-10 % of every hashed source's
# hours (tuxpaint 9.1 / 8.5, fillets 9.1 / 9.2, festvox-ru 7.7 / 9.6 before the duration filter).
_SPLIT_SALT = "v5"


def _hash_unit(*parts: str) -> float:
    """A stable number in [0, 1) for a key (the same on every machine and Python run)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _held_out_by_hash(source: str, key: str) -> str:
    u = _hash_unit(_SPLIT_SALT + source, key)
    if u < HELD_OUT_SHARE / 2:
        return "dev"
    return "test" if u < HELD_OUT_SHARE else "train"


def split_of(clip: Clip) -> str:
    """``train``, ``dev`` or ``test`` for a clip of these readers, from the clip alone.

    * uqm: whole voice actors (``_UQM_HELD_OUT_ACTORS``): no dev/test voice is heard in training.
    * fillets: whole levels (``extra["level"]``). Both fish speak in every level, so the voices are
      NOT held out (the source has two speakers); the held-out part is unseen dialogue.
    * tuxpaint: whole stamp descriptions (``extra["concept"]``, the English text) in every
      language at once. A language is mostly one speaker, so voices are NOT held out.
    * festvox-ru: whole sentences. One speaker: the voice is NOT held out.
    """
    if clip.source == "uqm":
        actors = clip.speaker.removeprefix("uqm:").split(" & ")
        return next((_UQM_HELD_OUT_ACTORS[a] for a in actors if a in _UQM_HELD_OUT_ACTORS), "train")
    if clip.source == "fillets":
        return _held_out_by_hash("fillets", clip.extra["level"])
    if clip.source == "tuxpaint":
        return _held_out_by_hash("tuxpaint", normalize_for_wer(clip.extra["concept"], "en"))
    if clip.source == "festvox-ru":
        return _held_out_by_hash("festvox-ru", clip.id)
    raise ValueError(f"no split rule for source {clip.source!r}")
