"""What the built corpus holds, from the finished shards' stats files: ``summary.json`` (per part and
split: shards, clips, hours, languages, speakers, skipped clips; the parts' plan descriptions) and
``SOURCES.md`` (per source: kind, clips, hours, speakers or voices, languages, license, whether
commercial use is allowed, clips skipped)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from voiceclap.corpus.annotate import annotation_path
from voiceclap.corpus.licenses import TERMS, terms_of
from voiceclap.corpus.parts import SHARD_PARTS
from voiceclap.corpus.recorded import READERS
from voiceclap.corpus.shards import read_stats
from voiceclap.corpus.tts import ENGINES

__all__ = ["corpus_summary", "print_summary", "sources_markdown"]


def _kind(source: str) -> str:
    return "recorded" if source in READERS else "synthetic"


def _split_names(directory: Path, plan: dict) -> list[str]:
    planned = list(plan.get("clips", {}))
    found = sorted(p.name for p in directory.iterdir() if p.is_dir() and p.name not in planned)
    return planned + found


def _part(directory: Path, sources: dict) -> dict:
    """One part's totals; adds its per-speaker rows and failures to ``sources``."""
    plan = json.loads((directory / "plan.json").read_text()) if (directory / "plan.json").exists() else {}
    part = {"clips": 0, "hours": 0.0, "failed": 0, "splits": {}}
    annotated: Counter = Counter()
    for split in _split_names(directory, plan):
        entry = {"shards": 0, "clips": 0, "hours": 0.0, "failed": 0, "by_language": Counter(), "speakers": set()}
        for path in sorted((directory / split).glob("shard-*.stats.json")):
            stats = read_stats(path)
            entry["shards"] += 1
            entry["clips"] += stats["clips"]
            entry["hours"] += stats["seconds"] / 3600
            for row in stats["speakers"]:
                entry["by_language"][row["language"]] += row["clips"]
                entry["speakers"].add(row["speaker"])
                sources[(row["source"], terms_of(row["source"], row["speaker"]))]["rows"].append(row)
            for failure in stats["failed"]:
                entry["failed"] += len(failure["ids"])
                if failure["source"] is not None:
                    sources[(failure["source"], terms_of(failure["source"]))]["skipped"] += len(failure["ids"])
            annotation = annotation_path(path.with_name(path.name.replace(".stats.json", ".tar")))
            if annotation.exists():
                annotated.update(json.loads(annotation.read_text()))
        part["clips"] += entry["clips"]
        part["hours"] += entry["hours"]
        part["failed"] += entry["failed"]
        entry["hours"] = round(entry["hours"], 3)
        entry["by_language"] = dict(sorted(entry["by_language"].items()))
        entry["speakers"] = len(entry["speakers"])
        part["splits"][split] = entry
    for source, report in plan.get("sources", {}).items():  # what the recorded readers dropped
        sources[(source, terms_of(source))]["skipped"] += sum(report["dropped"].values())
    part["hours"] = round(part["hours"], 3)
    if annotated:
        part["fluent_annotation"] = dict(sorted(annotated.items()))
    part["plan"] = {key: value for key, value in plan.items() if key != "fingerprint"}
    return part


def _source_rows(sources: dict) -> list[dict]:
    """One row per source and terms (a voice with terms of its own gets its own row), every known
    source included, built or not."""
    for name in (*ENGINES, *READERS):
        sources.setdefault((name, terms_of(name)), {"rows": [], "skipped": 0})
    rows = []
    for (source, terms), entry in sorted(sources.items(), key=lambda item: (_kind(item[0][0]), item[0][0])):
        speakers = {row["speaker"] for row in entry["rows"]}
        own_voices = sorted(s for s in speakers if s in TERMS)
        rows.append(
            {
                "source": ", ".join(own_voices) if own_voices else source,
                "kind": _kind(source),
                "clips": sum(row["clips"] for row in entry["rows"]),
                "hours": round(sum(row["seconds"] for row in entry["rows"]) / 3600, 3),
                "speakers": len(speakers),
                "languages": sorted({row["language"] for row in entry["rows"]}),
                "license": terms.license,
                "commercial_use": terms.commercial_use,
                "skipped": entry["skipped"],
            }
        )
    return rows


def corpus_summary(out: Path) -> dict:
    """Totals over the finished shards of every part under ``out``."""
    sources: dict = defaultdict(lambda: {"rows": [], "skipped": 0})
    parts = {name: _part(out / name, sources) for name in SHARD_PARTS if (out / name).is_dir()}
    return {
        "clips": sum(p["clips"] for p in parts.values()),
        "hours": round(sum(p["hours"] for p in parts.values()), 3),
        "failed": sum(p["failed"] for p in parts.values()),
        "parts": parts,
        "sources": _source_rows(sources),
    }


def sources_markdown(summary: dict) -> str:
    lines = [
        "# Sources of the corpus",
        "",
        "Clips and hours as built; speakers are voices for synthetic sources. Skipped: clips a recorded",
        "source's reader dropped (recorded/report.md says why) or that could not be synthesized or read.",
        "Commercial use: whether the terms allow selling a model trained on the audio",
        "(voiceclap.corpus.licenses; `--commercial-only` keeps only these).",
        "",
        "| source | kind | clips | hours | speakers / voices | languages | license | commercial use | skipped |",
        "|---|---|---:|---:|---:|---|---|---|---:|",
    ]
    for row in summary["sources"]:
        lines.append(
            f"| {row['source']} | {row['kind']} | {row['clips']} | {row['hours']:.2f} | {row['speakers']} | "
            f"{' '.join(row['languages']) or '-'} | {row['license']} | {'yes' if row['commercial_use'] else 'no'} | "
            f"{row['skipped']} |"
        )
    return "\n".join(lines) + "\n"


def print_summary(summary: dict) -> None:
    print(f"corpus: {summary['clips']} clips, {summary['hours']:.2f} h, {summary['failed']} failed")
    for name, part in summary["parts"].items():
        for split, entry in part["splits"].items():
            languages = ", ".join(f"{k} {v}" for k, v in entry["by_language"].items())
            print(
                f"  {name:9s} {split:8s} {entry['clips']:7d} clips {entry['hours']:7.2f} h  {entry['shards']} shards  "
                f"{entry['speakers']} speakers  ({languages})"
            )
    build = summary.get("build")
    if build and build["clips"]:
        print(f"  built {build['clips']} clips in {build['seconds']:.0f} s ({build['clips_per_second']} clips/s)")
