"""Weight interpolation between two trained models of one architecture (WiSE-FT's recipe):
``(1 - t) * start + t * tuned`` for every trained tensor, the frozen encoders shared.

Fine-tuning the shipped heads on the mixed corpus gained on recorded speech and lost a little on the
synthetic voices (MODEL_CARD.md, the bake-off); a point on the line between the two models trades
the two without training again.

    python -m voiceclap.train.interpolate src/voiceclap/pretrained/voiceclap-base-e5s \\
        runs/bakeoff/shipped-tuned-gentle/model --t 0.5 --out runs/bakeoff/wise-0.5/model

The output holds the trained tensors only (as the shipped model does) and no calibration: the
interpolated scores need their own (``voiceclap eval --fit-calibration``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from voiceclap.model import VoiceCLAP
from voiceclap.runtime import quiet_transformers


def interpolate(start: VoiceCLAP, tuned: VoiceCLAP, t: float) -> VoiceCLAP:
    """``start`` with every trained tensor moved a fraction ``t`` of the way to ``tuned``'s (in place)."""
    if start.config.trained_parameters != tuned.config.trained_parameters:
        raise ValueError("the two models train different parameters")
    if start.config.base_checksums != tuned.config.base_checksums:
        raise ValueError("the two models sit on different base encoders")
    prefixes = tuple(start.config.trained_parameters)
    tuned_state = tuned.state_dict()
    with torch.no_grad():
        for name, tensor in start.state_dict().items():
            if name.startswith(prefixes):
                tensor.lerp_(tuned_state[name], t)
    start.calibration = None  # it maps the start's scores, not these
    return start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("start", help="model directory at t = 0 (e.g. the shipped model)")
    parser.add_argument("tuned", help="model directory at t = 1 (e.g. the start fine-tuned)")
    parser.add_argument("--t", type=float, required=True, help="where on the line, 0..1")
    parser.add_argument("--out", required=True, help="output model directory")
    args = parser.parse_args(argv)
    if not 0.0 <= args.t <= 1.0:
        parser.error("--t must be within 0..1")
    quiet_transformers()
    model = interpolate(VoiceCLAP.from_pretrained(args.start), VoiceCLAP.from_pretrained(args.tuned), args.t)
    model.save_pretrained(Path(args.out), weights="trained")
    print(f"interpolated model (t = {args.t:g}) in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
