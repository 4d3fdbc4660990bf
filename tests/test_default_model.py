"""End to end with the real shipped default model: the README's main job on the bundled examples.

Needs the offline base weights (`bash scripts/setup.sh` installs them, as CI does)."""

import csv
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def example_scores(tmp_path_factory):
    """Score the examples exactly as the README's main-job command does; {(clip, kind): score}."""
    try:
        from voiceclap.weights import resolve_encoder_source

        resolve_encoder_source("offline:whisper-base")
        resolve_encoder_source("offline:multilingual-e5-small")
    except RuntimeError as error:  # MissingBaseWeights names the install command
        pytest.skip(str(error))
    out = tmp_path_factory.mktemp("main-job") / "scores.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "voiceclap", "score", "--manifest", str(EXAMPLES / "manifest.tsv"), "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr  # every row scored
    with open(EXAMPLES / "manifest.tsv", encoding="utf-8") as f:
        kind = {row["id"]: row["kind"] for row in csv.DictReader(f, delimiter="\t")}
    scores = {}
    for row in map(json.loads, out.read_text().splitlines()):
        scores[(row["audio"], kind[row["id"]])] = row["score"]
    return scores


def clips(scores):
    by_clip = defaultdict(dict)
    for (clip, kind), score in scores.items():
        by_clip[clip][kind] = score
    return by_clip


def test_heavily_corrupted_transcripts_score_below_the_match(example_scores):
    wrong = {c: s for c, s in clips(example_scores).items() if not s["match"] > s["heavy"]}
    assert not wrong, wrong


@pytest.mark.xfail(
    strict=True,
    reason="issue 6 target not met: the default model (frozen encoders) ranks a one-word substitution "
    "above the match on 3 of 6 example clips; a model that fixes it turns this into a failure to update",
)
def test_lightly_corrupted_transcripts_score_below_the_match(example_scores):
    wrong = {c: s for c, s in clips(example_scores).items() if not s["match"] > s["light"]}
    assert not wrong, wrong
