"""The recorded part: every recorded source (:data:`voiceclap.corpus.recorded.READERS`) through its
reader, split by :func:`voiceclap.corpus.recorded.split_of` into ``train``, ``dev`` and ``test``,
audio transcoded to 16 kHz mono FLAC.

What each reader dropped and why is written to ``recorded/report.md`` (the source table and the
drop table) and kept in ``plan.json``; a source whose packages are not installed, or whose license
forbids commercial use under ``--commercial-only``, is left out and named there too. Per clip the
shard JSON has the reader's record (``extra``: the license, and per source the character, stamp,
level or recording segment) plus ``split``.
"""

from __future__ import annotations

import random
from collections import defaultdict

from voiceclap.audio import SAMPLE_RATE, AudioDecodeError, load_audio
from voiceclap.clips import Clip
from voiceclap.corpus.config import BuildConfig
from voiceclap.corpus.licenses import terms_of
from voiceclap.corpus.materials import Materials
from voiceclap.corpus.parts.base import PartPlan
from voiceclap.corpus.recorded import (
    FESTVOX_RU_ROOT,
    FILLETS_ROOT,
    READERS,
    SPLITS,
    TUXPAINT_ROOT,
    UQM_ROOT,
    SourceReport,
    cut_uqm,
    drop_table,
    source_table,
    split_of,
)
from voiceclap.corpus.shards import Unit, UnitFailed, flac

__all__ = ["ROOTS", "plan_recorded", "render_recorded"]

#: Where each source's packages are installed (Debian's locations; tests point them elsewhere).
ROOTS = {"uqm": UQM_ROOT, "tuxpaint": TUXPAINT_ROOT, "fillets": FILLETS_ROOT, "festvox-ru": FESTVOX_RU_ROOT}


def _planned(clip: Clip, split: str) -> dict:
    clip.extra["split"] = split
    return {**clip.to_json(), "audio": clip.audio}


def _units(source: str, clips: list[Clip]) -> dict[str, list[Unit]]:
    """Per split, one unit per clip; uqm's lines are cut from longer recordings, so a recording's
    lines make one unit (decoded once), which names the packages to cut them from."""
    units: dict[str, list[Unit]] = defaultdict(list)
    recordings: dict[tuple[str, str], Unit] = {}
    for clip in clips:
        split = split_of(clip)
        if source == "uqm":
            key = (split, clip.extra["recording"])
            if key not in recordings:
                recordings[key] = []
                units[split].append(recordings[key])
            recordings[key].append({**_planned(clip, split), "uqm_root": str(ROOTS["uqm"])})
        else:
            units[split].append([_planned(clip, split)])
    return units


def plan_recorded(config: BuildConfig, materials: Materials) -> PartPlan:
    """Every clip the readers keep, as units per split in a seeded order that mixes the sources."""
    units: dict[str, list[Unit]] = {split: [] for split in SPLITS}
    reports: list[SourceReport] = []
    left_out: dict[str, str] = {}
    for source, reader in READERS.items():
        if config.commercial_only and not terms_of(source).commercial_use:
            left_out[source] = f"license forbids commercial use ({terms_of(source).license})"
            continue
        report = SourceReport(source)
        # uqm is read without audio here (seconds instead of a minute) and cut when rendered.
        options = {"with_audio": False} if source == "uqm" else {}
        try:
            clips = list(reader(ROOTS[source], report=report, **options))
        except FileNotFoundError as error:
            left_out[source] = str(error)
            continue
        reports.append(report)
        for split, source_units in _units(source, clips).items():
            units[split].extend(source_units)
    if not reports:
        return PartPlan.nothing("no recorded source: " + "; ".join(f"{s}: {why}" for s, why in left_out.items()))
    for split, split_units in units.items():
        random.Random(f"{config.seed}:recorded:{split}").shuffle(split_units)
    description = {
        "sources": {
            report.source: {"kept": sum(report.clips.values()), "dropped": dict(report.dropped_by_reason())}
            for report in reports
        },
        "left_out": left_out,
    }
    text = f"# Recorded speech\n\n{source_table(reports)}\n\n## Dropped clips\n\n{drop_table(reports)}\n"
    if left_out:
        text += "\n## Sources left out\n\n" + "".join(f"- {s}: {why}\n" for s, why in left_out.items())
    return PartPlan(units, description, files={"report.md": text})


def render_recorded(unit: Unit) -> list[tuple[Clip, bytes]]:
    """The unit's clips with their audio as 16 kHz mono FLAC (soxr resampling)."""
    clips = []
    for item in unit:
        meta = {key: value for key, value in item.items() if key not in ("audio", "uqm_root")}
        clips.append(Clip.from_json(meta, item["audio"]))
    try:
        if "uqm_root" in unit[0]:
            clips = list(cut_uqm(clips, unit[0]["uqm_root"]))
        rendered = []
        for clip in clips:
            waveform = load_audio(clip.audio)
            clip.audio, clip.duration = None, round(len(waveform) / SAMPLE_RATE, 3)
            rendered.append((clip, flac(waveform)))
    except (AudioDecodeError, OSError) as error:
        raise UnitFailed(f"{clips[0].id}: {error}", clips[0].source) from error
    return rendered
