"""What a part of the corpus is to the build driver: a plan of units per split, and a renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from voiceclap.corpus.config import BuildConfig
from voiceclap.corpus.materials import Materials
from voiceclap.corpus.shards import Render, Unit

__all__ = ["Part", "PartPlan"]


@dataclass
class PartPlan:
    """A part's units per split (in build order), what ``plan.json`` says about them, files to write
    beside the shards (name -> text), and why the part has nothing to build here, if so."""

    units: dict[str, list[Unit]]
    description: dict = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    unavailable: str | None = None

    @classmethod
    def nothing(cls, reason: str) -> PartPlan:
        return cls({}, unavailable=reason)


@dataclass(frozen=True)
class Part:
    name: str
    help: str  # one line for --help
    plan: Callable[[BuildConfig, Materials], PartPlan]
    render: Render  # a module-level function: jobs carry it to the pool's workers
