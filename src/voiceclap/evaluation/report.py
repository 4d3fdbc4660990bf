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

CORRELATIONS = ("spearman", "kendall", "pearson")


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


def _correlation_cells(report: dict[str, Any]) -> list[str]:
    return [format_correlation(report.get(name)) for name in CORRELATIONS]


def _data_section(data: dict[str, Any]) -> list[str]:
    rows = []
    for name, entry in data.items():
        languages = ", ".join(f"{k} {v}" for k, v in entry["languages"].items())
        rows.append(
            [name, entry["n_clips"], entry["n_available"], f"{entry['hours']:.2f}", languages, len(entry["skipped"])]
        )
    return ["## Data", ""] + _table(["set", "clips used", "clips available", "hours", "languages", "skipped"], rows)


def _retrieval_section(retrieval: dict[str, Any]) -> list[str]:
    lines = ["## Retrieval (held-out)", ""]
    if "undefined" in retrieval:
        return lines + [f"Not computed: {retrieval['undefined']}.", ""]
    lines += [
        (
            f"Each clip's own transcript must be found among N candidates; {retrieval['n_excluded_duplicate_text']} "
            "clip(s) whose normalized transcript repeats another's were left out. Ties rank pessimistically."
        ),
        "",
    ]
    scopes = [("all languages", retrieval["overall"])] + list(retrieval["by_language"].items())
    rows = []
    for scope, entry in scopes:
        a, t = entry["audio_to_text"], entry["text_to_audio"]
        rows.append(
            [scope, a["N"]]
            + [_num(a[f"R@{k}"]) for k in (1, 5, 10)]
            + [_num(a["median_rank"], 1)]
            + [_num(t[f"R@{k}"]) for k in (1, 5, 10)]
            + [_num(t["median_rank"], 1)]
        )
    header = ["scope", "N", "a→t R@1", "R@5", "R@10", "med. rank", "t→a R@1", "R@5", "R@10", "med. rank"]
    return lines + _table(header, rows)


def _corruption_section(corruption: dict[str, Any]) -> list[str]:
    lines = ["## Synthetic corruption (the card's protocol)", ""]
    if "undefined" in corruption:
        return lines + [f"Not computed: {corruption['undefined']}.", ""]
    lines += [
        (
            f"Each clip against its true transcript and {corruption['k_corruptions']} corruptions "
            f"(seed {corruption['seed']}, stream `{corruption['seed_stream']}`); all rows pooled; "
            "95% CIs resample clips. A good score correlates negatively with WER."
        ),
        "",
    ]
    pooled = corruption["pooled"]
    rows = [["all languages", pooled["n_groups"], pooled["n"]] + _correlation_cells(pooled)]
    rows += [[lang, e["n_groups"], e["n"]] + _correlation_cells(e) for lang, e in corruption["by_language"].items()]
    lines += _table(["scope", "clips", "rows", "Spearman ρ", "Kendall τ-b", "Pearson r"], rows)
    lines += [
        f"True transcript scored above all its corruptions: {_num(corruption['true_ranked_first'])} of clips.",
        "",
    ]
    control = corruption["other_audio_control"]
    lines += [
        (
            "Text-prior control: the same rows scored against another clip's audio of the same language "
            f"({control['n_groups']} clips) give Spearman ρ {format_correlation(control.get('spearman'))}. "
            "That much the text alone earns (corruptions read as less fluent); an audio-grounded score "
            "keeps it near 0, and its distance from the ρ above is what listening adds."
        ),
        "",
    ]
    lines += _table(
        ["WER bin", "rows", "mean score"],
        [[b["wer_bin"], b["n"], _num(b["mean_score"], 4)] for b in corruption["mean_score_by_wer"]],
    )
    return lines


def _calibration_section(calibration: dict[str, Any]) -> list[str]:
    lines = ["## Calibration (score → expected WER)", ""]
    if "undefined" in calibration:
        return lines + [f"Not fitted: {calibration['undefined']}.", ""]
    rows = []
    if "fit" in calibration:
        lines += [
            (
                f"Isotonic map fitted on {calibration['fit']['n_clips']} held-out clips ({calibration['split']}), "
                f"{calibration['n_knots']} knots; saved to {', '.join(calibration['saved_to'])}."
            ),
            "",
        ]
        rows.append(
            [
                "held-out test half",
                calibration["test"]["n_rows"],
                _num(calibration["test"]["mae"]),
                _num(calibration["test_mae_constant_guess"]),
            ]
        )
    elif "heldout" in calibration:
        lines += [f"The model's stored calibration ({calibration['source']}).", ""]
        rows.append(["held-out (all rows)", calibration["heldout"]["n_rows"], _num(calibration["heldout"]["mae"]), "–"])
    if calibration.get("gold_mae") is not None:
        rows.append(["gold set (true WER)", calibration["gold_n"], _num(calibration["gold_mae"]), "–"])
    return lines + _table(["evaluated on", "rows", "MAE", "MAE of a constant guess"], rows)


def _gold_section(gold: dict[str, Any]) -> list[str]:
    lines = ["## Gold validation (audio says a corrupted text; scored against the intended text)", ""]
    if "undefined" in gold:
        return lines + [f"Not computed: {gold['undefined']}.", ""]
    t = gold["true_wer"]
    lines += [
        (
            f"{gold['n_clips']} clips, {gold['audio_seconds'] / 60:.1f} min of audio; true WER "
            f"{t['min']:.2f}–{t['max']:.2f} (median {t['median']:.2f}). VoiceCLAP should correlate negatively "
            "with the true WER, ASR-WER positively: compare magnitudes. VoiceCLAP's WER MAE is that of its "
            "calibrated estimate (– without a calibration). Times exclude decoding, which both share."
        ),
        "",
    ]
    methods = [("VoiceCLAP score", gold["voiceclap"], gold["voiceclap"].get("estimated_wer_mae"))]
    if "asr" in gold:
        methods.append((f"ASR-WER ({gold['asr']['transcriber']})", gold["asr"], gold["asr"]["mae"]))
    rows = [
        [name, m["correlation"]["n"]]
        + _correlation_cells(m["correlation"])
        + [_num(mae), _num(m["seconds"], 2), _num(m["seconds_per_audio_second"], 4)]
        for name, m, mae in methods
    ]
    lines += _table(
        ["method", "clips", "Spearman ρ", "Kendall τ-b", "Pearson r", "WER MAE", "seconds", "s per audio s"], rows
    )
    if "asr" in gold:
        asr = gold["asr"]
        lines += [
            (
                f"ASR transcripts: {asr['n_cached']} of {asr['n_clips']} from the cache (times as measured when "
                f"transcribed); model load {asr['load_seconds']:.1f} s, not counted."
            ),
            "",
        ]
    language_rows = []
    for language, entry in gold["voiceclap"]["by_language"].items():
        asr_entry = gold.get("asr", {}).get("by_language", {}).get(language)
        language_rows.append(
            [
                language,
                entry["n"],
                format_correlation(entry["spearman"]),
                format_correlation(asr_entry["spearman"]) if asr_entry else "–",
            ]
        )
    lines += ["### Per language", ""] + _table(["language", "clips", "VoiceCLAP ρ", "ASR-WER ρ"], language_rows)
    lines += _per_system_lines(gold["per_system"])
    return lines


def _per_system_lines(per_system: dict[str, Any]) -> list[str]:
    lines = ["### Per system (TTS voice)", ""]
    if "undefined" in per_system:
        return lines + [f"Not computed: {per_system['undefined']}.", ""]
    level = per_system["system_level"]
    lines += [
        f"System level (means of {per_system['n_systems']} systems): VoiceCLAP ρ "
        f"{format_correlation(level['score']['spearman'])}"
        + (f"; ASR-WER ρ {format_correlation(level['asr_wer']['spearman'])}" if "asr_wer" in level else "")
        + ".",
        "",
    ]
    rows = []
    for name, entry in per_system["systems"].items():
        rows.append(
            [
                name,
                entry["n"],
                _num(entry["mean_true_wer"]),
                _num(entry["mean_score"]),
                format_correlation(entry["score_correlation"]["spearman"]),
                _num(entry.get("mean_asr_wer")),
                format_correlation(entry["asr_wer_correlation"]["spearman"]) if "asr_wer_correlation" in entry else "–",
            ]
        )
    return lines + _table(
        ["system", "clips", "mean true WER", "mean score", "ρ within", "mean ASR-WER", "ASR ρ within"], rows
    )


def render_markdown(report: dict[str, Any]) -> str:
    model = report["model"]
    lines = [
        "# VoiceCLAP evaluation report",
        "",
        f"- model: `{model['source']}` (config `{model['config']}`, {model['parameters']:,} parameters)",
        f"- created: {report['created']}",
        f"- command: `{report['command']}`",
        f"- total time: {report['seconds']:.1f} s",
        "",
    ]
    lines += _data_section(report["data"])
    for key, section in (
        ("retrieval", _retrieval_section),
        ("corruption", _corruption_section),
        ("calibration", _calibration_section),
        ("gold", _gold_section),
    ):
        if key in report:
            lines += section(report[key])
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{name}]({name})" for name in report["plots"]] + [""]
    return "\n".join(lines)
