"""Scoring speed: VoiceCLAP against the ASR-WER pipeline it replaces and against the encoder-only
bound, on the same clips, in one run.

Workload: N held-out clips (default 200, mixed languages, --min-seconds..--max-seconds long), sampled
by a seeded hash of their ids from shards or a manifest (read by voiceclap.evaluation.data), decoded
once to 16 kHz float WAV files plus a manifest in a temporary folder. Every method reads those same
files, so all pay the same (small) decoding cost and none resamples.

Methods, each run through the project's own code path, as a user runs it:

  voiceclap-masked   --model in `masked` pooling (no padding), voiceclap.scoring.score_manifest
  voiceclap-seed     the same weights with the config override audio_pooling="seed" (every clip
                     padded to 30 s: the seed card's way). Its process also times the card's stack
                     on the first CARD_STACK_CLIPS clips: each pair alone, as open_clip's CLAP
                     scores it (decode, one batch-1 30 s audio-tower pass, one text-tower pass,
                     cosine); the median seconds per clip is `card_stack_s`
  encoder-ct2-int8   the encoder-only bound: CTranslate2's Whisper base encoder (--asr-model's weights)
                     in int8 on each clip's log-mel at the clip's own length (voiceclap.audio's, padded
                     as masked pooling pads it; no 30 s padding), one clip per call (CTranslate2 takes no
                     padding mask), nothing after the encoder: the physical limit of a Whisper-base scorer
  asr-<type>-beam<b> voiceclap.evaluation.asr_baseline: faster-whisper Whisper base, the language
                     given, for each --asr-compute-types x --asr-beams, then jiwer WER against the text

Each run of each method is a fresh interpreter (this script again, started with --child; not a fork,
whose child would inherit the parent's resident memory in its peak), which measures
  first call      seconds from the process's first import to the first clip's result (model load
                  included), i.e. what a one-off `score this clip` costs
  clips/s         all N clips (decode, model, output) after the first call, and audio s per wall s
  peak RSS        the process's ru_maxrss: interpreter and imports included (`imports_rss_mib`
                  in the JSON is the part taken right after the imports)
--runs repetitions (default 3), methods interleaved within a repetition so that a change in the
machine's load hits them alike; the median of each figure is reported, with the load average.
Ratios VoiceCLAP / ASR-WER are given for every ASR configuration and for the fastest, and VoiceCLAP /
encoder bound beside them. Threads (--threads) are the same for all: torch's for VoiceCLAP and for the
bound's log-mel, CTranslate2's intra-op threads for the bound and for faster-whisper.

Targets (CPU, default model): issue 17's, VoiceCLAP masked >= TARGET_SPEEDUP (40) x the clips/s of the
fastest ASR-WER configuration and within TARGET_BOUND_WITHIN (1.2) x the encoder bound's clips/s
(ratio >= 0.83); issue 7's, peak RSS <= 1.5 GB and seed pooling no slower than the card's stack.

--train-throughput CONFIG adds the samples/s of a training recipe's steps on its feature cache: it
runs voiceclap.train for --train-steps steps in a scratch folder on the cache the recipe already
built (never building one) and reports the median of the trainer's own samples_per_s windows, the
first (warm-up) window left out.

With --device cuda VoiceCLAP scores on the GPU under bf16 autocast with larger batches, and
faster-whisper runs on the GPU too. A `random:<config>` model (real base encoders when the config
names them, random projections: the speed of a trained model) loads without the base-checksum check
a trained model directory does, so its first call is a little shorter.

    python benchmarks/speed.py --model random:whisper-base-e5small --out runs/speed
    python benchmarks/speed.py --model runs/cpu-whisper-base-e5small/model --runs 5 \\
        --train-throughput runs/cpu-whisper-base-e5small/config.yaml

Writes DIR/speed.md (the tables, also printed) and DIR/speed.json (every run's figures, the
medians, the ratios, the machine, library versions and the command line). Exit code 1 when a run
failed (its error is in both files), 2 when nothing could be measured.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = "data/corpus/synthetic/heldout/shard-*.tar"
DEFAULT_TRANSCRIBER = "voiceclap.evaluation.asr_baseline:FasterWhisperTranscriber"
METHOD_KINDS = ("masked", "seed", "encoder", "asr")
ENCODER_COMPUTE_TYPE = "int8"  # the encoder-only bound's CTranslate2 compute type
KIND_NAMES = {"voiceclap": "VoiceCLAP", "encoder": "the encoder bound", "asr": "ASR-WER"}
FIGURES = ("clips_per_s", "audio_seconds_per_s", "first_call_s", "peak_rss_mib", "imports_rss_mib", "peak_gpu_mib",
           "card_stack_s")
CARD_STACK_CLIPS = 20
# CPU targets for the default (masked) model. Issue 17: clips/s at least TARGET_SPEEDUP times the
# fastest ASR-WER configuration's, and within TARGET_BOUND_WITHIN times the encoder-only bound's.
TARGET_SPEEDUP = 40.0
TARGET_BOUND_WITHIN = 1.2
# Issue 7: peak RSS when scoring.
TARGET_PEAK_BYTES = 1.5e9
MIB = 2**20
CHILD_FLAG = "--child"  # argv of a measuring process: its spec comes on stdin
RESULT_NAME = "result.json"  # what a measuring process leaves in its workdir


# ----- the workload -----


def sample_clips(sources: list[str], n: int, min_s: float, max_s: float, seed: int) -> tuple[list, list[str]]:
    """(n decoded clips in [min_s, max_s] seconds, a seeded uniform sample; the source files)."""
    from voiceclap.evaluation.sets import load_eval_set

    # load_eval_set keeps the first clips of a fixed hash order, so a larger max_clips returns a
    # superset: ask again for more until n clips fall in the length range or the sources run out.
    asked = n
    while True:
        evalset = load_eval_set(sources, max_clips=asked, seed=seed, progress=False)
        clips = [c for c in evalset.clips if min_s <= c.seconds <= max_s]
        if len(clips) >= n or len(evalset.clips) < asked:
            break
        asked = math.ceil(asked * n / max(len(clips), 1)) + 1
    return clips[:n], evalset.sources


def build_workload(sources: list[str], n: int, min_s: float, max_s: float, seed: int, directory: Path) -> dict:
    """Sample n clips in [min_s, max_s] seconds, write them as float WAVs and a JSONL manifest."""
    import soundfile

    from voiceclap.audio import SAMPLE_RATE

    clips, files = sample_clips(sources, n, min_s, max_s, seed)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = directory / "manifest.jsonl"
    with open(manifest, "w", encoding="utf-8") as f:
        for i, clip in enumerate(clips):
            name = f"{i:05d}.wav"
            soundfile.write(directory / name, clip.audio, SAMPLE_RATE, subtype="FLOAT")  # the exact samples
            row = {"id": clip.id, "audio": name, "text": clip.text, "language": clip.language, "system": clip.speaker}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    seconds = sorted(c.seconds for c in clips)
    languages: dict[str, int] = {}
    for clip in clips:
        languages[clip.language] = languages.get(clip.language, 0) + 1
    return {
        "manifest": str(manifest),
        "sources": files,
        "n_clips": len(clips),
        "audio_seconds": sum(seconds),
        "seconds_min": seconds[0] if seconds else None,
        "seconds_median": statistics.median(seconds) if seconds else None,
        "seconds_max": seconds[-1] if seconds else None,
        "languages": dict(sorted(languages.items())),
        "length_range_s": [min_s, max_s],
        "sample_seed": seed,
    }


# ----- what runs in each fresh process -----


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MIB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def load_voiceclap(spec: str, pooling: str):
    """A model (directory, hub id or random:<config>) in the given audio pooling mode."""
    from dataclasses import replace

    from voiceclap.model import VoiceCLAP, audio_encoder_dtype, load_model

    model = load_model(spec, audio_precision="float32")
    if model.config.audio_pooling != pooling:
        # The pooling mode is part of the config the towers are built from: build the model from
        # the overridden config around the same encoders and carry every weight over. The
        # calibration is not carried: it maps the other mode's scores.
        config = replace(model.config, audio_pooling=pooling)
        overridden = VoiceCLAP(config, model.audio.encoder, model.text.encoder, model.tokenizer)
        overridden.load_state_dict(model.state_dict())
        model = overridden
    # Then the precision a user's load_model(spec) gets on this machine (rounding is one way only).
    model.audio.set_encoder_dtype(audio_encoder_dtype("auto"))
    return model.eval()


def _score_voiceclap(spec: dict, start: float) -> dict:
    import torch

    from voiceclap.manifest import read_manifest
    from voiceclap.runtime import configure_threads
    from voiceclap.scoring import ClapBackend, Shard, read_records, score_manifest, score_pair

    imports_rss = _peak_rss_mib()
    configure_threads(threads=spec["threads"])
    device = torch.device(spec["device"])
    model = load_voiceclap(spec["model"], spec["pooling"]).to(device)
    # bf16 on a GPU, as a GPU user would score; the CPU path stays float32, as shipped.
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    manifest = read_manifest(spec["manifest"])
    first = manifest.clips[0]
    backend = ClapBackend(model)
    with autocast:
        record = score_pair(backend, first.audio, first.text)  # returns CPU floats: synchronized
    if record["error"]:
        raise RuntimeError(f"the first clip failed: {record['error']}")
    first_call = time.perf_counter() - start

    output = Path(spec["workdir"]) / "scores.jsonl"
    began = time.perf_counter()
    with autocast:
        summary = score_manifest(
            backend, manifest, output, batch_size=spec["batch_size"], batch_seconds=spec["batch_seconds"],
            decode_workers=spec["decode_workers"], progress=False, shard=Shard(),
        )
    wall = time.perf_counter() - began
    scored = [r for r in read_records(output) if not r["error"]]
    card_stack = _card_stack_seconds(model, manifest.clips, autocast) if spec["pooling"] == "seed" else None
    return {
        "first_call_s": first_call,
        "wall_s": wall,
        "clips": len(scored),
        "failed": summary.failed,
        "audio_seconds": sum(r["duration"] for r in scored),
        "imports_rss_mib": imports_rss,
        "peak_gpu_mib": torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None,
        "mean_score": summary.groups["all"].get("all", {}).get("mean"),
        "card_stack_s": card_stack,
    }


def _card_stack_seconds(model, clips, autocast) -> float:
    """Median seconds per pair scored alone (model.score: decode, one audio and one text pass, no
    batching, no background decoding), the seed card's way."""
    times = []
    with autocast:
        for clip in clips[:CARD_STACK_CLIPS]:
            began = time.perf_counter()
            model.score(clip.audio, clip.text)  # a Python float: the device has finished
            times.append(time.perf_counter() - began)
    return statistics.median(times)


def clip_log_mel(waveform, n_mels: int):
    """Whisper's log-mel of one 16 kHz clip at its own length, [n_mels, frames] float32 numpy: cut at
    30 s and padded to a whole number of pooled frames, as VoiceCLAP.prepare_audio does in masked pooling."""
    import numpy as np

    from voiceclap import audio as A

    waveform = np.asarray(waveform, dtype=np.float32)[: A.N_SAMPLES]
    padded = A.pad_or_trim(waveform, -(-len(waveform) // A.SAMPLES_PER_POOLED_FRAME) * A.SAMPLES_PER_POOLED_FRAME)
    return A.log_mel_spectrogram(padded, n_mels).numpy()


def ct2_whisper(source: str, compute_type: str, threads: int, device: str = "cpu"):
    """CTranslate2's Whisper from a model directory or an ``offline:`` source (voiceclap.weights)."""
    import ctranslate2

    from voiceclap.weights import resolve_encoder_source

    return ctranslate2.models.Whisper(resolve_encoder_source(source), device=device, compute_type=compute_type,
                                      intra_threads=threads)


def ct2_encode(whisper, mel):
    """Whisper's encoder on log-mels [batch, n_mels, frames] of one length (CTranslate2 takes no padding
    mask): the states after its final layer norm, [batch, frames // 2, width], a float32 numpy array."""
    import ctranslate2
    import numpy as np

    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel, dtype=np.float32))
    return np.array(whisper.encode(features, to_cpu=True))


def _first_then_all(spec: dict, start: float, run) -> tuple[dict, object]:
    """Time ``run`` (clips -> its result) as a user meets it: on the manifest's first clip alone (the
    first call, counted from the process's ``start``), then on every clip decoded as the evaluation
    pipeline decodes them. Returns (the common figures, run's result on all clips)."""
    from voiceclap.clips import decode_clip
    from voiceclap.evaluation.sets import load_eval_set
    from voiceclap.manifest import read_manifest

    run([decode_clip(read_manifest(spec["manifest"]).clips[0])])
    first_call = time.perf_counter() - start
    began = time.perf_counter()
    clips = load_eval_set(spec["manifest"], progress=False).clips  # decoding is part of the pipeline
    result = run(clips)
    figures = {
        "first_call_s": first_call,
        "wall_s": time.perf_counter() - began,
        "clips": len(clips),
        "failed": 0,
        "audio_seconds": sum(c.seconds for c in clips),
        "peak_gpu_mib": None,  # CTranslate2 does not report it
    }
    return figures, result


def _encode_ct2(spec: dict, start: float) -> dict:
    """The encoder-only bound: decode, log-mel at clip length, CTranslate2's encoder; one clip per call."""
    from voiceclap.runtime import configure_threads

    imports_rss = _peak_rss_mib()
    configure_threads(threads=spec["threads"])  # the log-mel's STFT runs in torch
    whisper = ct2_whisper(spec["ct2_model"], spec["compute_type"], spec["threads"], spec["device"])

    def encode(clips) -> int:
        return sum(ct2_encode(whisper, clip_log_mel(c.audio, whisper.n_mels)[None]).shape[1] for c in clips)

    figures, frames = _first_then_all(spec, start, encode)
    return {**figures, "imports_rss_mib": imports_rss, "encoder_frames": frames}


def _import_object(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _transcribe_asr(spec: dict, start: float) -> dict:
    from voiceclap.evaluation.scorers import AsrScorer

    factory = _import_object(spec["transcriber"])
    imports_rss = _peak_rss_mib()
    transcriber = factory(
        model=spec["asr_model"], compute_type=spec["compute_type"],
        beam_size=spec["beam_size"], device=spec["device"], cpu_threads=spec["threads"],
    )

    def wers(clips):
        return -AsrScorer(transcriber, progress=False).score_pairs(clips, [c.text for c in clips])

    figures, all_wers = _first_then_all(spec, start, wers)
    return {
        **figures,
        "imports_rss_mib": imports_rss,
        "mean_asr_wer": float(all_wers.mean()) if len(all_wers) else None,
        "transcriber": transcriber.identity,
    }


def _train_steps(spec: dict) -> dict:
    """voiceclap.train on the feature cache a recipe built, in a scratch run folder."""
    from voiceclap.train import distributed, train
    from voiceclap.train.config import load_config
    from voiceclap.train.feature_cache import INDEX_NAME

    recipe = load_config(spec["config"])
    if not recipe.cache.enabled:
        return {"skipped": "the recipe trains without the feature cache (cache.enabled is false)"}
    built = Path(recipe.cache.dir or Path(recipe.run.out_dir) / "feature-cache") / "train"
    index = built / INDEX_NAME
    if not index.is_file() or not json.loads(index.read_text())["complete"]:
        # Building it is the recipe's hour-long first stage, not a training step.
        return {"skipped": f"no complete feature cache at {built}: run the recipe first"}
    scratch = Path(spec["workdir"])
    (scratch / "feature-cache").mkdir(parents=True)
    # The train cache is linked, never written (it is complete, so the trainer only reads it); an
    # evaluation cache, when the recipe has one, is built in the scratch folder.
    (scratch / "feature-cache" / "train").symlink_to(built.resolve(), target_is_directory=True)
    vocabularies = Path(recipe.run.out_dir) / "vocabularies.json"
    if vocabularies.is_file():  # the cache's signature includes them: reuse, do not rebuild
        shutil.copy(vocabularies, scratch / "vocabularies.json")
    steps = spec["steps"]
    window = max(1, steps // 6)
    overrides = [
        f"run.out_dir={scratch}", f"cache.dir={scratch / 'feature-cache'}", f"optim.max_steps={steps}",
        f"run.log_every={window}", "run.eval_every=0", "run.save_every=0", "run.progress=false",
        f"run.threads={spec['threads']}", f"run.device={spec['device']}",
        # Evaluation runs outside the timed windows; keep its cost small (an explicit eval set off,
        # a held-out split of the training sources, which is part of the cache signature, small).
        "data.eval=null", "data.max_eval_clips=16",
    ]
    config = load_config(spec["config"], overrides)
    try:
        train(config)
    finally:
        distributed.shutdown()
    records = [json.loads(line) for line in (scratch / "metrics.jsonl").read_text().splitlines()]
    rates = [r["samples_per_s"] for r in records if r["split"] == "train"]
    steady = rates[1:] or rates  # the first window pays for opening the cache files
    return {
        "config": spec["config"],
        "samples_per_s": statistics.median(steady),
        "window_samples_per_s": rates,
        "steps": steps,
        "steps_per_window": window,
        "batch_size": config.data.batch_size,
        "device": spec["device"],
        "threads": spec["threads"],
    }


def run_child(spec: dict) -> dict:
    """Entry point of a fresh process: one run of one method."""
    start = time.perf_counter()
    if spec["kind"] == "train":
        return _train_steps(spec)
    measure = {"voiceclap": _score_voiceclap, "encoder": _encode_ct2, "asr": _transcribe_asr}[spec["kind"]]
    result = measure(spec, start)
    result["peak_rss_mib"] = _peak_rss_mib()
    result["clips_per_s"] = result["clips"] / result["wall_s"]
    result["audio_seconds_per_s"] = result["audio_seconds"] / result["wall_s"]
    return result


def child_main() -> int:
    """A measuring process: the spec on stdin, the figures (or the error) into the spec's workdir."""
    spec = json.load(sys.stdin)
    try:
        result = run_child(spec)
    except Exception as error:  # noqa: BLE001 - one method failing must not lose the others' figures
        result = {"error": f"{type(error).__name__}: {error}"}
    (Path(spec["workdir"]) / RESULT_NAME).write_text(json.dumps(result))
    return 0


def in_fresh_process(spec: dict) -> dict:
    """run_child(spec) in a new interpreter; a failure comes back as {"error": ...}.

    The child never outlives this process: however the benchmark ends (an exception, Ctrl-C, or a
    SIGTERM, which the script turns into SystemExit), the finally clause kills a child still running, so
    an interrupted benchmark leaves no measurement burning the cores of the next one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # the parent's imports
    child = subprocess.Popen([sys.executable, __file__, CHILD_FLAG], stdin=subprocess.PIPE, env=env, text=True)
    try:
        child.communicate(json.dumps(spec))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    result_path = Path(spec["workdir"]) / RESULT_NAME
    if not result_path.exists():
        return {"error": f"the measuring process exited with status {child.returncode} and no result"}
    return json.loads(result_path.read_text())


# ----- the methods and their figures -----


def method_specs(args: argparse.Namespace, manifest: str) -> list[dict]:
    common = {"manifest": manifest, "threads": args.threads, "device": args.device}
    specs = []
    for pooling in ("masked", "seed"):
        if pooling in args.methods:
            specs.append({
                **common, "name": f"voiceclap-{pooling}", "kind": "voiceclap", "pooling": pooling,
                "model": args.model, "batch_size": args.batch_size, "batch_seconds": args.batch_seconds,
                "decode_workers": args.decode_workers,
            })
    if "encoder" in args.methods:
        specs.append({
            **common, "name": f"encoder-ct2-{ENCODER_COMPUTE_TYPE}", "kind": "encoder",
            "compute_type": ENCODER_COMPUTE_TYPE, "ct2_model": args.asr_model,
        })
    if "asr" in args.methods:
        for compute_type in args.asr_compute_types:
            for beam in args.asr_beams:
                specs.append({
                    **common, "name": f"asr-{compute_type}-beam{beam}", "kind": "asr", "compute_type": compute_type,
                    "beam_size": beam, "asr_model": args.asr_model, "transcriber": args.asr_transcriber,
                })
    return specs


def label(method: dict) -> str:
    if method["kind"] == "voiceclap":
        return "VoiceCLAP masked" if method["pooling"] == "masked" else "VoiceCLAP seed (30 s padding)"
    if method["kind"] == "encoder":
        return f"Encoder bound: CTranslate2 {method['compute_type']}, clip length"
    return f"ASR-WER {method['compute_type']}, beam {method['beam_size']}"


def medians(runs: list[dict]) -> dict | None:
    good = [r for r in runs if "error" not in r]
    if not good:
        return None
    return {k: statistics.median(r[k] for r in good) for k in FIGURES if good[0].get(k) is not None}


def _over(ours: dict, theirs: dict) -> dict:
    return {figure: ours["median"][figure] / theirs["median"][figure]
            for figure in ("clips_per_s", "peak_rss_mib", "first_call_s")}


def ratios(methods: list[dict]) -> dict:
    """VoiceCLAP / ASR-WER for each pair that has figures (``pairs``, and ``fastest_asr`` named), and
    VoiceCLAP / the encoder-only bound (``to_bound``): clips/s (above 1: VoiceCLAP faster), peak RSS
    and first call (below 1: VoiceCLAP smaller, quicker)."""
    measured = [m for m in methods if m["median"] is not None]
    ours = [m for m in measured if m["kind"] == "voiceclap"]
    out: dict = {}
    asr = [m for m in measured if m["kind"] == "asr"]
    if asr:
        fastest = max(asr, key=lambda m: m["median"]["clips_per_s"])
        out["fastest_asr"] = fastest["name"]
        out["pairs"] = {o["name"]: {theirs["name"]: _over(o, theirs) for theirs in asr} for o in ours}
    bound = next((m for m in measured if m["kind"] == "encoder"), None)
    if bound is not None:
        out["encoder_bound"] = bound["name"]
        out["to_bound"] = {o["name"]: _over(o, bound) for o in ours}
    return out


def targets(methods: list[dict], ratio: dict) -> dict:
    """The CPU targets (issue 17's speed, issue 7's memory and seed pooling) the measured methods allow to check."""
    found = {m["name"]: m["median"] for m in methods if m["median"]}
    goal: dict = {}
    masked = found.get("voiceclap-masked")
    if masked is not None:
        if "voiceclap-masked" in ratio.get("pairs", {}):
            speedup = ratio["pairs"]["voiceclap-masked"][ratio["fastest_asr"]]["clips_per_s"]
            goal.update(speedup_vs_fastest_asr=speedup, speedup_target=TARGET_SPEEDUP,
                        speedup_met=speedup >= TARGET_SPEEDUP)
        if "voiceclap-masked" in ratio.get("to_bound", {}):
            fraction = ratio["to_bound"]["voiceclap-masked"]["clips_per_s"]
            goal.update(fraction_of_encoder_bound=fraction, encoder_bound_target=1 / TARGET_BOUND_WITHIN,
                        encoder_bound_met=fraction >= 1 / TARGET_BOUND_WITHIN)
        peak = masked["peak_rss_mib"] * MIB
        goal.update(peak_rss_bytes=peak, peak_rss_target_bytes=TARGET_PEAK_BYTES, peak_rss_met=peak <= TARGET_PEAK_BYTES)
    seed = found.get("voiceclap-seed")
    if seed is not None and seed.get("card_stack_s") is not None:
        per_clip = 1.0 / seed["clips_per_s"]
        goal.update(seed_s_per_clip=per_clip, card_stack_s=seed["card_stack_s"], seed_met=per_clip <= seed["card_stack_s"])
    return goal


# ----- the machine -----


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def available_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


def machine_info(device: str) -> dict:
    info = {
        "cpu_model": _cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_available": available_cores(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {d: _version(d) for d in ("torch", "ctranslate2", "faster-whisper", "transformers", "jiwer", "voiceclap")},
        "git_commit": _git_commit(),
        "gpu": None,
    }
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ----- the report -----


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render_markdown(report: dict) -> str:
    work, machine, settings = report["workload"], report["machine"], report["settings"]
    methods = report["methods"]
    languages = ", ".join(f"{k} {v}" for k, v in work["languages"].items())
    load = report["load_average"]
    gpu_name = f", {machine['gpu']}" if machine["gpu"] else ""
    lines = [
        "# VoiceCLAP scoring speed vs the ASR-WER pipeline",
        "",
        (
            f"{work['n_clips']} clips, {work['audio_seconds']:.0f} s of audio ({_fmt(work['seconds_min'], 1)}-"
            f"{_fmt(work['seconds_max'], 1)} s, median {_fmt(work['seconds_median'], 1)} s; {languages}). "
            f"Median of {_count(settings['runs'], 'run')}, each method in a fresh process, "
            f"{_count(settings['threads'], 'thread')}, device {settings['device']}."
        ),
        (
            f"Machine: {machine['cpu_model']}, {machine['cpu_cores_available']} cores{gpu_name}; "
            f"torch {machine['versions']['torch']}, ctranslate2 {machine['versions']['ctranslate2']}, "
            f"faster-whisper {machine['versions']['faster-whisper']}. "
            f"Load average {load['start']:.2f} at the start, {load['end']:.2f} at the end."
        ),
    ]
    if settings["model"]:
        lines.append(f"VoiceCLAP model: `{settings['model']}`.")
    lines.append("")
    gpu = settings["device"] == "cuda"
    header = "| method | clips/s | audio s per s | first call (s) | peak RSS (MiB) |"
    header += " peak GPU (MiB) |" if gpu else ""
    lines += [header, "|---|---:|---:|---:|---:|" + ("---:|" if gpu else "")]
    for m in methods:
        med = m["median"]
        if med is None:
            lines.append(f"| {label(m)} | failed: {m['runs'][0]['error']} | | | |" + (" |" if gpu else ""))
            continue
        row = (f"| {label(m)} | {_fmt(med['clips_per_s'])} | {_fmt(med['audio_seconds_per_s'], 1)} | "
               f"{_fmt(med['first_call_s'])} | {_fmt(med['peak_rss_mib'], 0)} |")
        lines.append(row + (f" {_fmt(med.get('peak_gpu_mib'), 0)} |" if gpu else ""))
    failures = [(m, r) for m in methods for r in m["runs"] if "error" in r and m["median"] is not None]
    for m, r in failures:
        lines.append(f"\nA run of {label(m)} failed: {r['error']}")

    ratio = report["ratios"]
    by_name = {m["name"]: m for m in methods}
    if ratio.get("pairs"):
        asr_names = [m["name"] for m in methods if m["kind"] == "asr" and m["median"] is not None]
        lines += [
            "",
            "## VoiceCLAP / ASR-WER",
            "",
            (
                "Clips/s of VoiceCLAP over clips/s of each ASR-WER configuration (above 1: VoiceCLAP is faster; "
                "audio seconds per second give the same ratios, the workload being the same):"
            ),
            "",
            "| VoiceCLAP | " + " | ".join(label(by_name[n]).removeprefix("ASR-WER ") for n in asr_names) + " |",
            "|---|" + "---:|" * len(asr_names),
        ]
        for ours, pairs in ratio["pairs"].items():
            cells = " | ".join(f"{pairs[n]['clips_per_s']:.1f}x" for n in asr_names)
            lines.append(f"| {label(by_name[ours])} | {cells} |")
    summary = {ours: None for ours in (*ratio.get("pairs", {}), *ratio.get("to_bound", {}))}
    if summary:
        fastest, bound = ratio.get("fastest_asr"), ratio.get("encoder_bound")
        against = []
        if fastest:
            against.append(f"the fastest ASR-WER configuration ({label(by_name[fastest]).removeprefix('ASR-WER ')})")
        if bound:
            against.append(
                f"the encoder-only bound (CTranslate2 {by_name[bound]['compute_type']} Whisper base encoder at clip "
                "length, nothing after it; issue 17 asks for >= 0.83, within 1.2x)"
            )
        lines += [
            "",
            "## VoiceCLAP / fastest ASR-WER and encoder bound",
            "",
            f"Against {' and '.join(against)}:",
            "",
            "| VoiceCLAP | clips/s vs fastest ASR-WER | peak RSS vs it | first call vs it | clips/s vs encoder bound |",
            "|---|---:|---:|---:|---:|",
        ]
        for ours in summary:
            r = ratio.get("pairs", {}).get(ours, {}).get(fastest)
            asr_cells = (f"{r['clips_per_s']:.1f}x | {r['peak_rss_mib']:.2f}x | {r['first_call_s']:.2f}x"
                         if r else "- | - | -")
            b = ratio.get("to_bound", {}).get(ours)
            bound_cell = f"{b['clips_per_s']:.2f}" if b else "-"
            lines.append(f"| {label(by_name[ours])} | {asr_cells} | {bound_cell} |")

    goal = report["targets"]
    if goal and settings["device"] == "cpu":
        met = {True: "met", False: "NOT met"}
        lines += ["", "## Targets (CPU)", ""]
        if "speedup_met" in goal:
            lines.append(
                f"- issue 17: VoiceCLAP masked >= {goal['speedup_target']:.0f}x the clips/s of the fastest ASR-WER "
                f"configuration: {goal['speedup_vs_fastest_asr']:.1f}x, {met[goal['speedup_met']]}"
            )
        if "encoder_bound_met" in goal:
            lines.append(
                f"- issue 17: VoiceCLAP masked within {TARGET_BOUND_WITHIN:g}x of the encoder-only bound's clips/s "
                f"(ratio >= {goal['encoder_bound_target']:.2f}): {goal['fraction_of_encoder_bound']:.2f}, "
                f"{met[goal['encoder_bound_met']]}"
            )
        if "peak_rss_met" in goal:
            lines.append(
                f"- issue 7: peak memory when scoring <= {goal['peak_rss_target_bytes'] / 1e9:g} GB: "
                f"{goal['peak_rss_bytes'] / 1e9:.2f} GB, {met[goal['peak_rss_met']]}"
            )
        if "seed_met" in goal:
            lines.append(
                f"- issue 7: `seed` pooling no slower than the card's stack (each pair alone: one 30 s audio pass, "
                f"one text pass; {goal['card_stack_s']:.3f} s per clip): {goal['seed_s_per_clip']:.3f} s per clip, "
                f"{met[goal['seed_met']]}"
            )

    imports = {m["kind"]: m["median"]["imports_rss_mib"] for m in methods if m["median"]}
    if imports:
        after_imports = ", ".join(
            f"{KIND_NAMES[k]} {v:,.0f} MiB after its imports" for k, v in imports.items()
        )
        torch_note = "; the project's ASR-WER pipeline imports torch through voiceclap.weights" if "asr" in imports else ""
        lines += ["", f"Peak RSS is the whole process, interpreter and libraries included ({after_imports}{torch_note})."]
    if (settings["model"] or "").startswith("random:"):
        lines.append("The model is a random:<config> stand-in: trained weights cost the same time, and a trained "
                     "model directory's first call adds a base-weight checksum.")

    training = report.get("train_throughput")
    if training is not None:
        lines += ["", "## Training throughput", ""]
        if "samples_per_s" in training:
            lines.append(
                f"`{training['config']}` on its feature cache: {training['samples_per_s']:,.1f} samples/s "
                f"(median of {max(len(training['window_samples_per_s']) - 1, 1)} windows of {training['steps_per_window']} "
                f"steps, batch {training['batch_size']}, {_count(training['threads'], 'thread')}, "
                f"device {training['device']})."
            )
        else:
            lines.append(f"Not measured: {training.get('skipped') or training.get('error')}.")
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


# ----- command line -----


def _csv(kind):
    return lambda value: [kind(v) for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchmarks/speed.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    work = parser.add_argument_group("workload")
    work.add_argument("--data", nargs="+", default=[DEFAULT_DATA],
                      help="held-out shards (folders, globs, .tar) or a manifest (.jsonl/.tsv/.csv with audio, "
                           f"text, language), as `voiceclap eval` reads them (default: {DEFAULT_DATA})")
    work.add_argument("--clips", type=int, default=200, help="clips in the workload (default 200)")
    work.add_argument("--min-seconds", type=float, default=1.0, help="shortest clip kept (default 1)")
    work.add_argument("--max-seconds", type=float, default=15.0, help="longest clip kept (default 15)")
    work.add_argument("--sample-seed", type=int, default=0, help="seed of the clip sample (default 0)")

    run = parser.add_argument_group("methods and measurement")
    run.add_argument("--model", default=None,
                     help="VoiceCLAP model directory, hub id, or random:<config> such as random:whisper-base-e5small "
                          "(default: the model shipped with the package)")
    run.add_argument("--methods", type=_csv(str), default=list(METHOD_KINDS),
                     help=f"comma-separated subset of {','.join(METHOD_KINDS)} (default: all; encoder is the "
                          "encoder-only bound)")
    run.add_argument("--runs", type=int, default=3, help="repetitions of every method; medians are reported (default 3)")
    run.add_argument("--threads", type=int, default=None,
                     help="threads for every method: torch and CTranslate2 alike (default: every available core)")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                     help="cuda: VoiceCLAP in bf16 with large batches, faster-whisper and the encoder bound on the "
                          "GPU (default cpu)")
    run.add_argument("--batch-size", type=int, default=None, help="VoiceCLAP clips per batch (default 16 on CPU, 64 on CUDA; the engine scores seed pooling on a CPU one clip at a time)")
    run.add_argument("--batch-seconds", type=float, default=None,
                     help="VoiceCLAP padded audio seconds per batch (default: the scoring engine's for the device, 60 on CPU, 960 on CUDA)")
    run.add_argument("--decode-workers", type=int, default=2, help="VoiceCLAP background decoding threads (default 2)")
    run.add_argument("--asr-model", default=None,
                     help="faster-whisper (CTranslate2 Whisper) model directory or offline: source, for the ASR-WER "
                          "pipeline and the encoder-only bound (default: the ASR baseline's, offline:whisper-base-ct2)")
    run.add_argument("--asr-compute-types", type=_csv(str), default=["int8", "float32"],
                     help="CTranslate2 compute types, comma-separated (default int8,float32)")
    run.add_argument("--asr-beams", type=_csv(int), default=[1, 5], help="beam sizes, comma-separated (default 1,5)")
    run.add_argument("--asr-transcriber", default=DEFAULT_TRANSCRIBER,
                     help="module:callable building the transcriber from (model, compute_type, beam_size, device, "
                          f"cpu_threads); tests inject a fake one (default {DEFAULT_TRANSCRIBER})")

    train = parser.add_argument_group("training throughput")
    train.add_argument("--train-throughput", metavar="CONFIG", default=None,
                       help="a training recipe or a run's config.yaml whose feature cache is built: also measure "
                            "samples/s of its training steps")
    train.add_argument("--train-steps", type=int, default=60, help="training steps measured (default 60, in 6 windows)")

    parser.add_argument("--out", default="runs/speed", help="folder for speed.md and speed.json (default runs/speed)")
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    unknown = sorted(set(args.methods) - set(METHOD_KINDS))
    if unknown or not args.methods:
        parser.error(f"--methods takes a subset of {','.join(METHOD_KINDS)}, not {','.join(unknown) or 'nothing'}")
    for name in ("clips", "runs", "threads", "batch_size", "decode_workers", "train_steps"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.min_seconds <= args.max_seconds:
        parser.error("need 0 <= --min-seconds <= --max-seconds")
    if "asr" in args.methods and not (args.asr_compute_types and args.asr_beams):
        parser.error("--asr-compute-types and --asr-beams need at least one value each")


def main(argv: list[str] | None = None) -> int:
    import torch  # imported here: --help stays fast

    from voiceclap.scoring import default_batch_seconds

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    _check(parser, args)
    args.threads = args.threads or available_cores()
    gpu = args.device == "cuda"
    args.batch_size = args.batch_size or (64 if gpu else 16)
    args.batch_seconds = args.batch_seconds or default_batch_seconds(torch.device(args.device))
    if args.model is None and ({"masked", "seed"} & set(args.methods)):
        from voiceclap.pretrained import default_model_path

        try:
            args.model = str(default_model_path())
        except FileNotFoundError as error:
            parser.error(str(error))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="voiceclap-speed-") as scratch:
        scratch = Path(scratch)
        print(f"speed: decoding the workload from {' '.join(args.data)}", file=sys.stderr)
        workload = build_workload(args.data, args.clips, args.min_seconds, args.max_seconds, args.sample_seed,
                                  scratch / "workload")
        if workload["n_clips"] == 0:
            print("speed: no clip in the length range; nothing to measure", file=sys.stderr)
            return 2
        if workload["n_clips"] < args.clips:
            print(f"speed: only {workload['n_clips']} clips available in the length range", file=sys.stderr)
        if {"asr", "encoder"} & set(args.methods) and args.asr_model is None:
            # Loaded with the workload's decoding already (torch): the import costs nothing more here.
            from voiceclap.evaluation.asr_baseline import DEFAULT_ASR_MODEL

            args.asr_model = DEFAULT_ASR_MODEL
        methods = method_specs(args, workload["manifest"])
        for method in methods:
            method["runs"] = []
        for run in range(1, args.runs + 1):
            for method in methods:
                spec = {k: v for k, v in method.items() if k != "runs"}
                spec["workdir"] = str(scratch / f"{method['name']}-{run}")
                Path(spec["workdir"]).mkdir()
                result = in_fresh_process(spec)
                method["runs"].append(result)
                shown = result.get("error") or (f"{result['clips_per_s']:.2f} clips/s, first call "
                                                f"{result['first_call_s']:.1f} s, peak RSS {result['peak_rss_mib']:.0f} MiB")
                print(f"speed: run {run}/{args.runs} {label(method)}: {shown}", file=sys.stderr)
        training = None
        if args.train_throughput:
            print(f"speed: training throughput of {args.train_throughput}", file=sys.stderr)
            training = in_fresh_process({
                "kind": "train", "config": args.train_throughput, "steps": args.train_steps,
                "threads": args.threads, "device": args.device, "workdir": str(scratch / "train"),
            })
    for method in methods:
        method["median"] = medians(method["runs"])
    ratio = ratios(methods)
    report = {
        "command": shlex.join([Path(sys.executable).name, os.path.relpath(__file__), *argv]),
        "machine": machine_info(args.device),
        "load_average": {"start": load_start, "end": os.getloadavg()[0]},
        "settings": {
            "runs": args.runs, "threads": args.threads, "device": args.device, "model": args.model,
            "batch_size": args.batch_size, "batch_seconds": args.batch_seconds, "decode_workers": args.decode_workers,
            "asr_model": args.asr_model, "asr_transcriber": args.asr_transcriber,
        },
        "workload": {k: v for k, v in workload.items() if k != "manifest"},  # the manifest was temporary
        "methods": [{k: v for k, v in m.items() if k != "manifest"} for m in methods],
        "ratios": ratio,
        "targets": targets(methods, ratio),
        "train_throughput": training,
    }
    (out / "speed.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    markdown = render_markdown(report)
    (out / "speed.md").write_text(markdown)
    print(markdown)
    failed = any("error" in r for m in methods for r in m["runs"]) or (training is not None and "error" in training)
    return 1 if failed else 0


if __name__ == "__main__":
    if sys.argv[1:] == [CHILD_FLAG]:
        sys.exit(child_main())
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # unwind, so children get killed
    sys.exit(main())
