"""Resumable training checkpoints (atomic) and the final model export.

A checkpoint holds what continuing needs and nothing the model directory already has: the trained
parameters (the frozen rest comes from the same sources again), optimizer and scheduler state, the
step, and per rank its RNG states and data position. It is a plain tensor/number/string pickle,
loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from voiceclap.model import VoiceCLAP


def rng_state() -> dict:
    numpy_state = np.random.get_state()
    return {
        "python": random.getstate(),
        # the MT19937 key as a list: weights_only loading accepts no numpy arrays
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, key, *rest = state["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def trained_state(model: VoiceCLAP, prefixes: list[str]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k.startswith(tuple(prefixes))}


def save_checkpoint(path: Path, state: dict) -> None:
    """Write to a temporary file and rename it over ``path``: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def restore_model(model: VoiceCLAP, weights: dict[str, torch.Tensor]) -> None:
    unknown = set(weights) - set(model.state_dict())
    if unknown:
        raise ValueError(f"checkpoint holds parameters the model lacks: {sorted(unknown)[:5]}")
    model.load_state_dict(weights, strict=False)


def export_model(model: VoiceCLAP, directory: Path, prefixes: list[str], weights: str) -> None:
    """The final model as a plain directory for ``VoiceCLAP.from_pretrained`` (no optimizer).
    ``weights="trained"`` stores only the trained parameters plus checksums of the base encoders."""
    model.config = replace(model.config, trained_parameters=list(prefixes))
    model.save_pretrained(directory, weights=weights)
