"""Weight interpolation between two trained models (voiceclap.train.interpolate)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import random_model

from voiceclap.train.interpolate import interpolate

TRAINED = ["audio.head.", "text.head.", "logit_scale"]


def _trained(seed: int):
    model = random_model()
    model.config = dataclasses.replace(model.config, trained_parameters=TRAINED)
    with torch.no_grad():
        torch.manual_seed(seed)
        for name, tensor in model.state_dict().items():
            if name.startswith(tuple(TRAINED)):
                tensor.copy_(torch.randn_like(tensor))
    return model


@pytest.mark.parametrize("t", [0.0, 0.25, 1.0])
def test_trained_tensors_move_along_the_line_and_frozen_ones_stay(t):
    start, tuned = _trained(1), _trained(2)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    mixed = interpolate(start, tuned, t).state_dict()
    tuned_state = tuned.state_dict()
    for name, tensor in mixed.items():
        expected = before[name] + t * (tuned_state[name] - before[name]) if name.startswith(tuple(TRAINED)) else before[name]
        torch.testing.assert_close(tensor, expected)
    assert any(not torch.equal(mixed[n], before[n]) for n in mixed) == (t > 0)


def test_models_that_train_different_parts_are_refused():
    other = _trained(2)
    other.config = dataclasses.replace(other.config, trained_parameters=["audio.head."])
    with pytest.raises(ValueError, match="different parameters"):
        interpolate(_trained(1), other, 0.5)
