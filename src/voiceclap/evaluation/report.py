"""The report directory: report.json (every number), report.md (tables), rows as JSONL, PNG plots.

The report dict is built by :mod:`voiceclap.evaluation.pipeline`; this module only writes it.
A correlation that is undefined (constant scores, too few rows) is written as its reason, never
as NaN: JSON has no NaN, and a table cell reading "nan" would not say why.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["format_correlation", "jsonable", "render_markdown", "write_json", "write_rows"]

def jsonable(value: Any) -> Any:
    """numpy scalars/arrays to Python, tuples to lists, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(jsonable(data), indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(jsonable(row), ensure_ascii=False, allow_nan=False) + "\n" for row in rows)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def format_correlation(entry: dict[str, Any] | None) -> str:
    """``-0.788 [-0.801, -0.774]``, or ``undefined (constant input)``."""
    if not entry:
        return "–"
    if entry.get("value") is None:
        return f"undefined ({entry.get('undefined', 'no value')})"
    ci = entry.get("ci95")
    interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"{entry['value']:.3f}{interval}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def _data_section(sets: dict[str, Any]) -> list[str]:
    rows = []
    for name, entry in sets.items():
        data = entry["data"]
        languages = ", ".join(f"{k} {v}" for k, v in data["languages"].items())
        rows.append([name, data["role"], data["n_clips"], data["n_available"], len(data["skipped"]), _num(data["hours"], 2), data["n_speakers"], languages])
    return ["## Data", ""] + _table(["set", "role", "clips", "usable", "skipped", "hours", "speakers", "languages"], rows)


def _retrieval_lines(results: dict[str, Any]) -> list[str]:
    rows = []
    for scorer, result in results.items():
        retrieval = result.get("retrieval")
        if retrieval and "overall" in retrieval:
            scopes = [("all languages", retrieval["overall"])] + list(retrieval["by_language"].items())
            for scope, entry in scopes:
                a, t = entry["audio_to_text"], entry["text_to_audio"]
                rows.append([scorer, scope, a["N"], _num(a["R@1"]), _num(a["R@5"]), _num(a["median_rank"], 1), _num(t["R@1"])])
    lines = []
    if rows:
        lines += [
            "### Retrieval among all distinct transcripts",
            "",
            ("Each clip's own transcript among N candidates (clips whose normalized transcript repeats "
            "another's left out); ties rank pessimistically."),
            "",
        ]
        lines += _table(["scorer", "scope", "N", "a→t R@1", "R@5", "median rank", "t→a R@1"], rows)
    rows = []
    for scorer, result in results.items():
        pooled = result.get("pooled_retrieval", {})
        if "overall" in pooled:
            by_source = [(f"source {name}", entry) for name, entry in pooled.get("by_source", {}).items()]
            for scope, entry in [("all languages", pooled["overall"]), *pooled["by_language"].items(), *by_source]:
                rows.append([scorer, scope, entry["N"], _num(entry["mean_candidates"], 1), _num(entry["R@1"]), _num(entry["R@5"])])
    if rows:
        pool = next(r["pooled_retrieval"]["pool"] for r in results.values() if "pooled_retrieval" in r)
        lines += ["### Retrieval among same-language candidates", "", f"Each clip's transcript among up to {pool} of its language.", ""]
        lines += _table(["scorer", "scope", "clips", "candidates", "R@1", "R@5"], rows)
    return lines


def _corruption_lines(results: dict[str, Any]) -> list[str]:
    entries = {s: r["corruption"] for s, r in results.items() if "pooled" in r.get("corruption", {})}
    if not entries:
        return []
    first = next(iter(entries.values()))
    lines = [
        "### Synthetic corruption (the card's protocol) and its text-prior control",
        "",
        (f"Each clip against its transcript and {first['k_corruptions']} corruptions (seed {first['seed']}, stream "
        f"`{first['seed_stream']}`); rows pooled; 95% CIs resample clips. A good score correlates negatively with "
        "WER. The control scores the same rows against another clip's audio of the same language: what the text "
        "alone earns (near 0 if the score listens)."),
        "",
    ]
    rows = []
    for scorer, c in entries.items():
        rows.append([scorer, "all", c["pooled"]["n_groups"], format_correlation(c["pooled"]["spearman"]),
                     format_correlation(c["other_audio_control"]["spearman"]), _num(c["true_ranked_first"])])
        rows += [[scorer, lang, e["n_groups"], format_correlation(e["spearman"]), "", ""] for lang, e in c["by_language"].items()]
    lines += _table(["scorer", "scope", "clips", "Spearman ρ", "control ρ", "truth above all"], rows)
    bins = [b["wer_bin"] for b in first["mean_score_by_wer"]]
    rows = [[scorer] + [_num(b["mean_score"], 4) for b in c["mean_score_by_wer"]] for scorer, c in entries.items()]
    return lines + ["Mean score by WER bin:", ""] + _table(["scorer", *bins], rows)


def _calibration_lines(calibration: dict[str, Any] | None) -> list[str]:
    if not calibration:
        return []
    lines = ["### Calibration of the clap score (→ expected WER)", ""]
    if "undefined" in calibration:
        return lines + [f"Not computed: {calibration['undefined']}.", ""]
    if "fit" in calibration:
        lines += [
            (f"Isotonic map fitted on {calibration['fit']['n_clips']} clips ({calibration['split']}), "
            f"{calibration['n_knots']} knots; saved to {', '.join(calibration['saved_to'])}. Test-half MAE "
            f"{_num(calibration['test']['mae'])} (a constant guess: {_num(calibration['test_mae_constant_guess'])})."),
            "",
        ]
    else:
        lines += [f"The model's stored calibration: MAE {_num(calibration['heldout']['mae'])} on all rows.", ""]
    return lines


def _gold_lines(results: dict[str, Any]) -> list[str]:
    entries = {s: r["gold"] for s, r in results.items() if "correlation" in r.get("gold", {})}
    if not entries:
        return []
    first = next(iter(entries.values()))
    t = first["true_wer"]
    lines = [
        (f"{first['n_clips']} clips, {first['audio_seconds'] / 60:.1f} min of audio; true WER {t['min']:.2f}–{t['max']:.2f} "
        f"(median {t['median']:.2f}). Every scorer is scored against the intended text and should correlate "
        "negatively with the true WER (the ASR scorer's score is minus its WER)."),
        "",
    ]
    rows = [
        [scorer, g["n_clips"], format_correlation(g["correlation"]["spearman"]),
         format_correlation(g["per_system"].get("system_level", {}).get("spearman")), _num(g.get("estimated_wer_mae")),
         _num(results[scorer]["seconds"], 2)]
        for scorer, g in entries.items()
    ]
    lines += _table(["scorer", "clips", "Spearman ρ", "system-level ρ", "WER MAE (calibrated)", "seconds"], rows)
    languages = sorted({lang for g in entries.values() for lang in g["by_language"]})
    rows = [[lang] + [format_correlation(g["by_language"].get(lang, {}).get("spearman")) for g in entries.values()] for lang in languages]
    return lines + ["Per language (Spearman ρ):", ""] + _table(["language", *entries], rows)


def _pairs_lines(results: dict[str, Any]) -> list[str]:
    entries = {s: r["pairs"] for s, r in results.items() if "accuracy" in r.get("pairs", {})}
    if not entries:
        return []
    languages = sorted({lang for p in entries.values() for lang in p["by_language"]})
    lines = ["Fraction of pairs where the said text scores strictly above its variant (chance 0.5).", ""]
    rows = [[scorer, p["n_pairs"], _num(p["accuracy"])] + [_num(p["by_language"].get(lang, {}).get("accuracy")) for lang in languages]
            for scorer, p in entries.items()]
    return lines + _table(["scorer", "pairs", "all", *languages], rows)


def render_markdown(report: dict[str, Any]) -> str:
    model = report["model"]
    lines = [
        "# VoiceCLAP evaluation report",
        "",
        f"- model: `{model['source']}` (config `{model['config']}`, {model['parameters']:,} parameters"
        + (f", audio encoder in {model['audio_precision']})" if model.get("audio_precision") else ")"),
        f"- scorers: {', '.join(report['scorers'])}",
        f"- created: {report['created']}",
        f"- command: `{report['command']}`",
        f"- total time: {report['seconds']:.1f} s",
        "",
    ]
    lines += _data_section(report["sets"])
    for name, entry in report["sets"].items():
        results = entry["results"]
        lines += [f"## {name} ({entry['data']['role']})", ""]
        lines += _retrieval_lines(results) + _corruption_lines(results)
        lines += _calibration_lines(results.get("clap", {}).get("calibration"))
        lines += _gold_lines(results) + _pairs_lines(results)
        seconds = ", ".join(f"{s} {r['seconds']:.1f} s" for s, r in results.items())
        ratios = {s: v for s, v in (entry.get("seconds_over_clap") or {}).items() if s != "clap"}
        lines += [f"Scorer time on this set: {seconds}"
                  + (" (" + ", ".join(f"{s} {v:.1f}x clap" for s, v in ratios.items()) + ")" if ratios else "")
                  + ".", ""]
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in report["plots"]] + [""]
    return "\n".join(lines)
