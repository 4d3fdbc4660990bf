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

from voiceclap.metrics import by_group, correlation_report, next_in_group, retrieval_metrics
from voiceclap.model import VoiceCLAP
from voiceclap.train import checkpoint as ckpt
from voiceclap.train import distributed
from voiceclap.train.config import TrainConfig, load_config
from voiceclap.train.data import (
    StreamingBatches,
    build_vocabularies,
    collate,
    eval_examples,
    expand_sources,
    heldout_filter,
    load_vocabularies,
    read_clips,
    save_vocabularies,
)
from voiceclap.train.feature_cache import (
    CachedBatches,
    FeatureCache,
    build_feature_cache,
    cache_signature,
    eval_cache_batches,
)
from voiceclap.train.loss import VoiceCLAPLoss
from voiceclap.train.towers import TrainableTowers, apply_freezing, make_plan

LOSS_TERMS = ("loss", "siglip", "hard_negative", "margin", "cross_clip_margin")


def build_model(config: TrainConfig) -> VoiceCLAP:
    if config.model.init_from:
        return VoiceCLAP.from_pretrained(config.model.init_from)
    return VoiceCLAP.from_config(config.model.config, load_base_weights=config.model.load_base_weights)


def prepare_vocabularies(config: TrainConfig, out_dir: Path, info: distributed.DistInfo) -> dict:
    """Corruption vocabularies from the training transcripts, built once by rank 0 and kept in the
    run directory (a resumed run reuses them, so its corruptions are the same)."""
    path = out_dir / "vocabularies.json"
    if info.is_main and not path.exists():
        clips = read_clips(expand_sources(config.data.train), with_audio=False)
        clips = heldout_filter(clips, config.data.heldout_permille, keep_heldout=False)
        if config.data.vocabulary_max_clips:
            clips = (c for _, c in zip(range(config.data.vocabulary_max_clips), clips))
        save_vocabularies(build_vocabularies(clips, config.data.vocabulary_size), path)
    distributed.barrier()
    return load_vocabularies(path)


def prepare_data(config: TrainConfig, towers: TrainableTowers, vocabularies: dict, out_dir: Path, info):
    """(training batch iterator with state_dict/load_state_dict, a function giving the evaluation
    batches or None). With the feature cache, both read precomputed frozen features."""
    data, seed = config.data, config.run.seed
    train_sources = expand_sources(data.train)
    if data.eval:
        eval_sources, eval_permille = expand_sources(data.eval), None
    elif data.heldout_permille:
        eval_sources, eval_permille = train_sources, data.heldout_permille
    else:
        eval_sources, eval_permille = None, None

    if config.cache.enabled:
        if not towers.plan.cacheable:
            raise ValueError(
                "the feature cache needs a frozen audio front end (audio_trainable_from_layer > 0) "
                "and frozen text embeddings"
            )
        root = Path(config.cache.dir or out_dir / "feature-cache")
        digest = hashlib.sha1(json.dumps({k: list(v) for k, v in vocabularies.items()}).encode()).hexdigest()

        def cache(name, sources, permille, keep_heldout, max_clips):
            signature = cache_signature(towers, sources, digest, data.num_negatives, seed, config.cache.dtype)
            signature.update(heldout_permille=permille, heldout_side=keep_heldout, max_clips=max_clips)
            clips = read_clips(sources)
            if permille:
                clips = heldout_filter(clips, permille, keep_heldout)
            return build_feature_cache(
                towers, clips, root / name, signature=signature, vocabularies=vocabularies,
                num_negatives=data.num_negatives, seed=seed, chunk_size=config.cache.chunk_size,
                batch_size=config.cache.batch_size, max_clips=max_clips, progress=config.run.progress,
            )

        if info.is_main:
            cache("train", train_sources, data.heldout_permille, False, config.cache.max_train_clips)
        distributed.barrier()
        train_cache = FeatureCache(root / "train")
        batches = CachedBatches(train_cache, data.batch_size, seed, info.rank, info.world_size, data.bucket_buffer)
        evaluation = None
        if eval_sources and info.is_main:
            eval_cache = cache("eval", eval_sources, eval_permille, True, data.max_eval_clips)
            evaluation = functools.partial(eval_cache_batches, eval_cache, data.batch_size)
        return batches, evaluation

    batches = StreamingBatches(
        train_sources, functools.partial(collate, towers.model), vocabularies,
        batch_size=data.batch_size, num_negatives=data.num_negatives, seed=seed, rank=info.rank,
        world_size=info.world_size, num_workers=data.num_workers, heldout_permille=data.heldout_permille,
        shuffle_buffer=data.shuffle_buffer, bucket_size=data.bucket_buffer,
    )
    evaluation = None
    if eval_sources and info.is_main:
        examples = eval_examples(eval_sources, vocabularies, num_negatives=data.num_negatives, seed=seed,
                                 max_clips=data.max_eval_clips, heldout_permille=eval_permille)
        starts = range(0, len(examples), data.batch_size)
        eval_batches = [collate(towers.model, examples[i : i + data.batch_size]) for i in starts]
        evaluation = lambda: eval_batches  # decoded once, kept in memory
    return batches, evaluation


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


@torch.no_grad()
def evaluate(towers: TrainableTowers, batches, device: torch.device, autocast) -> dict[str, float]:
    """Audio->text and text->audio R@1/R@5 over the clips' true transcripts, and the Spearman rho
    of cos(audio, candidate) with the candidate's WER over each clip's transcript and corruptions
    (rows of a clip resampled together for the CI), overall and per language."""
    was_training = towers.training
    towers.eval()
    audio, texts, error_rates, languages = [], [], [], []
    for batch in batches:
        batch = to_device(batch, device)
        with autocast:
            a, t = towers(batch)
        audio.append(a.float().cpu())
        texts.append(t.float().cpu())
        error_rates.append(batch["error_rates"].cpu())
        languages += batch["languages"]
    towers.train(was_training)
    audio, texts, error_rates = torch.cat(audio), torch.cat(texts), torch.cat(error_rates)

    similarity = (audio @ texts[:, 0].T).numpy()
    out = {f"eval/{k}": v for k, v in retrieval_metrics(similarity, ks=(1, 5)).items() if k.startswith("R@")}
    out["eval/T2A_R@1"] = retrieval_metrics(similarity.T, ks=(1,))["R@1"]
    scores = torch.einsum("nd,nkd->nk", audio, texts).numpy()
    wers = torch.cat([torch.zeros(len(audio), 1), error_rates], 1).numpy()
    valid = wers > 0
    valid[:, 0] = True  # the true transcript always counts; repeated-transcript slots (WER 0) do not
    clip_grid = np.broadcast_to(np.arange(len(audio))[:, None], wers.shape)
    clip = clip_grid[valid]
    language = np.broadcast_to(np.array(languages)[:, None], wers.shape)[valid]
    report = correlation_report(scores[valid], wers[valid], clip, n_boot=200)
    out["eval/spearman"] = report["spearman"]["value"]
    out["eval/spearman_ci95"] = report["spearman"]["ci95"]
    per_language = by_group(language, correlation_report, scores[valid], wers[valid], clip, n_boot=0)
    out.update({f"eval/spearman_{lang}": r["spearman"]["value"] for lang, r in per_language.items()})
    # The text-prior control (voiceclap.evaluation.corruption_eval): each clip's candidates against
    # another clip's audio of the same language.
    partner = next_in_group(languages)
    control = torch.einsum("nd,nkd->nk", audio[partner], texts).numpy()  # rows with partner -1 are left out
    control_rows = valid & (partner >= 0)[:, None]
    control_report = correlation_report(control[control_rows], wers[control_rows], clip_grid[control_rows], n_boot=0)
    out["eval/spearman_other_audio"] = control_report["spearman"]["value"]
    out["eval/clips"] = len(audio)
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
    train_batches, evaluation = prepare_data(config, towers, vocabularies, out_dir, info)
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
        if evaluation is not None:
            record = {"split": "eval", "step": step, **evaluate(towers, evaluation(), device, autocast)}
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
            batch = to_device(next(batches), device)
            last = micro == optim.grad_accum_steps - 1
            # DDP all-reduces gradients only on the last micro-batch of a step.
            sync = contextlib.nullcontext() if last or info.world_size == 1 else wrapped.no_sync()
            with sync:
                with autocast:
                    audio, texts = wrapped(batch)
                terms = loss_fn(audio, texts, batch["error_rates"], model.logit_scale, model.logit_bias)
                # Each rank holds its share of the global-batch loss; DDP averages gradients.
                (terms["loss"] * info.world_size / optim.grad_accum_steps).backward()
            for name, value in terms.items():
                window[name] += value.item() / optim.grad_accum_steps
            window_samples += len(batch["ids"])
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
