"""What the evaluation asks of a model: score matrices and pair scores over clips and texts.

Evaluation code talks to a :class:`Scorer`, never to the model directly, so a test can plug in a
scorer with known answers (e.g. score = -WER) and check the metric plumbing exactly.
:class:`ModelScorer` is the real one: it embeds each clip and each distinct text once (batched,
length-sorted so a batch pads little), caches the embeddings, and scores by dot product.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from voiceclap.model import VoiceCLAP

from .data import EvalClip

__all__ = ["ModelScorer", "Scorer"]


class Scorer(Protocol):
    def score_matrix(self, clips: Sequence[EvalClip], texts: Sequence[str]) -> np.ndarray:
        """[len(clips), len(texts)]: every clip against every text."""

    def score_pairs(self, clips: Sequence[EvalClip], texts: Sequence[str]) -> np.ndarray:
        """[n]: clips[i] against texts[i]."""


class ModelScorer:
    """Cosine scores from a VoiceCLAP model, embedding every clip and distinct text once.

    ``seconds`` accumulates the time spent embedding (decoding is done before and not counted),
    ``truncated_audio`` / ``truncated_texts`` count inputs the model only saw the start of.
    """

    def __init__(self, model: VoiceCLAP, audio_batch_size: int = 16, text_batch_size: int = 64, progress: bool = True):
        self.model = model
        self.audio_batch_size = audio_batch_size
        self.text_batch_size = text_batch_size
        self.progress = progress
        self.seconds = 0.0
        self.truncated_audio = 0
        self.truncated_texts = 0
        self._audio: dict[EvalClip, np.ndarray] = {}
        self._text: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def _embed(self, todo, cache: dict, batch_size: int, desc: str, unit: str, prepare, embed) -> int:
        """Embed ``todo`` (sorted by length) in batches of ``prepare(chunk)`` -> ``embed(batch)`` into
        ``cache``; returns how many inputs the model saw only the start of."""
        start, truncated = time.perf_counter(), 0
        bar = tqdm(total=len(todo), desc=desc, unit=unit, disable=not self.progress)
        for i in range(0, len(todo), batch_size):
            chunk = todo[i : i + batch_size]
            batch = prepare(chunk)
            cache.update(zip(chunk, embed(batch).float().cpu().numpy()))
            truncated += sum(batch.truncated)
            bar.update(len(chunk))
        bar.close()
        self.seconds += time.perf_counter() - start
        return truncated

    def _embed_audio(self, clips: Sequence[EvalClip]) -> None:
        todo = sorted({c for c in clips if c not in self._audio}, key=lambda c: len(c.audio))
        self.truncated_audio += self._embed(
            todo, self._audio, self.audio_batch_size, "embed audio", "clip",
            lambda chunk: self.model.prepare_audio([c.audio for c in chunk]), self.model.embed_audio_batch,
        )

    def _embed_texts(self, texts: Sequence[str]) -> None:
        todo = sorted({t for t in texts if t not in self._text}, key=len)
        self.truncated_texts += self._embed(
            todo, self._text, self.text_batch_size, "embed text", "text", self.model.tokenize, self.model.embed_text_batch
        )

    def _embeddings(self, clips: Sequence[EvalClip], texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        self._embed_audio(clips)
        self._embed_texts(texts)
        return np.stack([self._audio[c] for c in clips]), np.stack([self._text[t] for t in texts])

    def score_matrix(self, clips: Sequence[EvalClip], texts: Sequence[str]) -> np.ndarray:
        if not len(clips) or not len(texts):
            return np.zeros((len(clips), len(texts)))
        audio, text = self._embeddings(clips, texts)
        return (audio @ text.T).astype(np.float64)

    def score_pairs(self, clips: Sequence[EvalClip], texts: Sequence[str]) -> np.ndarray:
        if len(clips) != len(texts):
            raise ValueError(f"{len(clips)} clips but {len(texts)} texts")
        if not len(clips):
            return np.zeros(0)
        audio, text = self._embeddings(clips, texts)
        return (audio * text).sum(-1).astype(np.float64)
