"""Training configuration: nested dataclasses read from YAML (yaml.safe_load only) plus
``section.key=value`` overrides from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelOptions:
    config: str = "tiny-test"  # a named model config (voiceclap/model_configs) or a JSON path
    load_base_weights: bool = True  # False: random encoders (tests)
    init_from: str | None = None  # a VoiceCLAP model directory to continue training from
    # Layers below these indices are frozen; negative values count from the top (-1: only the top
    # layer trains) and the encoder's layer count freezes it whole. The audio conv front end trains
    # only when every audio layer does (0); the text embeddings only with train_text_embeddings.
    audio_trainable_from_layer: int = 0
    text_trainable_from_layer: int = 0
    train_text_embeddings: bool = False
    gradient_checkpointing: bool = False


@dataclass
class DataOptions:
    # WebDataset shards (paths, globs, brace patterns, URLs, "pipe:" commands) or .jsonl manifests;
    # a string or a list of them.
    train: str | list[str] = ""
    eval: str | list[str] | None = None  # None: the held-out hash split of `train`
    # The seed's split: clips whose sha1(id) mod 1000 falls below this are held out of training.
    heldout_permille: int = 0
    batch_size: int = 32  # clips per rank per micro-step
    stored_candidates: int = 0  # slots for the candidates stored with a clip (fluent variants, spoken pairs)
    num_negatives: int = 5  # K corrupted transcripts per clip
    num_workers: int = 2  # decoding workers of the streaming (uncached) path
    shuffle_buffer: int = 2000
    bucket_buffer: int = 512  # clips sorted by duration together before cutting batches
    # Train only on cached clips of these sources (Clip.source: a TTS engine, a recorded corpus); all
    # when empty. The bake-off trains rows with and without recorded speech on one cache this way.
    sources: list[str] = field(default_factory=list)
    exclude_sources: list[str] = field(default_factory=list)
    spoken_negatives: bool = True  # False: leave out the clips of spoken pairs (the corpus's spoken part)
    # Voices left out of training altogether (e.g. MBROLA voices that drop what their database lacks).
    exclude_speakers: list[str] = field(default_factory=list)
    vocabulary_size: int = 20000  # corruption vocabulary per language, from the training texts
    vocabulary_max_clips: int | None = None  # read only this many training texts for it (huge corpora)
    # The held-out evaluation: `voiceclap eval --max-clips N --seed <run.seed>` on the same set gives
    # the same figures (voiceclap.protocol, K = 5 corruptions per clip).
    max_eval_clips: int = 500


@dataclass
class CacheOptions:
    enabled: bool = False  # precompute the frozen parts once (CPU training)
    dir: str | None = None  # default: <out_dir>/feature-cache
    chunk_size: int = 256  # clips per file
    batch_size: int = 16  # clips per frozen forward pass
    dtype: str = "float16"  # on disk: float16 halves the size, float32 is exact
    max_train_clips: int | None = None  # cache (and so train on) only the first clips
    # The frozen audio pass's matrix products: float32, or bfloat16 / auto (voiceclap.model.audio_encoder_dtype:
    # bfloat16 where the CPU has AMX, 1.6-1.9x faster, embeddings at cosine >= 0.999) under autocast.
    audio_precision: str = "float32"
    # Label candidates with Whisper's decoder (voiceclap.teacher) while caching, for distillation: the
    # first `teacher_clips` clips (0: none), scores normalized as `teacher_normalization`.
    teacher_clips: int = 0
    teacher_normalization: str = "mean"


@dataclass
class LossOptions:
    siglip_weight: float = 1.0
    hard_negative_weight: float = 1.0
    margin_weight: float = 1.0
    margin_scale: float = 0.5  # margin(f) = margin_scale * shape(f), f the corruption's WER/CER
    margin_shape: str = "linear"  # linear | sqrt
    cross_clip_margin_weight: float = 0.0  # the margin between clips' candidates too (not in the card)
    cross_clip_other_transcripts: int = 5  # other clips' transcripts per clip in it, at WER 1
    distill_weight: float = 0.0  # KL to the teacher's ranking of each labelled clip's candidates
    distill_temperature: float = 1.0  # teacher score / this -> softmax
    distill_scale: float = 20.0  # student cosine * this -> softmax


@dataclass
class OptimOptions:
    lr: float = 1e-4
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    warmup_steps: int = 100
    max_steps: int = 1000
    min_lr_ratio: float = 0.0  # the cosine decays to lr * min_lr_ratio
    grad_accum_steps: int = 1
    grad_clip: float = 1.0  # max gradient norm; 0 disables


@dataclass
class RunOptions:
    out_dir: str = "runs/train"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    threads: int | None = None  # torch CPU threads; None keeps torch's default
    log_every: int = 10
    eval_every: int = 200  # 0: only before and after training
    save_every: int = 200  # 0: only at the end
    # trained | all | auto: "trained" (projections only, base encoders by checksum) when the encoders
    # came from their sources and stayed frozen, else "all"
    export_weights: str = "auto"
    dist_timeout_minutes: int = 120  # covers rank 0 building the feature cache while others wait
    progress: bool = True


@dataclass
class TrainConfig:
    model: ModelOptions = field(default_factory=ModelOptions)
    data: DataOptions = field(default_factory=DataOptions)
    cache: CacheOptions = field(default_factory=CacheOptions)
    loss: LossOptions = field(default_factory=LossOptions)
    optim: OptimOptions = field(default_factory=OptimOptions)
    run: RunOptions = field(default_factory=RunOptions)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        sections = {f.name: f.type for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise ValueError(f"unknown config sections: {', '.join(unknown)}")
        config = cls()
        for name, values in data.items():
            section = getattr(config, name)
            for key, value in (values or {}).items():
                _set_option(section, name, key, value)
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _set_option(section: Any, section_name: str, key: str, value: Any) -> None:
    types = {f.name: f.type for f in dataclasses.fields(section)}  # annotations as strings
    if key not in types:
        raise ValueError(f"unknown config key {section_name}.{key}")
    if value is None and "None" not in types[key]:
        raise ValueError(f"{section_name}.{key} may not be null")
    # YAML 1.1 (PyYAML) reads "1e-4" as a string and "1" as an int: float options take both.
    if types[key].startswith("float") and isinstance(value, (int, str)) and not isinstance(value, bool):
        value = float(value)
    setattr(section, key, value)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A YAML recipe (or the defaults when path is None) with ``section.key=value`` overrides applied;
    values are parsed as YAML, so ``optim.lr=3e-4`` is a float and ``data.eval=null`` is None."""
    data: dict[str, Any] = {}
    if path is not None:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    config = TrainConfig.from_dict(data)
    for override in overrides:
        dotted, sep, raw = override.partition("=")
        section_name, dot, key = dotted.partition(".")
        if not sep or not dot or not hasattr(config, section_name):
            raise ValueError(f"override {override!r} is not section.key=value")
        _set_option(getattr(config, section_name), section_name, key, yaml.safe_load(raw))
    return config
