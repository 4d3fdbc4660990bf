"""The bake-off table: the listening metrics of several `voiceclap eval` reports, one row each.

    python scripts/bakeoff_table.py shipped=reports/dev/shipped runs/bakeoff/*/dev [--scorer clap]

Each argument is a report directory (its report.json), optionally named NAME=DIR (default: the
directory's parent's name, e.g. the bake-off row). Sets are found by role: the synthetic held-out
set is the held-out set named `heldout`, real speech any other held-out set, `pairs` and `gold` by
role. Pair accuracies carry a 95% Wilson interval; the rest the CIs their reports hold.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scipy.stats import binomtest


def _load(argument: str) -> tuple[str, dict]:
    name, _, directory = argument.rpartition("=")
    path = Path(directory)
    return name or path.parent.name, json.loads((path / "report.json").read_text())


def _ci(value: float, ci: list[float] | None) -> str:
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _accuracy(n: int, accuracy: float) -> str:
    interval = binomtest(round(n * accuracy), n).proportion_ci(method="wilson")
    return f"{accuracy:.3f} [{interval.low:.2f}, {interval.high:.2f}]"


def row(report: dict, scorer: str) -> dict[str, str]:
    cells: dict[str, str] = {}
    for set_name, entry in report["sets"].items():
        result = entry["results"].get(scorer)
        if result is None:
            continue
        role = entry["data"].get("role", set_name)
        if "pairs" in result:
            pairs = result["pairs"]
            cells["pairs"] = _accuracy(pairs["n_pairs"], pairs["accuracy"]) + f" (N={pairs['n_pairs']})"
            cells["pairs, worst language"] = min(
                (f"{v['accuracy']:.3f} {lang} (N={v['n']})" for lang, v in pairs["by_language"].items()),
                key=lambda text: float(text.split()[0]),
            )
        elif "gold" in result:
            gold = result["gold"]["correlation"]["spearman"]
            cells["gold rho"] = _ci(gold["value"], gold.get("ci95"))
        elif role == "heldout" or "corruption" in result:
            prefix = "synthetic" if set_name == "heldout" else "real"
            if "retrieval" in result:
                retrieval = result["retrieval"]["overall"]["audio_to_text"]
                cells[f"{prefix} R@1 (all)"] = f"{retrieval['R@1']:.3f} (N={retrieval['N']})"
            if "pooled_retrieval" in result:
                pooled = result["pooled_retrieval"]["overall"]
                cells[f"{prefix} R@1 same-language"] = f"{pooled['R@1']:.3f}"
            corruption = result["corruption"]
            pooled_rho = corruption["pooled"]["spearman"]
            cells[f"{prefix} rho"] = _ci(pooled_rho["value"], pooled_rho.get("ci95"))
            control = corruption.get("other_audio_control", {}).get("spearman")
            if control:
                cells[f"{prefix} control"] = _ci(control["value"], control.get("ci95"))
    return cells


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", help="[NAME=]report directory")
    parser.add_argument("--scorer", default="clap", help="which scorer's results (default clap)")
    args = parser.parse_args()
    rows = {name: row(report, args.scorer) for name, report in map(_load, args.reports)}
    columns = list(dict.fromkeys(column for cells in rows.values() for column in cells))
    print("| row | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for name, cells in rows.items():
        print(f"| {name} | " + " | ".join(cells.get(column, "") for column in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
