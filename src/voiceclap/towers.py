"""The two towers, each assembled in one place from its parts: encoder front end, encoder layers, head.

Every way of running a tower goes through the same two methods, cut at a layer index ``c``:

- ``front(batch, c)``: the input stage and layers ``[0, c)``; with ``c`` = all layers also the
  encoder's finish (audio: average-pool by 2 and ``ln_post``). What it returns is a
  :class:`Features`, the tower's states at the cut.
- ``back(features, c)``: layers ``[c, n)``, the finish when not done yet, and the head.

The full model is ``back(front(batch))`` (cut at the top); a partly frozen tower runs ``front``
without gradients and trains ``back``; a feature cache stores ``front``'s output and training runs
``back`` on it. Padding never changes a clip's result: padded frames and tokens are masked as
attention keys and in every mean.

The audio encoder's matrix products may run in bfloat16 (:meth:`AudioTower.set_encoder_dtype`), a
choice made when a model is loaded for inference (:func:`voiceclap.model.load_model`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import audio as A

if TYPE_CHECKING:  # transformers is imported where a tower is built, not where its batches are
    from transformers.models.whisper.modeling_whisper import WhisperEncoder


@dataclass
class AudioBatch:
    mel: torch.Tensor  # [B, n_mels, T] log-mel, zero-padded
    mel_lengths: torch.Tensor  # [B] real mel frames per clip
    truncated: list[bool]  # clip longer than max_audio_seconds, scored on its start

    def to(self, device: torch.device) -> AudioBatch:
        return AudioBatch(self.mel.to(device), self.mel_lengths.to(device), self.truncated)

    @classmethod
    def from_waveforms(cls, waveforms: Sequence[np.ndarray], n_mels: int, max_seconds: float, pooling: str) -> AudioBatch:
        """16 kHz mono waveforms -> a padded log-mel batch in the layout the pooling mode needs."""
        max_samples = int(max_seconds * A.SAMPLE_RATE)
        truncated = [len(w) > max_samples for w in waveforms]
        if pooling == "seed":
            mels = [A.log_mel_spectrogram(A.pad_or_trim(np.asarray(w), A.N_SAMPLES), n_mels) for w in waveforms]
            return cls(torch.stack(mels), torch.full((len(mels),), A.N_FRAMES), truncated)
        mels = []
        for w in waveforms:
            w = np.asarray(w)[:max_samples]
            w = A.pad_or_trim(w, -(-len(w) // A.SAMPLES_PER_POOLED_FRAME) * A.SAMPLES_PER_POOLED_FRAME)
            mels.append(A.log_mel_spectrogram(w, n_mels))
        lengths = torch.tensor([m.shape[-1] for m in mels])
        batch = torch.zeros(len(mels), n_mels, int(lengths.max()))
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[-1]] = m
        return cls(batch, lengths, truncated)


@dataclass
class TextBatch:
    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    truncated: list[bool]  # transcript longer than text_max_length tokens, scored on its start
    # The ids' rows of the encoder's word-embedding table, where the caller looked them up itself
    # (the traced model reads them from a memory-mapped table: voiceclap.traced).
    word_vectors: torch.Tensor | None = None  # [B, L, d]

    def to(self, device: torch.device) -> TextBatch:
        vectors = None if self.word_vectors is None else self.word_vectors.to(device)
        return TextBatch(self.input_ids.to(device), self.attention_mask.to(device), self.truncated, vectors)


@dataclass
class Features:
    """A tower's states at a cut between its layers: ``values`` [B, T, d] with ``mask`` [B, T] (bool,
    the real frames or tokens)."""

    values: torch.Tensor
    mask: torch.Tensor

    def to(self, device: torch.device) -> Features:
        return Features(self.values.to(device), self.mask.to(device))

    @classmethod
    def from_rows(cls, rows: list[torch.Tensor]) -> Features:
        """Per-item states [T_i, d] -> one zero-padded batch with its mask."""
        lengths = torch.tensor([r.shape[0] for r in rows], device=rows[0].device)
        values = rows[0].new_zeros(len(rows), int(lengths.max()), rows[0].shape[-1])
        for i, row in enumerate(rows):
            values[i, : row.shape[0]] = row
        return cls(values, torch.arange(values.shape[1], device=values.device)[None, :] < lengths[:, None])


def encoder_autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Autocast to ``dtype`` for the encoder's matrix products (layer norms and the residual stream stay
    float32). In float32 no context at all: a disabled one would switch off a caller's own autocast (a
    GPU run in bf16 wraps the whole model in one)."""
    return contextlib.nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


class AudioTower(nn.Module):
    """Whisper encoder (conv stem, layers, then average-pool by 2 and ln_post) -> head.

    ``pooling`` "masked" runs each clip at its own length (padding masked); "seed" expects every clip
    padded to 30 s and, as the seed's checkpoint does, lets the padding frames count."""

    def __init__(self, encoder: WhisperEncoder, head: nn.Module, pooling: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.pooling = pooling
        self.encoder_dtype = torch.float32

    def set_encoder_dtype(self, dtype: torch.dtype) -> None:
        """Run the encoder's convolutions and linear layers in ``dtype`` (their weights are stored in it,
        rounded once), under autocast; layer norms, the residual stream, the finish and the head stay
        float32. One way only: float32 weights cannot be had back from rounded ones."""
        if dtype == self.encoder_dtype:
            return
        if self.encoder_dtype != torch.float32:
            raise ValueError(f"the audio encoder already runs in {self.encoder_dtype}: load the model again")
        for module in self.encoder.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                module.to(dtype)
        self.encoder_dtype = dtype

    def _encoder_precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        return encoder_autocast(device, self.encoder_dtype)

    @property
    def n_layers(self) -> int:
        return len(self.encoder.layers)

    @property
    def n_mels(self) -> int:
        return self.encoder.config.num_mel_bins

    def _stem(self, batch: AudioBatch) -> Features:
        mel, lengths = batch.mel, batch.mel_lengths
        n_frames = mel.shape[-1] // 2
        frame_mask = torch.arange(n_frames, device=mel.device)[None, :] < (lengths[:, None] // 2)
        x = F.gelu(self.encoder.conv1(mel))
        if self.pooling == "masked":
            # Zero the padding so conv2 sees at a clip's end what its own zero padding gives when the
            # clip is alone: a clip's embedding then does not depend on what it was batched with.
            mel_mask = torch.arange(mel.shape[-1], device=mel.device)[None, :] < lengths[:, None]
            x = x * mel_mask[:, None, :].to(x.dtype)
        x = F.gelu(self.encoder.conv2(x)).permute(0, 2, 1)
        return Features(x + self.encoder.embed_positions.weight[:n_frames], frame_mask)

    def _layers(self, features: Features, start: int, stop: int) -> Features:
        hidden, mask = features.values, features.mask
        attention_mask = None
        if self.pooling == "masked" and start < stop:
            attention_mask = torch.zeros(mask.shape, dtype=hidden.dtype, device=hidden.device)
            attention_mask = attention_mask.masked_fill(~mask, torch.finfo(hidden.dtype).min)[:, None, None, :]
        for layer in self.encoder.layers[start:stop]:
            hidden = layer(hidden, attention_mask)
        return Features(hidden, mask)

    def finish(self, features: Features) -> Features:
        """Average-pool by 2 (50 -> 25 frames per second) and ln_post, the seed's end of the encoder."""
        pooled = F.avg_pool1d(features.values.transpose(1, 2), kernel_size=2, stride=2).transpose(1, 2)
        return Features(self.encoder.layer_norm(pooled), features.mask[:, ::2])

    def encoder_states(self, batch: AudioBatch, stop: int | None = None) -> Features:
        """The encoder's states after layer ``stop`` (default: all), 50 frames per second, unfinished:
        with ``encoder.layer_norm`` applied, what Whisper's decoder attends to."""
        with self._encoder_precision(batch.mel.device):
            return self._layers(self._stem(batch), 0, self.n_layers if stop is None else stop)

    def front(self, batch: AudioBatch, stop: int | None = None) -> Features:
        """States after layer ``stop`` (default: all layers, finished: 25 frames per second)."""
        stop = self.n_layers if stop is None else stop
        features = self.encoder_states(batch, stop)
        return self.finish(features) if stop == self.n_layers else features

    def back(self, features: Features, start: int | None = None) -> torch.Tensor:
        """The rest of the tower from states after layer ``start`` -> un-normalized [B, joint_dim]."""
        start = self.n_layers if start is None else start
        if start < self.n_layers:
            with self._encoder_precision(features.values.device):
                features = self._layers(features, start, self.n_layers)
            features = self.finish(features)
        return self.head(features.values, features.mask)

    def forward(self, batch: AudioBatch) -> torch.Tensor:
        return self.back(self.front(batch))


class TextTower(nn.Module):
    """Sentence encoder (embeddings, BERT-family layers) -> head.

    ``mask_mode`` "attention" uses the tokenizer's attention mask; "pad_token_id" counts the tokens
    whose id differs from the encoder config's pad_token_id, for attention and pooling alike (the
    seed's stack does this, also where that id is not the tokenizer's padding)."""

    def __init__(self, encoder: nn.Module, head: nn.Module, mask_mode: str):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.mask_mode = mask_mode

    @property
    def layers(self) -> nn.ModuleList:
        return self.encoder.encoder.layer  # BERT-family encoders: every text tower we configure

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    def token_mask(self, batch: TextBatch) -> torch.Tensor:
        if self.mask_mode == "pad_token_id":
            return batch.input_ids != self.encoder.config.pad_token_id
        return batch.attention_mask.bool()

    def _layers(self, features: Features, start: int, stop: int) -> Features:
        from transformers.masking_utils import create_bidirectional_mask  # loaded with the encoder already

        hidden, mask = features.values, features.mask
        if start < stop:
            attention = create_bidirectional_mask(
                config=self.encoder.config, inputs_embeds=hidden, attention_mask=mask.long()
            )
            for layer in self.layers[start:stop]:
                hidden = layer(hidden, attention)
        return Features(hidden, mask)

    def front(self, batch: TextBatch, stop: int | None = None) -> Features:
        """Token states after layer ``stop`` (default: all layers)."""
        stop = self.n_layers if stop is None else stop
        states = self.encoder.embeddings(input_ids=batch.input_ids, inputs_embeds=batch.word_vectors)
        embedded = Features(states, self.token_mask(batch))
        return self._layers(embedded, 0, stop)

    def back(self, features: Features, start: int | None = None) -> torch.Tensor:
        """The rest of the tower from token states after layer ``start`` -> un-normalized [B, joint_dim]."""
        start = self.n_layers if start is None else start
        features = self._layers(features, start, self.n_layers)
        return self.head(features.values, features.mask)

    def forward(self, batch: TextBatch) -> torch.Tensor:
        return self.back(self.front(batch))
