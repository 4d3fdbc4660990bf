"""First score: seconds from typing a one-pair `voiceclap score` to its answer, per engine.

Runs the command as a user does (a fresh process each time) on one example clip, for each --engines
engine, --runs times, in two states:

  warm   the files it reads (Python, torch, the model) are in the page cache: scoring in a loop
  cold   the page cache dropped before each run (`sync; echo 3 > /proc/sys/vm/drop_caches`, needs
         root): the first score after a reboot or after other work pushed the files out

Before the timed runs, one untimed run per engine leaves what a machine has after its first run:
the traced model (voiceclap.traced) and the checksum stamps of the base weights. All warm runs come
first; engines alternate within a run, so a change in the machine's load hits them alike. Reported: the median wall seconds
and peak RSS per engine and state, the ratio eager / traced, and issue 17's target
(TARGET_SECONDS, both states).

    python benchmarks/first_score.py --runs 5 --out reports/first-score

Writes DIR/first_score.md (the table, also printed) and DIR/first_score.json (every run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEFAULT_AUDIO = EXAMPLES / "en-fox.flac"
DEFAULT_TEXT = "The quick brown fox jumps over the lazy dog."
TARGET_SECONDS = 3.0  # issue 17: a first score within 3 s, cold and warm
DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def drop_page_cache() -> bool:
    """Empty the kernel's page cache; False where this process may not (not root, a container)."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n")
    except OSError:
        return False
    return True


def timed_run(command: list[str]) -> dict:
    """One process: its wall seconds, its peak RSS (the kernel's, from wait4) and what it printed."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
        stdout.seek(0)
        stderr.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {stderr.read().strip()[-500:]}")
        return {"seconds": wall, "stdout": stdout.read().strip(), "peak_rss_mib": usage.ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", default=str(DEFAULT_AUDIO), help="the clip (default: examples/en-fox.flac)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="its transcript")
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument("--engines", nargs="+", default=["traced", "eager"], choices=["traced", "eager"])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per engine and state (default: %(default)s)")
    parser.add_argument("--states", nargs="+", default=["warm", "cold"], choices=["warm", "cold"])
    parser.add_argument("--out", help="folder for first_score.md and first_score.json")
    args = parser.parse_args(argv)

    commands = {
        engine: [sys.executable, "-m", "voiceclap", "score", "--audio", args.audio, "--text", args.text,
                 "--engine", engine, *(["--model", args.model] if args.model else [])]
        for engine in args.engines
    }
    for engine, command in commands.items():
        print(f"first run ({engine}, untimed): {timed_run(command)['seconds']:.1f} s", file=sys.stderr)
    states = list(args.states)
    if "cold" in states and not drop_page_cache():
        print(f"cold: not measured ({DROP_CACHES} is not writable here)", file=sys.stderr)
        states.remove("cold")

    runs: dict[str, dict[str, list[dict]]] = {state: {engine: [] for engine in commands} for state in states}
    # All warm runs before any cold one: a dropped cache would leave the next "warm" run cold for
    # whatever the engine run in between did not read back.
    for state in states:
        for i in range(args.runs):
            for engine, command in commands.items():
                if state == "cold":
                    drop_page_cache()
                run = timed_run(command)
                runs[state][engine].append(run)
                print(f"run {i + 1}/{args.runs} {state:4} {engine:6} {run['seconds']:.2f} s", file=sys.stderr)

    medians = {state: {engine: {"seconds": statistics.median(r["seconds"] for r in rows),
                                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in rows)}
                       for engine, rows in by_engine.items()}
               for state, by_engine in runs.items()}
    lines = [
        f"# First score of a one-pair `voiceclap score` ({args.runs} runs, median)",
        "",
        f"{platform.node()}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end; target <= {TARGET_SECONDS:g} s",
        "",
        "| state | engine | seconds | peak RSS MiB | target |",
        "|---|---|---|---|---|",
    ]
    for state, by_engine in medians.items():
        for engine, figures in by_engine.items():
            met = "met" if figures["seconds"] <= TARGET_SECONDS else "missed"
            lines.append(f"| {state} | {engine} | {figures['seconds']:.2f} | {figures['peak_rss_mib']:.0f} | {met} |")
    for state, by_engine in medians.items():
        if {"traced", "eager"} <= by_engine.keys():
            ratio = by_engine["eager"]["seconds"] / by_engine["traced"]["seconds"]
            lines.append(f"\n{state}: eager / traced = {ratio:.1f}x")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "first_score.md").write_text(report, encoding="utf-8")
        document = {"command": sys.argv, "runs": runs, "medians": medians, "target_seconds": TARGET_SECONDS}
        (out / "first_score.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
