"""The scorers ``voiceclap eval`` compares, each a :class:`voiceclap.protocol.Scorer`:

- ``clap``: a VoiceCLAP model's cosine (:class:`ClapScorer`);
- ``asr``: the ASR-WER pipeline VoiceCLAP replaces, as a score: minus the WER of the text against the
  clip's transcription (:class:`AsrScorer`), so that for every scorer higher means a better match;
- ``teacher``: Whisper's decoder asked for the likelihood of the text (``voiceclap.teacher``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from voiceclap.calibration import Calibration
from voiceclap.clips import Clip
from voiceclap.config import CALIBRATION_NAME
from voiceclap.metrics import error_rate
from voiceclap.model import VoiceCLAP
from voiceclap.protocol import EmbeddingScorer

from .asr_baseline import Transcriber, TranscriptCache, transcribe

# Batch sizes of the embedding passes; the trainer's held-out evaluation uses the same, so that its
# batches, and so its floating-point results, are voiceclap eval's exactly.
AUDIO_BATCH = 16
TEXT_BATCH = 64


class ClapScorer(EmbeddingScorer):
    """A VoiceCLAP model's cosine: clips embedded in length-sorted batches of ``batch_size``, texts in
    batches of TEXT_BATCH. ``truncated`` counts the clips and texts the model saw only the start of.
    ``model_dir``: where a calibration fitted on its scores is stored with the model (when local)."""

    def __init__(self, model: VoiceCLAP, batch_size: int = AUDIO_BATCH, progress: bool = True,
                 model_dir: Path | None = None):
        super().__init__(self._embed_clips, self._embed_texts, name="clap")
        self.model = model
        self.model_dir = model_dir
        self.batch_size = batch_size
        self.progress = progress
        self.truncated = {"clips": 0, "texts": 0}

    @property
    def calibration(self) -> Calibration | None:
        return self.model.calibration

    def adopt_calibration(self, calibration: Calibration, out_dir: Path) -> list[Path]:
        """Use ``calibration`` from now on; saved in the report and beside the model's weights, where
        :meth:`VoiceCLAP.from_pretrained` loads it. Returns the files written."""
        self.model.calibration = calibration
        paths = [out_dir / CALIBRATION_NAME] + ([self.model_dir / CALIBRATION_NAME] if self.model_dir else [])
        for path in paths:
            calibration.save(path)
        return paths

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
        return self._embed(texts, TEXT_BATCH, self.model.tokenize, self.model.embed_text_batch, "texts")


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


class TeacherScorer:
    """Whisper's decoder (:class:`voiceclap.teacher.WhisperTeacher`): each clip's texts scored together,
    one encoder pass per clip. Its pairs are costly, so it takes no part in the all-pairs retrieval."""

    name = "teacher"
    full_retrieval = False

    def __init__(self, teacher, progress: bool = True):
        self.teacher = teacher
        self.progress = progress
        self.seconds = 0.0

    @classmethod
    def load(cls, device: str = "cpu", progress: bool = True, **options) -> TeacherScorer:
        from voiceclap.teacher import WhisperTeacher

        return cls(WhisperTeacher.from_pretrained(device=device, **options), progress)

    @property
    def calibration(self) -> Calibration | None:
        return self.teacher.calibration

    def adopt_calibration(self, calibration: Calibration, out_dir: Path) -> list[Path]:
        """Use ``calibration`` from now on; saved in the report with the context and normalization its
        scores were made with (``WhisperTeacher.load_calibration`` reads it). Returns the files written."""
        self.teacher.calibration = calibration
        path = out_dir / "teacher_calibration.json"
        self.teacher.save_calibration(path)
        return [path]

    def score_pairs(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        start = time.perf_counter()
        by_clip: dict[Clip, list[int]] = {}
        for i, clip in enumerate(clips):
            by_clip.setdefault(clip, []).append(i)
        groups = list(by_clip.items())
        scores = np.empty(len(texts))
        # The next clip's audio is the reference of the pmi_other normalization.
        references = [c.audio for c, _ in groups[1:]] + [groups[0][0].audio] if groups else []
        for (clip, rows), reference in tqdm(
            list(zip(groups, references)), desc="teacher", unit="clip", disable=not self.progress
        ):
            scores[rows] = self.teacher.score_clip(
                clip.audio, [texts[i] for i in rows], clip.language,
                reference_waveform=reference if len(groups) > 1 else None,
            )
        self.seconds += time.perf_counter() - start
        return scores

    def score_matrix(self, clips: Sequence[Clip], texts: Sequence[str]) -> np.ndarray:
        return self.score_pairs([c for c in clips for _ in texts], list(texts) * len(clips)).reshape(
            len(clips), len(texts)
        )
