"""The training loop: ``python -m voiceclap.train --config configs/train/NAME.yaml [section.key=value ...]``,
also under ``torchrun --nproc_per_node=N -m voiceclap.train ...`` (see docs/TRAINING.md).

Reads top to bottom: set-up (process group, model, freezing, vocabularies, data), optimizer and
schedule, resume, the step loop (micro-batches, loss, backward, clip, step, log, evaluate,
checkpoint), then the export, the final evaluation and the loss-curve plot.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from voiceclap import protocol
from voiceclap.clips import Clip, expand_sources, read_clips
from voiceclap.evaluation.scorers import AUDIO_BATCH, TEXT_BATCH
from voiceclap.evaluation.sets import load_eval_set
from voiceclap.model import VoiceCLAP, audio_encoder_dtype
from voiceclap.runtime import limit_onednn_primitive_cache
from voiceclap.towers import Features
from voiceclap.train import checkpoint as ckpt
from voiceclap.train import distributed
from voiceclap.train.config import TrainConfig, load_config
from voiceclap.train.data import (
    StreamingBatches,
    build_vocabularies,
    collate,
    heldout_filter,
    is_heldout,
    load_vocabularies,
    save_vocabularies,
    trainable,
)
from voiceclap.train.feature_cache import (
    CachedBatches,
    FeatureCache,
    TeacherLabels,
    build_feature_cache,
    cache_signature,
)
from voiceclap.train.loss import VoiceCLAPLoss
from voiceclap.train.towers import TrainableTowers, apply_freezing, make_plan

LOSS_TERMS = ("loss", "siglip", "hard_negative", "margin", "cross_clip_margin", "distill")


def build_model(config: TrainConfig) -> VoiceCLAP:
    if config.model.init_from:
        return VoiceCLAP.from_pretrained(config.model.init_from)
    return VoiceCLAP.from_config(config.model.config, load_base_weights=config.model.load_base_weights)


def prepare_vocabularies(config: TrainConfig, out_dir: Path, info: distributed.DistInfo) -> dict:
    """Corruption vocabularies from the training transcripts, built once by rank 0 and kept in the
    run directory (a resumed run reuses them, so its corruptions are the same)."""
    path = out_dir / "vocabularies.json"
    if info.is_main and not path.exists():
        clips = read_clips(config.data.train, with_audio=False)
        clips = heldout_filter(clips, config.data.heldout_permille, keep_heldout=False)
        if config.data.vocabulary_max_clips:
            clips = (c for _, c in zip(range(config.data.vocabulary_max_clips), clips))
        save_vocabularies(build_vocabularies(clips, config.data.vocabulary_size), path)
    distributed.barrier()
    return load_vocabularies(path)


def prepare_data(config: TrainConfig, towers: TrainableTowers, vocabularies: dict, out_dir: Path, info):
    """The training batch iterator (with state_dict/load_state_dict): cached frozen features, or
    batches decoded and corrupted on the fly."""
    data, seed = config.data, config.run.seed
    train_sources = expand_sources(data.train)
    if config.cache.enabled:
        if not towers.plan.cacheable:
            raise ValueError(
                "the feature cache needs a frozen audio front end (audio_trainable_from_layer > 0) "
                "and frozen text embeddings"
            )
        root = Path(config.cache.dir or out_dir / "feature-cache")
        digest = hashlib.sha1(json.dumps({k: list(v) for k, v in vocabularies.items()}).encode()).hexdigest()
        teacher = teacher_labels(config, towers) if config.cache.teacher_clips else None
        signature = cache_signature(
            towers, train_sources, digest, data.stored_candidates, data.num_negatives, seed, config.cache.dtype,
            teacher=teacher.signature() if teacher else None,
        )
        audio_dtype = audio_encoder_dtype(config.cache.audio_precision, towers.model.device)
        signature.update(heldout_permille=data.heldout_permille, max_clips=config.cache.max_train_clips,
                         exclude_speakers=data.exclude_speakers, audio_precision=str(audio_dtype))
        if info.is_main:  # the other ranks wait: the clip cache and the text table are built once
            clips = trainable(heldout_filter(read_clips(train_sources), data.heldout_permille, keep_heldout=False),
                              data.exclude_speakers)
            build_feature_cache(
                towers, clips, root / "train", signature=signature, vocabularies=vocabularies,
                stored=data.stored_candidates, num_negatives=data.num_negatives, seed=seed,
                chunk_size=config.cache.chunk_size, batch_size=config.cache.batch_size,
                max_clips=config.cache.max_train_clips, teacher=teacher, audio_dtype=audio_dtype,
                progress=config.run.progress,
            ).attach(towers, progress=config.run.progress)
        distributed.barrier()
        cache = FeatureCache(root / "train").attach(towers, progress=False)
        return CachedBatches(cache, data.batch_size, seed, info.rank, info.world_size, data.bucket_buffer,
                             select=clip_filter(data.sources, data.exclude_sources, data.spoken_negatives))
    return StreamingBatches(
        train_sources, functools.partial(collate, towers.model), vocabularies,
        batch_size=data.batch_size, stored_candidates=data.stored_candidates, num_negatives=data.num_negatives,
        seed=seed, rank=info.rank, world_size=info.world_size, num_workers=data.num_workers,
        heldout_permille=data.heldout_permille, exclude_speakers=data.exclude_speakers,
        shuffle_buffer=data.shuffle_buffer, bucket_size=data.bucket_buffer,
    )


def clip_filter(sources: list[str], exclude: list[str], spoken_negatives: bool):
    """Which cached clips training uses: of the sources listed (all when none are) minus the excluded
    ones; without spoken negatives, no clip of a spoken pair (a clip with a group)."""
    if not sources and not exclude and spoken_negatives:
        return None
    return lambda source, group: ((not sources or source in sources) and source not in exclude
                                  and (spoken_negatives or group is None))


def teacher_labels(config: TrainConfig, towers: TrainableTowers) -> TeacherLabels:
    """Whisper's decoder labelling the first ``cache.teacher_clips`` clips while they are cached."""
    from voiceclap.teacher import WhisperTeacher

    teacher = WhisperTeacher.from_pretrained(device=towers.model.device,
                                             normalization=config.cache.teacher_normalization)
    return TeacherLabels(teacher, config.cache.teacher_clips)


class HeldOut:
    """The held-out clips, measured with :mod:`voiceclap.protocol` exactly as ``voiceclap eval
    --max-clips <data.max_eval_clips> --seed <run.seed>`` measures them: the same clips, the same
    candidates, the same functions. The frozen parts' outputs are computed once (in float32, as the
    model computes them) and only the trained parts run at each evaluation."""

    def __init__(self, config: TrainConfig, towers: TrainableTowers, device: torch.device):
        data = config.data
        if data.eval:
            sources, select = data.eval, None
        else:  # the seed's hash split of the training sources
            sources, select = data.train, (lambda clip: is_heldout(clip.id, data.heldout_permille))
        self.clips = load_eval_set(sources, max_clips=data.max_eval_clips, seed=config.run.seed,
                                   select=select, progress=config.run.progress).clips
        self.towers, self.device, self.seed = towers, device, config.run.seed
        self._audio: dict[Clip, Features] = {}
        self._text: dict[str, Features] = {}

    @torch.no_grad()
    def _embed(self, items: list, frozen: dict, prepare, front, back, size: int) -> np.ndarray:
        order = sorted(range(len(items)), key=lambda i: len(items[i] if isinstance(items[i], str) else items[i].audio))
        out = [None] * len(items)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            todo = [items[i] for i in rows if items[i] not in frozen]
            if todo:
                features = front(prepare(todo).to(self.device))
                for item, values, mask in zip(todo, features.values, features.mask):
                    frozen[item] = values[mask]
            batch = Features.from_rows([frozen[items[i]] for i in rows])
            for i, embedding in zip(rows, back(batch).float().cpu().numpy()):
                out[i] = embedding
        return np.stack(out)

    def scorer(self) -> protocol.EmbeddingScorer:
        """A scorer over the towers' current trained parts."""
        towers, model = self.towers, self.towers.model
        cacheable = towers.plan.cacheable
        # Without a frozen front end there is nothing to keep between evaluations.
        audio_frozen = self._audio if cacheable else {}
        text_frozen = self._text if cacheable else {}
        return protocol.EmbeddingScorer(
            lambda clips: self._embed(clips, audio_frozen, lambda c: model.prepare_audio([x.audio for x in c]),
                                      towers.frozen_audio, towers.embed_audio, AUDIO_BATCH),
            lambda texts: self._embed(texts, text_frozen, model.tokenize, towers.frozen_text, towers.embed_text,
                                      TEXT_BATCH),
        )

    def metrics(self) -> dict[str, float]:
        """R@1/R@5 (both directions), the card's rho with its CI and per language, and the text-prior
        control, as ``voiceclap eval`` reports them."""
        was_training = self.towers.training
        self.towers.eval()
        scorer = self.scorer()
        retrieval, _ = protocol.retrieval(self.clips, scorer)
        corruption, _ = protocol.corruption(self.clips, scorer, seed=self.seed, n_boot=200)
        self.towers.train(was_training)
        out: dict[str, float] = {"eval/clips": len(self.clips)}
        if "overall" in retrieval:
            a2t, t2a = retrieval["overall"]["audio_to_text"], retrieval["overall"]["text_to_audio"]
            out.update({"eval/R@1": a2t["R@1"], "eval/R@5": a2t["R@5"], "eval/T2A_R@1": t2a["R@1"]})
        if "pooled" in corruption:
            out["eval/spearman"] = corruption["pooled"]["spearman"]["value"]
            out["eval/spearman_ci95"] = corruption["pooled"]["spearman"]["ci95"]
            out.update({f"eval/spearman_{k}": v["spearman"]["value"] for k, v in corruption["by_language"].items()})
            out["eval/spearman_other_audio"] = corruption["other_audio_control"]["spearman"]["value"]
        return out


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to the peak, then a cosine down to min_ratio of it at the last step."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(towers: TrainableTowers, config: TrainConfig) -> torch.optim.AdamW:
    # Matrices decay; biases, norms and the logit scale/bias do not (decaying them only biases them).
    params = [p for p in towers.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.optim.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.optim.lr, betas=tuple(config.optim.betas), eps=config.optim.eps)


def log_metrics(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def plot_metrics(metrics_path: Path, png_path: Path) -> None:
    """Training loss terms and held-out R@1 / rho against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    held = [r for r in records if r["split"] == "eval"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for term in LOSS_TERMS:
        if train and term in train[0]:
            top.plot([r["step"] for r in train], [r[term] for r in train], label=term)
    top.set_yscale("log")
    top.set_ylabel("training loss (per global batch)")
    if train:
        top.legend()
    for key, label in (("eval/R@1", "held-out R@1"), ("eval/spearman", "held-out Spearman rho(score, WER)")):
        points = [(r["step"], r[key]) for r in held if r.get(key) is not None]
        if points:
            bottom.plot(*zip(*points), marker="o", label=label)
    bottom.axhline(0.0, color="grey", lw=0.5)
    bottom.set_xlabel("step")
    if held:
        bottom.legend()
    fig.tight_layout()
    fig.savefig(png_path, dpi=120)
    plt.close(fig)


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the exported model directory."""
    run = config.run
    limit_onednn_primitive_cache()
    info = distributed.init_distributed(run.device, run.dist_timeout_minutes)
    device = info.device
    out_dir = Path(run.out_dir)
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    distributed.barrier()
    if run.threads:
        torch.set_num_threads(run.threads)
    use_bf16 = run.precision == "bf16" or (run.precision == "auto" and device.type == "cuda")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)

    # ----- model, freezing, data -----
    torch.manual_seed(run.seed)  # the same initial projections on every rank
    model = build_model(config)
    plan = make_plan(model, config.model.audio_trainable_from_layer, config.model.text_trainable_from_layer,
                     config.model.train_text_embeddings)
    trained_prefixes = apply_freezing(model, plan)
    if config.model.gradient_checkpointing:
        for encoder in (model.audio.encoder, model.text.encoder):
            # transformers 5 renamed gradient_checkpointing_enable (pyproject allows 4.x too). Non-reentrant
            # checkpointing keeps gradients flowing into a layer whose input comes from frozen layers.
            enable = getattr(encoder, "activation_checkpointing_enable", None)
            if enable is not None:
                enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    towers = TrainableTowers(model, plan).to(device)
    vocabularies = prepare_vocabularies(config, out_dir, info)
    train_batches = prepare_data(config, towers, vocabularies, out_dir, info)
    has_eval = bool(config.data.eval or config.data.heldout_permille)
    held_out = HeldOut(config, towers, device) if has_eval and info.is_main else None
    random.seed(run.seed + info.rank)  # from here on (dropout), every rank draws its own numbers
    np.random.seed(run.seed + info.rank)
    torch.manual_seed(run.seed + info.rank)
    trainable = [p for p in towers.parameters() if p.requires_grad]
    if info.is_main:
        print(f"training {sum(p.numel() for p in trainable):,} of {sum(p.numel() for p in towers.parameters()):,} "
              f"parameters: {', '.join(trained_prefixes)}", flush=True)
    wrapped = towers
    if info.world_size > 1:
        wrapped = DistributedDataParallel(towers, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = VoiceCLAPLoss(**dataclasses.asdict(config.loss))
    optim = config.optim
    optimizer = make_optimizer(towers, config)
    schedule = functools.partial(
        lr_factor, warmup=optim.warmup_steps, total=optim.max_steps, min_ratio=optim.min_lr_ratio
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    # ----- resume -----
    checkpoint_path = out_dir / "checkpoints" / "last.pt"
    metrics_path = out_dir / "metrics.jsonl"
    step = 0
    if checkpoint_path.exists():
        state = ckpt.load_checkpoint(checkpoint_path)
        if len(state["data"]) != info.world_size:
            raise ValueError(f"{checkpoint_path} was written by {len(state['data'])} ranks; resume it with as many")
        ckpt.restore_model(model, {k: v.to(device) for k, v in state["model"].items()})
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        train_batches.load_state_dict(state["data"][info.rank])
        ckpt.set_rng_state(state["rng"][info.rank])
        step = state["step"]
        if info.is_main:
            # Records logged after the checkpoint are about to be produced again.
            records = [line for line in metrics_path.read_text().splitlines() if json.loads(line)["step"] <= step]
            metrics_path.write_text("".join(line + "\n" for line in records))
            print(f"resumed from {checkpoint_path} at step {step}", flush=True)
    elif info.is_main:
        metrics_path.unlink(missing_ok=True)

    def save() -> None:
        data_states = distributed.gather_objects(train_batches.state_dict())
        rng_states = distributed.gather_objects(ckpt.rng_state())
        if info.is_main:
            ckpt.save_checkpoint(checkpoint_path, {
                "step": step, "model": ckpt.trained_state(model, trained_prefixes),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "data": data_states, "rng": rng_states, "config": config.to_dict(),
            })
        distributed.barrier()

    def held_out_eval() -> None:
        if held_out is not None:
            record = {"split": "eval", "step": step, **held_out.metrics()}
            log_metrics(metrics_path, record)
            tqdm.write(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        distributed.barrier()

    if step == 0:
        held_out_eval()

    # ----- the loop -----
    batches = iter(train_batches)
    bar = tqdm(total=optim.max_steps, initial=step, unit="step", disable=not (info.is_main and run.progress))
    window = defaultdict(float)
    window_samples, window_start = 0, time.perf_counter()
    wrapped.train()
    while step < optim.max_steps:
        for micro in range(optim.grad_accum_steps):
            batch = next(batches).to(device)
            last = micro == optim.grad_accum_steps - 1
            # DDP all-reduces gradients only on the last micro-batch of a step.
            sync = contextlib.nullcontext() if last or info.world_size == 1 else wrapped.no_sync()
            with sync:
                with autocast:
                    audio, texts = wrapped(batch)
                terms = loss_fn(audio, texts, batch.error_rates, model.logit_scale, model.logit_bias, batch.teacher)
                # Each rank holds its share of the global-batch loss; DDP averages gradients.
                (terms["loss"] * info.world_size / optim.grad_accum_steps).backward()
            for name, value in terms.items():
                window[name] += value.item() / optim.grad_accum_steps
            window_samples += len(batch.ids)
        if optim.grad_clip > 0:
            window["grad_norm"] += float(torch.nn.utils.clip_grad_norm_(trainable, optim.grad_clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)

        if step % run.log_every == 0 or step == optim.max_steps:
            steps_in_window = run.log_every if step % run.log_every == 0 else step % run.log_every
            # Loss shares and samples add up over ranks; the grad norm is the same on every rank.
            summed = distributed.all_reduce_sum({**window, "samples": window_samples}, device)
            elapsed = time.perf_counter() - window_start
            record = {"split": "train", "step": step, "lr": scheduler.get_last_lr()[0],
                      "logit_scale": model.logit_scale.exp().item(), "logit_bias": model.logit_bias.item()}
            for name in window:
                record[name] = summed[name] / steps_in_window / (1 if name in LOSS_TERMS else info.world_size)
            record["samples_per_s"] = summed["samples"] / elapsed
            if info.is_main:
                log_metrics(metrics_path, record)
                bar.set_postfix({k: f"{record[k]:.4g}" for k in (*LOSS_TERMS, "samples_per_s") if k in record})
            window.clear()
            window_samples, window_start = 0, time.perf_counter()
        if run.eval_every and step % run.eval_every == 0 and step < optim.max_steps:
            held_out_eval()
        if run.save_every and step % run.save_every == 0 and step < optim.max_steps:
            save()
    bar.close()

    # ----- the end: checkpoint, evaluation, export, plot -----
    save()
    held_out_eval()
    export_dir = out_dir / "model"
    if info.is_main:
        weights = run.export_weights
        if weights == "auto":
            # "trained" reloads the encoders' untrained tensors from their sources (checked against
            # checksums taken at export), so it fits encoders that come from a source.
            sourced = config.model.load_base_weights and model.config.audio_encoder and model.config.text_encoder
            weights = "trained" if sourced else "all"
        ckpt.export_model(model, export_dir, trained_prefixes, weights)
        plot_metrics(metrics_path, out_dir / "loss_curve.png")
        print(f"model exported to {export_dir}; metrics in {metrics_path}", flush=True)
    distributed.barrier()
    return export_dir


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a training recipe (YAML), e.g. configs/train/cpu-whisper-base-e5small.yaml")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="override recipe values, e.g. optim.lr=3e-4 data.batch_size=16")


def train_from_args(args: argparse.Namespace) -> int:
    try:
        train(load_config(args.config, args.overrides))
    finally:
        distributed.shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voiceclap.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(parser)
    return train_from_args(parser.parse_args(argv))
