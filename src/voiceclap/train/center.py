"""Centering a trained model's audio embeddings: part of the text prior taken out of its scores.

A CLAP's audio embeddings share one direction: every clip's vector leans toward the mean of them all
(the shipped model's normalized clip embeddings average to a vector of norm 0.29). A text's score then
carries that text's component along the mean whatever the audio is: a prior over texts, which the
text-prior control measures (scores that still rank corrupted transcripts when the audio is another
clip's). Subtracting ``t`` x the mean head output of training clips from the audio head's last bias
takes a fraction ``t`` of that direction out of every clip; the model stays what it was (one
L2-normalized vector per clip, score = cosine), every other weight untouched.

    python -m voiceclap.train.center src/voiceclap/pretrained/voiceclap-base-e5s --t 0.5 \\
        --data data/corpus/recorded/train --data data/corpus/voices/train \\
        --data data/corpus/synthetic/train --out runs/centered/model

The output holds the trained tensors only and no calibration: fit one on its scores
(``voiceclap eval --fit-calibration``).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from voiceclap.clips import decode_clip, hash_order, read_clips
from voiceclap.model import VoiceCLAP
from voiceclap.runtime import quiet_transformers

READ_PER_SOURCE = 5000  # clips read from each source's start, of which a seeded sample is embedded
BATCH = 16


def mean_audio_output(model: VoiceCLAP, waveforms: Sequence[np.ndarray], progress: bool = True) -> torch.Tensor:
    """The audio head's mean output (before normalization) over ``waveforms``."""
    total = torch.zeros(model.config.joint_dim)
    waveforms = sorted(waveforms, key=len)  # batches of like lengths: little padding to compute
    with torch.inference_mode():
        for start in tqdm(range(0, len(waveforms), BATCH), desc="embed clips", disable=not progress):
            batch = model.prepare_audio(waveforms[start : start + BATCH])
            total += model.embed_audio_batch(batch, normalize=False).float().sum(0).cpu()
    return total / len(waveforms)


def center_audio(model: VoiceCLAP, mean_output: torch.Tensor, t: float) -> VoiceCLAP:
    """``model`` with ``t`` x ``mean_output`` subtracted from its audio head's last bias (in place)."""
    last = [m for m in model.audio.head.modules() if isinstance(m, nn.Linear)][-1]
    if last.bias is None:
        raise ValueError("the audio head's last layer has no bias to center with")
    with torch.no_grad():
        last.bias -= t * mean_output.to(last.bias)
    model.calibration = None  # it maps the uncentered scores
    return model


def sample_waveforms(sources: Sequence[str], per_source: int) -> list[np.ndarray]:
    """A seeded sample of ``per_source`` decoded clips from the start of each source."""
    waveforms = []
    for source in sources:
        clips = [c for c in itertools.islice(read_clips(source), READ_PER_SOURCE) if c.error is None]
        if not clips:
            raise ValueError(f"{source}: no clips")
        waveforms += [decode_clip(c).audio for c in hash_order(clips)[:per_source]]
    return waveforms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="trained model directory")
    parser.add_argument("--t", type=float, required=True, help="fraction of the mean direction to remove, 0..1")
    parser.add_argument("--data", action="append", required=True,
                        help="training clips (shards or a manifest), repeatable: a sample of each is embedded")
    parser.add_argument("--clips-per-source", type=int, default=400, help="clips embedded per --data (default: %(default)s)")
    parser.add_argument("--out", required=True, help="output model directory")
    args = parser.parse_args(argv)
    if not 0.0 <= args.t <= 1.0:
        parser.error("--t must be within 0..1")
    quiet_transformers()
    model = VoiceCLAP.from_pretrained(args.model)
    mean_output = mean_audio_output(model, sample_waveforms(args.data, args.clips_per_source))
    center_audio(model, mean_output, args.t).save_pretrained(Path(args.out), weights="trained")
    print(f"centered model (t = {args.t:g}, mean output norm {mean_output.norm():.3f}) in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
