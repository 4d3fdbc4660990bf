"""CI's check of the main job: in scored examples, every matching transcript of a clip must score above
every corrupted transcript of the same clip, and no row may have failed.

    python scripts/check_examples.py SCORES.jsonl [examples/manifest.tsv]
"""

import csv
import json
import sys
from collections import defaultdict


def main(scores_path: str, manifest_path: str = "examples/manifest.tsv") -> int:
    with open(manifest_path, encoding="utf-8") as f:
        kind = {row["id"]: row["kind"] for row in csv.DictReader(f, delimiter="\t")}
    with open(scores_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    failed = [r["id"] for r in rows if r["error"] is not None]
    by_clip = defaultdict(lambda: {"match": [], "corrupted": []})
    for r in rows:
        if r["error"] is None:
            by_clip[r["audio"]]["match" if kind[r["id"]] == "match" else "corrupted"].append(r["score"])
    problems = [f"row failed: {i}" for i in failed]
    for clip, scores in sorted(by_clip.items()):
        lowest_match, highest_corrupted = min(scores["match"]), max(scores["corrupted"])
        verdict = "ok" if lowest_match > highest_corrupted else "WRONG ORDER"
        print(f"{clip:24s} match {lowest_match:+.4f}  best corrupted {highest_corrupted:+.4f}  {verdict}")
        if verdict != "ok":
            problems.append(f"{clip}: a corrupted transcript scores {highest_corrupted:.4f} >= match {lowest_match:.4f}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"all {len(by_clip)} clips rank their matching transcript first")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
