"""Fluent text candidates on training clips: up to ``k`` ``Candidate(kind="fluent")`` per clip
(:func:`voiceclap.fluent.fluent_candidates`: natural word substitutions and near sentences), drawn
from the fluent context of the language's TRAINING sentences (``OUT/fluent/<language>.npz``).

Works on any shards in Emilia's layout: the build's training splits, the first corpus's, Emilia's
own. Each shard is rewritten atomically (temporary file, then rename) with every member kept as it
was and only the JSON's ``candidates`` extended; its counts go to ``<shard>.fluent.json``, written
last: a shard with that file is done and skipped, so the step is resumable and idempotent (a clip
that already has fluent candidates is also left as it is). A clip's candidates are seeded by its id.
Clips whose language has no context (no or too few sentences, or written without spaces) get none
and are counted per language, as are clips for which no candidate could be drawn.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voiceclap.clips import Clip, write_samples
from voiceclap.corpus.shards import write_json
from voiceclap.fluent import FluentContext, fluent_candidates
from voiceclap.text import units

__all__ = ["AnnotateJob", "annotation_path"]

_contexts: dict[str, FluentContext] = {}  # per process: .npz path -> context


def _context(path: str) -> FluentContext:
    if path not in _contexts:
        _contexts[path] = FluentContext.load(path)
    return _contexts[path]


def annotation_path(shard: str | Path) -> Path:
    shard = Path(shard)
    return shard.with_name(shard.name.removesuffix(".tar") + ".fluent.json")


@dataclass(frozen=True)
class AnnotateJob:
    """Add fluent candidates to one shard (a :class:`voiceclap.corpus.shards.Job`, progress in shards)."""

    path: str
    k: int
    contexts: dict[str, str]  # language -> the .npz of its fluent context
    seed: int

    size = 1

    def done(self) -> bool:
        return annotation_path(self.path).exists()

    def _annotate(self, meta: dict, counts: Counter) -> dict:
        try:
            clip = Clip.from_json(meta)
        except (ValueError, TypeError):  # no text, malformed candidates: nothing to draw from
            counts["unusable_metadata"] += 1
            return meta
        if any(c.kind == "fluent" for c in clip.candidates):
            counts["already"] += 1
            return meta
        if clip.language not in self.contexts:
            counts[f"no_context:{clip.language}"] += 1
            return meta
        rng = random.Random(f"{self.seed}:fluent:{clip.id}")
        drawn = fluent_candidates(clip.text, clip.language, self.k, rng, _context(self.contexts[clip.language]))
        # A near sentence may be a text the clip already has: a spoken negative's original sentence.
        stored = {tuple(units(c.text, clip.language)) for c in clip.candidates}
        drawn = [c for c in drawn if tuple(units(c.text, clip.language)) not in stored]
        counts["clips"] += 1
        counts["candidates"] += len(drawn)
        counts["none_drawn"] += not drawn
        return {**meta, "candidates": [c.to_json() for c in clip.candidates + drawn]}

    def run(self, advance: Callable[[int], None]) -> str:
        import webdataset as wds

        counts: Counter = Counter()

        def annotated():
            for sample in wds.tarfile_samples([{"url": self.path}]):
                if "json" in sample:
                    sample["json"] = self._annotate(json.loads(sample["json"]), counts)
                else:
                    counts["unusable_metadata"] += 1
                yield {key: value for key, value in sample.items() if key == "__key__" or not key.startswith("_")}

        write_samples(self.path, annotated())
        write_json(annotation_path(self.path), dict(sorted(counts.items())))
        advance(1)
        return (
            f"annotated {self.path}: {counts['candidates']} fluent candidates on {counts['clips']} clips"
            + (f", {counts['already']} already annotated" if counts["already"] else "")
        )
