"""What every TTS engine shares: the voice record, the error, the engine interface, and the
helpers for engines driven by a subprocess.

An engine implements ``available()``, ``voices(language)`` and ``raw(text, voice, rate, pitch)``;
:meth:`Engine.synthesize` adds the common output contract (audible speech, peak-normalised, then
scaled by ``volume``).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import soundfile as sf

__all__ = ["Engine", "FileOutputEngine", "InProcessEngine", "SynthesisError", "Voice", "read_wav", "run_command"]

_TIMEOUT_S = 60


class SynthesisError(RuntimeError):
    """The engine failed or produced no audio for this text."""


@dataclass(frozen=True, order=True)
class Voice:
    engine: str
    name: str  # the engine's own voice argument
    language: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"

    @classmethod
    def from_id(cls, voice_id: str, language: str) -> Voice:
        engine, name = voice_id.split(":", 1)
        return cls(engine, name, language)


def run_command(command: list[str], stdin: str | bytes | None = None) -> bytes:
    """Run an engine binary (text given as ``str`` is sent as UTF-8); its stdout, or
    :class:`SynthesisError` on failure or timeout."""
    try:
        done = subprocess.run(
            command,
            input=stdin.encode("utf-8") if isinstance(stdin, str) else stdin,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SynthesisError(f"{command[0]}: {error}") from error
    if done.returncode != 0:
        raise SynthesisError(f"{command[0]} exited {done.returncode}: {done.stderr.decode(errors='replace')[:300]}")
    return done.stdout


def read_wav(data: bytes | Path) -> tuple[np.ndarray, int]:
    """(float32 mono waveform, sample rate) of a WAV given as bytes or a path."""
    try:
        audio, sr = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise SynthesisError(f"unreadable engine output: {error}") from error
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio, sr


class Engine:
    name = ""
    binary = ""
    # language -> engine voice names (before probing which are installed)
    catalogue: ClassVar[dict[str, tuple[str, ...]]] = {}

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def voices(self, language: str) -> list[Voice]:
        return [Voice(self.name, name, language) for name in self.catalogue.get(language, ())]

    def raw(self, text: str, voice: Voice, rate: float, pitch: float) -> tuple[np.ndarray, int]:
        raise NotImplementedError

    def synthesize(
        self,
        text: str,
        voice: Voice,
        rate: float = 1.0,
        pitch: float = 1.0,
        volume: float = 1.0,
    ) -> tuple[np.ndarray, int]:
        audio, sr = self.raw(text, voice, rate, pitch)
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if audio.size < sr // 5 or peak < 1e-4:
            raise SynthesisError(f"{voice.id} produced no audible speech for {text!r}")
        return (audio * (volume * 0.95 / peak)).astype(np.float32), sr


class FileOutputEngine(Engine):
    """Engines that only write to a named .wav file: one scratch directory per process.

    Keyed by process id because build workers are forked from a parent that has already used the
    engine (voice discovery): an inherited directory would be shared, and two workers writing the
    same file would swap each other's audio.
    """

    def __init__(self) -> None:
        self._scratch: dict[int, tempfile.TemporaryDirectory] = {}

    def _wav_path(self) -> Path:
        """The process's output file, removed: some engines exit 0 without writing one (festival
        with a voice it lacks), and the previous clip's audio must not be read back instead."""
        pid = os.getpid()
        if pid not in self._scratch:
            self._scratch[pid] = tempfile.TemporaryDirectory(prefix=f"voiceclap-{self.name}-")
        path = Path(self._scratch[pid].name) / "out.wav"
        path.unlink(missing_ok=True)
        return path


class InProcessEngine(Engine):
    """Engines that run an ONNX model inside this process: one loaded model per voice and process.

    Keyed by process id for the same reason as :class:`FileOutputEngine`'s scratch directory: build
    workers are forked after voice discovery loaded the models, and an onnxruntime session is not
    meant to be shared across a fork.
    """

    # One thread per session: the builder parallelises with processes, one per core.
    ONNX_THREADS = 1

    def __init__(self) -> None:
        self._models: dict[tuple[int, str], object] = {}

    def _model(self, voice_name: str):
        key = (os.getpid(), voice_name)
        if key not in self._models:
            self._models[key] = self._load(voice_name)
        return self._models[key]

    def _load(self, voice_name: str):
        raise NotImplementedError
