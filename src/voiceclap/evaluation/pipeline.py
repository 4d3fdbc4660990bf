"""One evaluation run: every set through every scorer, each measure from :mod:`voiceclap.protocol`,
then the report directory.

Scorers and sets are passed in, so the whole run -- report files included -- works with a scorer of
known answers in tests exactly as with a model. A scorer's time on a set is what its own work took
(embedding, decoding with Whisper, transcribing: never the audio decoding, which all share).
"""

from __future__ import annotations

import datetime
import importlib.metadata
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voiceclap import protocol
from voiceclap.calibration import Calibration
from voiceclap.model import VoiceCLAP
from voiceclap.protocol import Row, Scorer

from . import plots
from .calibration_eval import evaluate_calibration, fit_calibration, in_fit_half
from .report import render_markdown, write_json, write_rows
from .sets import EvalSet


@dataclass
class EvalOptions:
    k_corruptions: int = 5
    pool: int = 60  # candidates per clip in the same-language retrieval
    seed: int = 0
    n_boot: int = 1000
    fit_calibration: bool = False
    progress: bool = True


def _model_summary(model: VoiceCLAP | None, source: str) -> dict[str, Any]:
    if model is None:
        return {"source": source, "config": None, "parameters": 0, "calibrated": False, "audio_precision": None}
    described = model.describe()
    return {
        "source": source,
        "config": model.config.name,
        "parameters": described["parameters"]["total"],
        "parameter_counts": described["parameters"],
        "calibrated": described["calibrated"],
        "audio_precision": described["audio_precision"],
    }


def _scorer_seconds(scorer: Scorer) -> float:
    return float(getattr(scorer, "seconds", 0.0))


class _Run:
    """The report being built, and the files written beside it."""

    def __init__(self, out: Path, options: EvalOptions):
        self.out, self.options = out, options
        self.files: list[str] = []
        self.plots: list[str] = []

    def rows(self, name: str, rows: Sequence[Row | dict[str, Any]]) -> None:
        write_rows(self.out / name, [r.to_json() if isinstance(r, Row) else r for r in rows])
        self.files.append(name)

    def plot(self, name: str | None) -> None:
        if name:
            self.plots.append(name)

    def heldout(self, eval_set: EvalSet, name: str, scorer: Scorer) -> dict[str, Any]:
        o, tag = self.options, f"{eval_set.name}_{name}"
        result: dict[str, Any] = {}
        if getattr(scorer, "full_retrieval", True):
            result["retrieval"], ranks = protocol.retrieval(eval_set.clips, scorer)
            self.rows(f"{tag}_retrieval_rows.jsonl", ranks)
            if ranks:
                self.plot(plots.plot_rank_histogram(ranks, self.out / f"{tag}_retrieval_ranks.png"))
        result["pooled_retrieval"], ranks = protocol.pooled_retrieval(eval_set.clips, scorer, o.pool, o.seed)
        self.rows(f"{tag}_pooled_retrieval_rows.jsonl", ranks)
        result["corruption"], rows = protocol.corruption(eval_set.clips, scorer, o.k_corruptions, o.seed, o.n_boot)
        self.rows(f"{tag}_corruption_rows.jsonl", rows)
        if rows:
            self.plot(plots.plot_score_vs_wer([r.to_json() for r in rows], self.out / f"{tag}_score_vs_wer.png", name))
        if hasattr(scorer, "adopt_calibration") and rows:
            result["calibration"] = self.calibration(scorer, rows, tag)
        return result

    def calibration(self, scorer: Scorer, rows: list[Row], tag: str) -> dict[str, Any]:
        """Fit the scorer's score -> expected WER map on one half of the clips (the scorer adopts and
        stores it), or test the calibration it carries on all rows."""
        if not self.options.fit_calibration:
            if scorer.calibration is None:
                return {"undefined": "the scorer carries no calibration (--fit-calibration fits one)"}
            self.plot(plots.plot_calibration(scorer.calibration, [r.to_json() for r in rows], self.out / f"{tag}_calibration.png"))
            return {"source": "carried by the scorer", "heldout": evaluate_calibration(scorer.calibration, rows)}
        fitted, summary = fit_calibration(rows)
        if fitted is None:
            return summary
        summary["saved_to"] = [str(p) for p in scorer.adopt_calibration(fitted, self.out)]
        test_rows = [r.to_json() for r in rows if not in_fit_half(r.clip.id)]
        self.plot(plots.plot_calibration(fitted, test_rows, self.out / f"{tag}_calibration.png"))
        return summary

    def gold(self, eval_set: EvalSet, name: str, scorer: Scorer) -> tuple[dict[str, Any], list[Row]]:
        summary, rows = protocol.gold(eval_set.clips, scorer, self.options.n_boot, self.options.seed)
        self.rows(f"{eval_set.name}_{name}_gold_rows.jsonl", rows)
        calibration: Calibration | None = getattr(scorer, "calibration", None)
        if calibration is not None and rows:
            summary["estimated_wer_mae"] = calibration.mean_absolute_error([r.score for r in rows], [r.wer for r in rows])
        return {"gold": summary}, rows

    def pairs(self, eval_set: EvalSet, name: str, scorer: Scorer) -> dict[str, Any]:
        summary, rows = protocol.pairs(eval_set.clips, scorer)
        self.rows(f"{eval_set.name}_{name}_pair_rows.jsonl", rows)
        return {"pairs": summary}


def run_evaluation(
    scorers: dict[str, Scorer],
    sets: Sequence[EvalSet],
    out_dir: str | Path,
    model: VoiceCLAP | None = None,
    model_source: str = "",
    options: EvalOptions | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every set through every scorer; writes the report into ``out_dir`` and returns it.

    ``model`` (the CLAP behind the ``clap`` scorer, optional) is described in the report. A scorer that
    carries a calibration (``calibration``, ``adopt_calibration``) has it tested, or with
    ``options.fit_calibration`` fitted anew and stored. ``settings`` (e.g. the CLI arguments) go into the report."""
    options = options or EvalOptions()
    if not sets:
        raise ValueError("nothing to evaluate: give at least one set")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(out, options)
    report: dict[str, Any] = {
        "voiceclap_version": importlib.metadata.version("voiceclap"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # orig_argv keeps "-m voiceclap.evaluation", which sys.argv turns into a __main__.py path.
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "model": _model_summary(model, model_source),
        "scorers": list(scorers),
        "options": asdict(options),
        "settings": settings or {},
        "sets": {},
    }
    for eval_set in sets:
        entry: dict[str, Any] = {"data": eval_set.summary(), "results": {}}
        gold_rows: dict[str, list[dict[str, Any]]] = {}
        for name, scorer in scorers.items():
            before = _scorer_seconds(scorer)
            if eval_set.role == "heldout":
                result = run.heldout(eval_set, name, scorer)
            elif eval_set.role == "gold":
                result, rows = run.gold(eval_set, name, scorer)
                gold_rows[name] = [r.to_json() for r in rows]
            else:
                result = run.pairs(eval_set, name, scorer)
            result["seconds"] = _scorer_seconds(scorer) - before
            entry["results"][name] = result
        if any(gold_rows.values()):
            run.plot(plots.plot_gold_comparison(gold_rows, out / f"{eval_set.name}_gold.png"))
        seconds = {name: r["seconds"] for name, r in entry["results"].items()}
        if "clap" in seconds and seconds["clap"] > 0:
            entry["seconds_over_clap"] = {name: s / seconds["clap"] for name, s in seconds.items()}
        report["sets"][eval_set.name] = entry

    report["plots"] = run.plots
    report["files"] = run.files + ["report.json", "report.md"] + run.plots
    report["seconds"] = time.perf_counter() - start
    report["scorer_details"] = {
        name: {k: v for k, v in vars(s).items() if k in ("truncated", "n_cached", "seconds")} for name, s in scorers.items()
    }
    write_json(out / "report.json", report)
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report
