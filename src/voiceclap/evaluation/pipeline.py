"""One evaluation run: every section in order, then the report directory.

The scorer and the ASR transcriber are passed in, so the whole run -- report files included --
works with a fake scorer in tests exactly as with a model.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voiceclap.calibration import Calibration
from voiceclap.model import CALIBRATION_NAME, VoiceCLAP

from . import plots
from .asr_baseline import Transcriber, TranscriptCache
from .calibration_eval import evaluate_calibration, fit_calibration, in_fit_half
from .corruption_eval import corruption_eval
from .data import EvalSet
from .gold import gold_eval
from .report import render_markdown, write_json, write_rows
from .retrieval import retrieval_eval
from .scorer import Scorer

__all__ = ["EvalOptions", "evaluate"]


@dataclass
class EvalOptions:
    k_corruptions: int = 5
    seed: int = 0
    n_boot: int = 1000
    fit_calibration: bool = False
    progress: bool = True


def _model_summary(model: VoiceCLAP | None, source: str) -> dict[str, Any]:
    if model is None:
        return {"source": source, "config": None, "parameters": 0, "calibrated": False}
    described = model.describe()
    return {
        "source": source,
        "config": model.config.name,
        "parameters": described["parameters"]["total"],
        "parameter_counts": described["parameters"],
        "calibrated": described["calibrated"],
    }


def evaluate(
    scorer: Scorer,
    out_dir: str | Path,
    heldout: EvalSet | None = None,
    gold: EvalSet | None = None,
    model: VoiceCLAP | None = None,
    model_source: str = "",
    model_dir: str | Path | None = None,
    transcriber: Transcriber | None = None,
    asr_cache: TranscriptCache | None = None,
    options: EvalOptions | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the sections the data allows and write the report into ``out_dir``; returns the report.

    ``model`` (optional with a fake scorer) supplies the description and the stored calibration and
    receives a newly fitted one; ``model_dir``, when the model was loaded from a local directory, is
    where a fitted calibration is saved beside the weights (``calibration.json``, which
    ``VoiceCLAP.from_pretrained`` loads). ``settings`` (e.g. the CLI arguments) go into the report.
    """
    options = options or EvalOptions()
    if heldout is None and gold is None:
        raise ValueError("nothing to evaluate: give a held-out set, a gold set or both")
    start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "voiceclap_version": importlib.metadata.version("voiceclap"),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        # orig_argv keeps "-m voiceclap.evaluation", which sys.argv turns into a __main__.py path.
        "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
        "model": _model_summary(model, model_source),
        "options": asdict(options),
        "settings": settings or {},
        "data": {},
        "files": [],
    }
    plot_files: list[str] = []

    def rows_file(name: str, rows: list[dict[str, Any]]) -> None:
        write_rows(out / name, rows)
        report["files"].append(name)

    calibration: Calibration | None = model.calibration if model is not None else None
    if heldout is not None:
        report["data"]["heldout"] = heldout.summary()
        report["retrieval"], retrieval_rows = retrieval_eval(heldout.clips, scorer)
        rows_file("retrieval_rows.jsonl", retrieval_rows)
        if retrieval_rows:
            plot_files.append(plots.plot_rank_histogram(retrieval_rows, out / "retrieval_ranks.png"))
        report["corruption"], corruption_rows = corruption_eval(
            heldout.clips, scorer, options.k_corruptions, options.seed, options.n_boot, options.progress
        )
        rows_file("corruption_rows.jsonl", corruption_rows)
        if corruption_rows:
            plot_files.append(plots.plot_score_vs_wer(corruption_rows, out / "score_vs_wer.png"))
        if options.fit_calibration:
            fitted, report["calibration"] = fit_calibration(corruption_rows)
            if fitted is not None:
                calibration = fitted
                saved = [str(out / CALIBRATION_NAME)]
                calibration.save(out / CALIBRATION_NAME)
                if model is not None:
                    model.calibration = calibration
                if model_dir is not None:
                    calibration.save(Path(model_dir) / CALIBRATION_NAME)
                    saved.append(str(Path(model_dir) / CALIBRATION_NAME))
                report["calibration"]["saved_to"] = saved
                test_rows = [r for r in corruption_rows if not in_fit_half(r["id"])]
                plot_files.append(plots.plot_calibration(calibration, test_rows, out / "calibration.png"))
        elif calibration is not None and corruption_rows:
            report["calibration"] = {
                "source": f"stored with the model ({model_source})",
                "heldout": evaluate_calibration(calibration, corruption_rows),
            }
            plot_files.append(plots.plot_calibration(calibration, corruption_rows, out / "calibration.png"))

    if gold is not None:
        report["data"]["gold"] = gold.summary()
        report["gold"], gold_rows = gold_eval(
            gold.clips, scorer, transcriber, asr_cache, calibration, options.n_boot, options.seed, options.progress
        )
        rows_file("gold_rows.jsonl", gold_rows)
        if gold_rows:
            plot_files.append(plots.plot_gold_comparison(gold_rows, out / "gold_voiceclap_vs_asr.png"))
        if "calibration" in report and "estimated_wer_mae" in report["gold"].get("voiceclap", {}):
            report["calibration"]["gold_mae"] = report["gold"]["voiceclap"]["estimated_wer_mae"]
            report["calibration"]["gold_n"] = report["gold"]["n_clips"]

    report["plots"] = plot_files
    report["files"] += ["report.json", "report.md"] + plot_files
    report["seconds"] = time.perf_counter() - start
    for attribute in ("seconds", "truncated_audio", "truncated_texts"):
        if hasattr(scorer, attribute):
            report.setdefault("scorer", {})[attribute] = getattr(scorer, attribute)
    write_json(out / "report.json", report)
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report
