"""The VoiceCLAP dual-tower model: Whisper encoder audio tower, sentence-encoder text tower, one joint space."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoConfig, AutoModel, WhisperConfig, WhisperModel
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from . import audio as A
from .config import AUDIO_PRECISIONS, CALIBRATION_NAME, CONFIG_NAME, WEIGHTS_NAME, ModelConfig, get_model_config
from .heads import build_head
from .runtime import limit_onednn_primitive_cache
from .text import clean_text
from .tokenizer import BYTE_LEVEL, load_tokenizer
from .towers import AudioBatch, AudioTower, TextBatch, TextTower

RANDOM_PREFIX = "random:"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class MissingWeightsError(RuntimeError):
    """A checkpoint does not hold what its config says it should."""


def state_dict_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's tensor names and float32 values (what a feature cache was built from)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        # The array's own buffer, not .tobytes(): no transient copy of e5's 384 MB embedding table.
        digest.update(tensor.detach().to(torch.float32).contiguous().cpu().numpy())
    return digest.hexdigest()


def _strict(loaded) -> nn.Module:
    """from_pretrained(..., output_loading_info=True) -> the model, refusing any tensor left at random init."""
    model, info = loaded
    if info["missing_keys"] or info["mismatched_keys"]:
        raise MissingWeightsError(f"pretrained encoder lacks tensors: {sorted(info['missing_keys'])[:5]}")
    return model


def _whisper_encoder(config: ModelConfig, load_base: bool) -> WhisperEncoder:
    if load_base and config.audio_encoder:
        from .weights import resolve_encoder_source

        path = resolve_encoder_source(config.audio_encoder)
        encoder, info = WhisperEncoder.from_pretrained(path, output_loading_info=True)
        if not info["missing_keys"]:
            return encoder
        # A whole Whisper checkpoint (hub ids such as openai/whisper-small): its keys sit under encoder.
        return _strict(WhisperModel.from_pretrained(path, output_loading_info=True)).get_encoder()
    if not config.audio_encoder_config:
        raise ValueError(f"model config {config.name!r} names no audio encoder source and no architecture")
    return WhisperEncoder(WhisperConfig(**config.audio_encoder_config))


def _text_encoder(config: ModelConfig, load_base: bool) -> nn.Module:
    if load_base and config.text_encoder:
        from .weights import resolve_encoder_source

        path = resolve_encoder_source(config.text_encoder)
        encoder = _strict(AutoModel.from_pretrained(path, add_pooling_layer=False, output_loading_info=True))
    elif config.text_encoder_config:
        arch = dict(config.text_encoder_config)
        encoder = AutoModel.from_config(AutoConfig.for_model(arch.pop("model_type"), **arch), add_pooling_layer=False)
    else:
        raise ValueError(f"model config {config.name!r} names no text encoder source and no architecture")
    if config.text_num_layers is not None:
        # Lower layers of a sentence encoder keep the surface form that verbatim matching needs; the
        # upper ones abstract it away (measured: see MODEL_CARD.md), and dropping them halves the cost.
        encoder.encoder.layer = encoder.encoder.layer[: config.text_num_layers]
        encoder.config.num_hidden_layers = config.text_num_layers
    return encoder


def _tokenizer_source(config: ModelConfig) -> str:
    return config.tokenizer or config.text_encoder or BYTE_LEVEL


def _architecture(module_config) -> dict:
    """The transformers config of an encoder as a plain dict that rebuilds the same architecture."""
    arch = module_config.to_diff_dict()
    for key in ("_name_or_path", "architectures", "transformers_version", "torch_dtype", "dtype"):
        arch.pop(key, None)
    return arch


class VoiceCLAP(nn.Module):
    def __init__(self, config: ModelConfig, audio_encoder: WhisperEncoder, text_encoder: nn.Module, tokenizer):
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        audio_head = build_head("audio", config.audio_head, audio_encoder.config.d_model, config.joint_dim)
        text_head = build_head("text", config.text_head, text_encoder.config.hidden_size, config.joint_dim)
        self.audio = AudioTower(audio_encoder, audio_head, config.audio_pooling)
        self.text = TextTower(text_encoder, text_head, config.text_mask)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self.logit_bias = nn.Parameter(torch.tensor(float(config.logit_bias_init)))
        self.calibration = None  # a voiceclap.calibration.Calibration once fitted

    # ----- construction, saving, loading -----

    @classmethod
    def from_config(cls, config: str | ModelConfig, load_base_weights: bool = True) -> VoiceCLAP:
        """A new model: pretrained encoders from their sources (or random), fresh projections."""
        config = get_model_config(config) if isinstance(config, str) else config
        audio_encoder = _whisper_encoder(config, load_base_weights)
        text_encoder = _text_encoder(config, load_base_weights)
        tokenizer = load_tokenizer(_tokenizer_source(config))
        config = replace(
            config,
            audio_encoder_config=_architecture(audio_encoder.config),
            text_encoder_config={"model_type": text_encoder.config.model_type, **_architecture(text_encoder.config)},
        )
        return cls(config, audio_encoder, text_encoder, tokenizer)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike) -> VoiceCLAP:
        """Load a model directory (config.json, model.safetensors, tokenizer files) or a hub id."""
        path = Path(name_or_path)
        if not path.is_dir():
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(str(name_or_path)))
        config = ModelConfig.from_json(path / CONFIG_NAME)
        trained_only = config.trained_parameters is not None and config.base_checksums is not None
        tokenizer_source = str(path) if (path / "tokenizer_config.json").exists() else _tokenizer_source(config)
        model = cls(
            config,
            _whisper_encoder(config, load_base=trained_only),
            _text_encoder(config, load_base=trained_only),
            load_tokenizer(tokenizer_source),
        )
        if trained_only:
            model._check_base_checksums()
        model._load_weights(load_file(path / WEIGHTS_NAME), partial=trained_only)
        if (path / CALIBRATION_NAME).exists():
            from .calibration import Calibration

            model.calibration = Calibration.load(path / CALIBRATION_NAME)
        return model.eval()

    def _base_fingerprints(self) -> dict[str, str]:
        """Checksums of the weight files each encoder's source provides."""
        from .weights import weight_files_checksum

        sources = {"audio": self.config.audio_encoder, "text": self.config.text_encoder}
        missing = [tower for tower, source in sources.items() if not source]
        if missing:
            raise ValueError(f"the {' and '.join(missing)} encoder comes from no source: save with weights='all'")
        return {tower: weight_files_checksum(source) for tower, source in sources.items()}

    def _check_base_checksums(self) -> None:
        found = self._base_fingerprints()
        for tower, expected in (self.config.base_checksums or {}).items():
            if found[tower] != expected:
                source = self.config.audio_encoder if tower == "audio" else self.config.text_encoder
                raise MissingWeightsError(
                    f"the {tower} base encoder {source!r} differs from the one this model was trained on "
                    f"(sha256 {found[tower][:12]} != {expected[:12]})"
                )

    def _load_weights(self, weights: dict[str, torch.Tensor], partial: bool) -> None:
        own = self.state_dict()
        unexpected = sorted(set(weights) - set(own))
        if unexpected:
            raise MissingWeightsError(f"checkpoint holds tensors the model lacks: {unexpected[:5]}")
        expected = set(own) if not partial else {k for k in own if k.startswith(tuple(self.config.trained_parameters))}
        missing = sorted(expected - set(weights))
        if missing:
            raise MissingWeightsError(f"checkpoint lacks {len(missing)} tensors, e.g. {missing[:5]}")
        self.load_state_dict(weights, strict=not partial)

    def save_pretrained(self, directory: str | os.PathLike, weights: str = "all") -> None:
        """Write config.json, model.safetensors and the tokenizer files.

        weights="trained" keeps only the tensors under `config.trained_parameters` and records the
        checksums of the base encoders they belong with (the shipped default model does this); the
        tokenizer then comes from the text encoder's source too, like every untrained part.
        """
        if self.audio.encoder_dtype != torch.float32:
            raise ValueError("this model's audio encoder weights are rounded to "
                             f"{self.audio.encoder_dtype}: save from one loaded with audio_precision='float32'")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        config = self.config
        if weights == "trained":
            if not config.trained_parameters:
                raise ValueError("weights='trained' needs config.trained_parameters")
            prefixes = tuple(config.trained_parameters)
            state = {k: v for k, v in state.items() if k.startswith(prefixes)}
            config = replace(config, base_checksums=self._base_fingerprints())
        elif weights == "all":
            config = replace(config, base_checksums=None)
        else:
            raise ValueError(f"weights must be 'all' or 'trained', not {weights!r}")
        save_file(state, str(directory / WEIGHTS_NAME))
        config.to_json(directory / CONFIG_NAME)
        if weights == "all" and config.tokenizer != BYTE_LEVEL:
            self.tokenizer.save_pretrained(directory)
        if self.calibration is not None:
            self.calibration.save(directory / CALIBRATION_NAME)

    # ----- inputs -----

    @property
    def device(self) -> torch.device:
        return self.logit_scale.device

    def prepare_audio(self, waveforms: Sequence[np.ndarray]) -> AudioBatch:
        """16 kHz mono waveforms -> a padded log-mel batch in the layout the pooling mode needs."""
        return AudioBatch.from_waveforms(waveforms, self.audio.n_mels, self.config.max_audio_seconds,
                                         self.config.audio_pooling)

    def tokenize(self, texts: Sequence[str]) -> TextBatch:
        """Clean, prefix and tokenize; transcripts cut at text_max_length are flagged, never silently."""
        texts = [self.config.text_prefix + clean_text(t) for t in texts]
        full_lengths = [len(ids) for ids in self.tokenizer(texts, truncation=False)["input_ids"]]
        encoded = self.tokenizer(
            texts,
            padding="max_length" if self.config.text_pad_to_max_length else "longest",
            truncation=True,
            max_length=self.config.text_max_length,
            return_tensors="pt",
        )
        truncated = [n > self.config.text_max_length for n in full_lengths]
        return TextBatch(encoded["input_ids"], encoded["attention_mask"], truncated)

    # ----- embeddings and scores -----

    def embed_audio_batch(self, batch: AudioBatch, normalize: bool = True) -> torch.Tensor:
        emb = self.audio(batch.to(self.device))
        return F.normalize(emb, dim=-1) if normalize else emb

    def embed_text_batch(self, batch: TextBatch, normalize: bool = True) -> torch.Tensor:
        emb = self.text(batch.to(self.device))
        return F.normalize(emb, dim=-1) if normalize else emb

    @torch.inference_mode()
    def encode_audio(self, waveforms: Sequence[np.ndarray], normalize: bool = True) -> torch.Tensor:
        """16 kHz mono waveforms (see voiceclap.audio.load_audio) -> [B, joint_dim]."""
        return self.embed_audio_batch(self.prepare_audio(waveforms), normalize)

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> torch.Tensor:
        return self.embed_text_batch(self.tokenize(texts), normalize)

    def score_pairs(self, audios: Sequence, texts: Sequence[str]) -> np.ndarray:
        """Cosine of each (audio, text) pair; audio as waveforms at 16 kHz or anything load_audio reads."""
        if len(audios) != len(texts):
            raise ValueError(f"{len(audios)} audios but {len(texts)} texts")
        waveforms = [a if isinstance(a, np.ndarray) else A.load_audio(a) for a in audios]
        a = self.encode_audio(waveforms)
        t = self.encode_text(list(texts))
        return (a * t).sum(-1).float().cpu().numpy()

    def score(self, audio, text: str) -> float:
        """Cosine between one clip (path, bytes or 16 kHz waveform) and one transcript."""
        return float(self.score_pairs([audio], [text])[0])

    def estimate_wer(self, scores: np.ndarray) -> np.ndarray | None:
        """Expected WER for cosine scores, from the calibration stored with the model (None without one)."""
        return None if self.calibration is None else self.calibration.predict(np.asarray(scores))

    def describe(self) -> dict:
        """What `voiceclap info` prints: the architecture and the parameter counts per part."""
        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        return {
            "config": self.config.to_dict(),
            "parameters": {
                "audio_encoder": count(self.audio.encoder),
                "audio_head": count(self.audio.head),
                "text_encoder": count(self.text.encoder),
                "text_head": count(self.text.head),
                "total": count(self),
            },
            "calibrated": self.calibration is not None,
            "audio_precision": str(self.audio.encoder_dtype).removeprefix("torch."),
        }


def audio_encoder_dtype(precision: str, device: str | torch.device | None = None) -> torch.dtype:
    """The dtype an ``audio_precision`` (one of config.AUDIO_PRECISIONS) means on ``device`` (default: CPU).

    "auto" is bfloat16 on a CPU with AMX tiles, float32 anywhere else. With AMX, bfloat16 scored
    1.6-1.9x the clips/s of float32 (whisper-base, 100 held-out clips) with joint embeddings at cosine
    >= 0.9994 to float32's (benchmarks/audio_tower.py); without AMX oneDNN emulates bfloat16, 1.6x
    (AVX512-BF16) to 12x (AVX2) slower than float32 per matrix product. On other devices "auto" leaves
    float32 (not measured there)."""
    if precision not in AUDIO_PRECISIONS:
        raise ValueError(f"audio_precision must be one of {', '.join(AUDIO_PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return getattr(torch, precision)
    on_cpu = torch.device(device or "cpu").type == "cpu"
    # A private probe, guarded: a torch without it is taken to lack AMX.
    has_amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return torch.bfloat16 if on_cpu and has_amx else torch.float32


def load_model(
    spec: str | os.PathLike | None = None, device: str | torch.device | None = None, audio_precision: str = "auto"
) -> VoiceCLAP:
    """A model directory, a Hugging Face hub id, ``random:<config>`` (a named architecture with random,
    seeded heads, for smoke tests: its scores mean nothing), or (None) the default model shipped
    with the package; in eval mode, on ``device`` when given, its audio encoder running in
    ``audio_precision`` (:func:`audio_encoder_dtype`; a model for inference, which cannot be saved
    unless float32)."""
    from .pretrained import default_model_path

    limit_onednn_primitive_cache()
    spec = default_model_path() if spec is None else spec
    if str(spec).startswith(RANDOM_PREFIX):
        config = get_model_config(str(spec).removeprefix(RANDOM_PREFIX))
        # A config that names its encoders by source only (whisper-base-e5small) carries no
        # architecture to build at random: the real encoders give it, around random heads.
        has_architecture = config.audio_encoder_config is not None and config.text_encoder_config is not None
        with torch.random.fork_rng():
            torch.manual_seed(0)  # the same weights in every process: ranks of a sharded run agree
            model = VoiceCLAP.from_config(config, load_base_weights=not has_architecture)
        print(f"voiceclap: warning: {spec} has random weights; its scores mean nothing", file=sys.stderr)
    else:
        path = Path(spec)
        if path.exists() and not (path / CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{spec} is not a VoiceCLAP model directory (it has no {CONFIG_NAME})")
        if not path.exists() and not HUB_ID.match(str(spec)):
            raise FileNotFoundError(f"no model directory {str(spec)!r} (and it is not a hub id like org/name)")
        model = VoiceCLAP.from_pretrained(spec)
    model.audio.set_encoder_dtype(audio_encoder_dtype(audio_precision, device))
    model.eval()
    return model.to(device) if device else model
