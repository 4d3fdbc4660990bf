"""Centering a model's audio embeddings (voiceclap.train.center)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import random_model, write_manifest

from voiceclap.calibration import Calibration
from voiceclap.model import VoiceCLAP
from voiceclap.train.center import center_audio, mean_audio_output, sample_waveforms

ATTENTION_HEAD = {"type": "attention", "dim": 16, "layers": 0, "heads": 2, "queries": 2}


@pytest.fixture
def clips(speech_like_clips, tmp_path):
    rows = [{"audio": str(path), "text": "x"} for path in speech_like_clips.values()]
    return sample_waveforms([str(write_manifest(tmp_path / "m.tsv", rows))], per_source=5)


@pytest.mark.parametrize("head", ["mean", "attention"])
def test_centered_outputs_average_to_a_fraction_of_the_old_mean(clips, head):
    model = random_model()
    if head == "attention":
        model = VoiceCLAP.from_config(dataclasses.replace(model.config, audio_head=ATTENTION_HEAD), load_base_weights=False).eval()
    model.calibration = Calibration().fit([-1.0, 1.0], [1.0, 0.0])
    mean = mean_audio_output(model, clips, progress=False)
    text_before = model.encode_text(["a transcript"])
    center_audio(model, mean, 0.75)
    torch.testing.assert_close(mean_audio_output(model, clips, progress=False), 0.25 * mean, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model.encode_text(["a transcript"]), text_before)  # the text tower is untouched
    assert model.calibration is None  # it mapped the uncentered scores


def test_sample_takes_the_same_clips_whatever_the_read_order(speech_like_clips, tmp_path):
    rows = [{"id": name, "audio": str(path), "text": "x"} for name, path in speech_like_clips.items()]
    forward = sample_waveforms([str(write_manifest(tmp_path / "a.tsv", rows))], per_source=3)
    backward = sample_waveforms([str(write_manifest(tmp_path / "b.tsv", rows[::-1]))], per_source=3)
    assert sorted(len(w) for w in forward) == sorted(len(w) for w in backward) and len(forward) == 3
