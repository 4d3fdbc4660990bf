"""hibari (PyPI ``hibari-tts``): a small neural English voice distilled from Kokoro, 24 kHz."""

from __future__ import annotations

import importlib.util

from .base import InProcessEngine, SynthesisError, Voice

__all__ = ["HibariEngine"]


class HibariEngine(InProcessEngine):
    """hibari, in process; rate through its ``speed``, no pitch control (``pitch`` is ignored).

    Only voices present on disk are listed: "heart" ships in the package, and hibari would fetch
    any other from a model hub on first use, which an offline build cannot reach.
    """

    name = "hibari"
    # hibari's noise is drawn from a numpy generator it takes a seed for: a fixed seed makes a
    # clip's audio a function of its text, voice and rate, like the other engines' output.
    _SEED = 0

    def available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in ("hibari", "onnxruntime"))

    def voices(self, language: str) -> list[Voice]:
        if not self.available():
            return []
        from hibari.voices import VOICES, voice_path

        found = []
        for name, info in VOICES.items():
            if info["language"].split("-", 1)[0] != language:
                continue
            try:
                voice_path(name, download_missing=False)
            except FileNotFoundError:
                continue
            found.append(Voice(self.name, name, language))
        return found

    def _load(self, voice_name: str):
        from hibari import Hibari
        from hibari.voices import voice_path

        # The model path is resolved here, without download, so that hibari never reaches for the network.
        try:
            model = voice_path(voice_name, download_missing=False)
        except (ValueError, FileNotFoundError) as error:
            raise SynthesisError(f"hibari voice {voice_name!r} is not on this machine: {error}") from error
        return Hibari(voice=voice_name, model=model, threads=self.ONNX_THREADS)

    def raw(self, text, voice, rate, pitch):
        from hibari import SAMPLE_RATE

        return self._model(voice.name)(text, speed=rate, seed=self._SEED), SAMPLE_RATE
