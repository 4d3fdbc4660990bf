"""Evaluation sets: clips read from shards or manifests (:func:`voiceclap.clips.read_clips`), checked
for what their role needs, sampled and decoded once.

Roles:

- ``heldout``: transcribed speech (synthetic held-out clips, recorded speech): retrieval, the card's
  corruption protocol and its text-prior control, calibration.
- ``gold``: clips whose audio says a corrupted text: ``intended_text`` and ``true_wer`` (or
  ``spoken_text`` to compute it from).
- ``pairs``: fluent minimal pairs: each clip stores the variant it does not say as a candidate of
  kind ``variant``.

Clips that cannot be used (no audio, undecodable, missing fields, repeated id) are skipped and listed
with the reason, so a report says exactly what it was computed on.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from voiceclap.audio import AudioDecodeError
from voiceclap.clips import Clip, decode_clip, expand_sources, hash_order, read_clips
from voiceclap.metrics import error_rate

ROLES = ("heldout", "gold", "pairs")


@dataclass
class EvalSet:
    name: str
    role: str
    clips: list[Clip]
    sources: list[str]
    n_available: int  # usable clips found before sampling
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"id", "reason"} per dropped clip

    def summary(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "sources": self.sources,
            "n_available": self.n_available,
            "n_clips": len(self.clips),
            "hours": sum(c.seconds for c in self.clips) / 3600,
            "languages": dict(sorted(Counter(c.language for c in self.clips).items())),
            "n_speakers": len({c.speaker for c in self.clips if c.speaker is not None}),
            "skipped": self.skipped,
        }


def _check(clip: Clip, role: str) -> None:
    """Raises ValueError naming what ``clip`` lacks for ``role``; fills a gold clip's true WER."""
    if clip.error:
        raise ValueError(clip.error)
    if clip.audio is None:
        raise ValueError("no audio")
    if not clip.language:
        raise ValueError("no language")
    if not clip.text:
        raise ValueError("no text")
    if role == "gold":
        if not clip.intended_text:
            raise ValueError("no intended_text")
        if clip.true_wer is None:
            clip.true_wer = error_rate(clip.intended_text, clip.text, clip.language)
        if not np.isfinite(clip.true_wer) or clip.true_wer < 0:
            raise ValueError(f"true_wer {clip.true_wer!r} is not a non-negative number")
    if role == "pairs" and not any(c.kind == "variant" for c in clip.candidates):
        raise ValueError("no variant candidate")


def load_eval_set(
    sources: str | os.PathLike | Sequence[str | os.PathLike],
    role: str = "heldout",
    name: str | None = None,
    max_clips: int | None = None,
    seed: int = 0,
    *,
    select: Callable[[Clip], bool] | None = None,
    progress: bool = True,
) -> EvalSet:
    """Read, check, sample and decode a set; see the module docstring. ``max_clips``: the first that
    many of :func:`voiceclap.clips.hash_order` (a clip that fails to decode is replaced by the next).
    ``select``: only the clips it accepts are read further."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    files = expand_sources(sources)
    skipped: list[dict[str, str]] = []
    usable: list[Clip] = []
    seen: set[str] = set()
    for clip in read_clips(files):
        if select is not None and not select(clip):
            continue
        try:
            if clip.id in seen:
                raise ValueError("repeated id (first one kept)")
            _check(clip, role)
        except ValueError as error:
            skipped.append({"id": clip.id, "reason": str(error)})
            continue
        seen.add(clip.id)
        usable.append(clip)
    ordered = hash_order(usable, seed) if max_clips is not None else usable
    clips: list[Clip] = []
    for clip in tqdm(ordered, desc=f"decode {name or role}", unit="clip", disable=not progress):
        if max_clips is not None and len(clips) == max_clips:
            break
        try:
            clips.append(decode_clip(clip))
        except (AudioDecodeError, OSError) as error:
            skipped.append({"id": clip.id, "reason": f"audio: {error}"})
    return EvalSet(name or role, role, clips, files, len(usable), skipped)
