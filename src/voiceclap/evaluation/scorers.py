"""The scorers ``voiceclap eval`` compares, each a :class:`voiceclap.protocol.Scorer`:

- ``clap``: a VoiceCLAP model's cosine (:class:`ClapScorer`);
- ``asr``: the ASR-WER pipeline VoiceCLAP replaces, as a score: minus the WER of the text against the
  clip's transcription (:class:`AsrScorer`), so that for every scorer higher means a better match;
- ``teacher``: Whisper's decoder asked for the likelihood of the text (``voiceclap.teacher``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from voiceclap.clips import Clip
from voiceclap.metrics import error_rate
from voiceclap.model import VoiceCLAP
from voiceclap.protocol import EmbeddingScorer

from .asr_baseline import Transcriber, TranscriptCache, transcribe


class ClapScorer(EmbeddingScorer):
    """A VoiceCLAP model's cosine: clips embedded in length-sorted batches of ``batch_size``, texts in
    batches of 64. ``truncated`` counts the clips and texts the model saw only the start of."""

    def __init__(self, model: VoiceCLAP, batch_size: int = 16, progress: bool = True):
        super().__init__(self._embed_clips, self._embed_texts, name="clap")
        self.model = model
        self.batch_size = batch_size
        self.progress = progress
        self.truncated = {"clips": 0, "texts": 0}

    @torch.inference_mode()
    def _embed(self, items: list, size: int, prepare, run, what: str) -> np.ndarray:
        order = sorted(range(len(items)), key=lambda i: len(items[i]))
        out = np.zeros((len(items), self.model.config.joint_dim), dtype=np.float32)
        bar = tqdm(total=len(items), desc=f"embed {what}", unit=what[:-1], disable=not self.progress)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            batch = prepare([items[i] for i in rows])
            out[rows] = run(batch).float().cpu().numpy()
            self.truncated[what] += sum(batch.truncated)
            bar.update(len(rows))
        bar.close()
        return out

    def _embed_clips(self, clips: list[Clip]) -> np.ndarray:
        model = self.model
        return self._embed([c.audio for c in clips], self.batch_size, model.prepare_audio, model.embed_audio_batch, "clips")

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        return self._embed(texts, 64, self.model.tokenize, self.model.embed_text_batch, "texts")


class AsrScorer:
    """Score = -WER of the text against the clip's transcription (each clip transcribed once, through
    the transcript cache). ``seconds`` is the transcription time as measured when each clip was
    transcribed (from the cache for cached clips) plus the WER computations."""

    name = "asr"

    def __init__(self, transcriber: Transcriber, cache: TranscriptCache | None = None, progress: bool = True):
        self.transcriber = transcriber
        self.cache = cache
        self.progress = progress
        self.seconds = 0.0
        self.n_cached = 0
        self.hypotheses: dict[Clip, str] = {}

    def _transcripts(self, clips: Sequence[Clip]) -> list[str]:
        todo = list({c: None for c in clips if c not in self.hypotheses})
        for clip, (text, seconds, cached) in zip(
            todo, transcribe(todo, self.transcriber, self.cache, self.progress)
        ):
            self.hypotheses[clip] = text
            self.seconds += seconds
            self.n_cached += cached
        return [self.hypotheses[c] for c in clips]

    def score_pairs(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        hypotheses = self._transcripts(clips)
        start = time.perf_counter()
        scores = np.array([-error_rate(t, h, c.language) for c, t, h in zip(clips, texts, hypotheses)])
        self.seconds += time.perf_counter() - start
        return scores

    def score_matrix(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        hypotheses = self._transcripts(clips)
        start = time.perf_counter()
        # Texts of another language than the clip's are scored in the clip's (its units, its normalizer).
        scores = np.array([[-error_rate(t, h, c.language) for t in texts] for c, h in zip(clips, hypotheses)])
        self.seconds += time.perf_counter() - start
        return scores
