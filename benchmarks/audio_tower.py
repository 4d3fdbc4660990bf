"""Audio-tower engines and batchings on the same clips, in one run: clips/s and parity with float32.

Each engine gives the audio tower's finished states (25 frames/s, after average-pool by 2 and
ln_post) at each clip's own length, and the model's head turns them into the joint embedding:

  float32       the model as trained (load_model(..., audio_precision="float32"))
  bfloat16      the encoder's convolutions and linear layers in bfloat16 under autocast, layer norms
                and residual stream float32 (AudioTower.set_encoder_dtype: what audio_precision="auto"
                picks on a CPU with AMX)
  int8-dynamic  torch.ao.quantization.quantize_dynamic of a copy of the encoder's Linear layers
                (int8 weights, activations quantized per tensor at run time)
  ct2-int8, ct2-float32
                CTranslate2's Whisper encoder (--ct2-model, offline:whisper-base-ct2) on each clip's
                log-mel, one clip per call (it takes no padding mask). It returns the states after
                the final layer norm, so the finish is approximated: the norm's affine is undone,
                frame pairs are averaged and the norm applied again (exact only where both frames of
                a pair had the same mean and spread)

Throughput: every clip through prepare_audio, the engine and the first --models model's head, the
torch engines in the batches the scoring engine makes (--batchings, clips per batch x padded
seconds; the first is the reference); --runs repetitions, all rows interleaved within each, the
median reported with its ratio to the reference row. Parity (first batching): per clip, the largest
absolute difference of the finished states from float32's and the cosine of the joint embeddings
with each model of --models (their audio encoders must be the same weights).

    python benchmarks/audio_tower.py --data data/corpus/synthetic/heldout/shard-*.tar --threads 1 \\
        --out reports/audio-tower

Writes DIR/audio_tower.md (the tables, also printed) and DIR/audio_tower.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from voiceclap.evaluation.asr_baseline import DEFAULT_ASR_MODEL

sys.path.insert(0, str(Path(__file__).parent))
# the sibling benchmark's workload and CTranslate2 encoder
from speed import DEFAULT_DATA, ct2_encode, ct2_whisper, machine_info, sample_clips

ENGINES = ("float32", "bfloat16", "int8-dynamic", "ct2-int8", "ct2-float32")
DEFAULT_MODELS = ("default", "random:whisper-base-tokens")


def _batching(value: str) -> tuple[int, float]:
    clips, _, seconds = value.partition("x")
    return int(clips), float(seconds)


def torch_engine(model, tower):
    """prepare_audio -> ``tower``'s finished states (``tower``: the model's audio tower or a variant)."""
    return lambda waveforms: tower.front(model.prepare_audio(waveforms))


def ct2_engine(model, ct2_source: str, compute_type: str, threads: int):
    """Each clip alone through CTranslate2's encoder, then the approximate finish (module docstring)."""
    from voiceclap.towers import Features

    whisper = ct2_whisper(ct2_source, compute_type, threads)
    norm = model.audio.encoder.layer_norm

    def run(waveforms):
        rows = []
        for waveform in waveforms:
            normed = torch.from_numpy(ct2_encode(whisper, model.prepare_audio([waveform]).mel.numpy()))
            standardized = (normed - norm.bias) / norm.weight
            rows.append(norm(F.avg_pool1d(standardized.transpose(1, 2), 2, 2).transpose(1, 2))[0])
        return Features.from_rows(rows)

    return run


def build_engines(names, model, ct2_source: str, threads: int) -> dict:
    from voiceclap.towers import AudioTower

    engines = {}
    for name in names:
        if name == "float32":
            engines[name] = torch_engine(model, model.audio)
        elif name == "bfloat16":
            tower = AudioTower(copy.deepcopy(model.audio.encoder), model.audio.head, model.audio.pooling)
            tower.set_encoder_dtype(torch.bfloat16)
            engines[name] = torch_engine(model, tower)
        elif name == "int8-dynamic":
            from torch.ao.quantization import quantize_dynamic

            encoder = quantize_dynamic(copy.deepcopy(model.audio.encoder), {torch.nn.Linear}, dtype=torch.qint8)
            engines[name] = torch_engine(model, AudioTower(encoder, model.audio.head, model.audio.pooling))
        else:
            engines[name] = ct2_engine(model, ct2_source, name.removeprefix("ct2-"), threads)
    return engines


def parity(reference: list[torch.Tensor], states: list[torch.Tensor], models: dict) -> dict:
    """Largest state difference and per-model cosine statistics of the joint embeddings, per clip."""
    out = {"max_abs_state_diff": max(float((a - b).abs().max()) for a, b in zip(reference, states))}
    for label, model in models.items():
        cosines = []
        for a, b in zip(reference, states):
            mask = torch.ones(2, a.shape[0], dtype=torch.bool)
            pair = F.normalize(model.audio.head(torch.stack([a, b]), mask), dim=-1)
            cosines.append(float((pair[0] * pair[1]).sum()))
        out[label] = {"cosine_min": min(cosines), "cosine_mean": statistics.fmean(cosines)}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="benchmarks/audio_tower.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", nargs="+", default=[DEFAULT_DATA], help=f"held-out shards or a manifest (default {DEFAULT_DATA})")
    parser.add_argument("--clips", type=int, default=100, help="clips (default 100)")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help="comma-separated; 'default' is the shipped model (default: %(default)s)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of %(default)s")
    parser.add_argument("--batchings", default="16x60", type=lambda v: [_batching(b) for b in v.split(",")],
                        help="comma-separated CLIPSxSECONDS batch budgets for the torch engines (default 16x60, the "
                             "scoring engine's on a CPU)")
    parser.add_argument("--ct2-model", default=DEFAULT_ASR_MODEL, help="CTranslate2 Whisper directory or offline: source")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="runs/audio-tower")
    args = parser.parse_args(argv)
    engine_names = args.engines.split(",")
    if "float32" not in engine_names or set(engine_names) - set(ENGINES):
        parser.error(f"--engines: a subset of {','.join(ENGINES)} that includes float32 (the reference)")

    from voiceclap.model import load_model
    from voiceclap.scoring import ClapBackend, ScoringEngine

    torch.set_num_threads(args.threads)
    clips, files = sample_clips(args.data, args.clips, args.min_seconds, args.max_seconds, seed=0)
    models = {spec: load_model(None if spec == "default" else spec, audio_precision="float32")
              for spec in args.models.split(",")}
    model = next(iter(models.values()))
    for spec, other in models.items():
        for name, tensor in other.audio.encoder.state_dict().items():
            if not torch.equal(tensor, model.audio.encoder.state_dict()[name]):
                parser.error(f"{spec}'s audio encoder differs from the first model's ({name})")
    engines = build_engines(engine_names, model, args.ct2_model, args.threads)
    batchings = {b: [[clips.index(c) for c in batch] for batch in ScoringEngine(
        ClapBackend(model), batch_size=b[0], batch_seconds=b[1]).batches(sorted(clips, key=lambda c: len(c.audio)))]
        for b in args.batchings}
    # Rows: every engine in the reference batching, then the torch engines in each other batching
    # (CTranslate2 takes one clip per call whatever the batching).
    rows = [(e, args.batchings[0]) for e in engine_names]
    rows += [(e, b) for b in args.batchings[1:] for e in engine_names if not e.startswith("ct2-")]
    seconds = {row: [] for row in rows}
    states: dict[str, list[torch.Tensor]] = {}
    with torch.inference_mode():
        for engine in engines.values():  # warm-up: first-call costs are not throughput
            engine([clips[0].audio])
        for _ in range(args.runs):
            for engine_name, batching in rows:
                began = time.perf_counter()
                found = [None] * len(clips)
                for batch in batchings[batching]:
                    features = engines[engine_name]([clips[i].audio for i in batch])
                    model.audio.head(features.values, features.mask)
                    for j, i in enumerate(batch):
                        found[i] = features.values[j, : int(features.mask[j].sum())]
                seconds[engine_name, batching].append(time.perf_counter() - began)
                if batching == args.batchings[0]:
                    states[engine_name] = found
        reference_row = ("float32", args.batchings[0])
        reference = statistics.median(seconds[reference_row])
        results = []
        for engine_name, batching in rows:
            median = statistics.median(seconds[engine_name, batching])
            result = {"engine": engine_name, "batch_clips": batching[0], "batch_seconds": batching[1],
                      "clips_per_s": len(clips) / median, "speedup": reference / median, "seconds": seconds[engine_name, batching]}
            if batching == args.batchings[0] and engine_name != "float32":
                result["parity"] = parity(states["float32"], states[engine_name], models)
            results.append(result)

    audio_seconds = [c.seconds for c in clips]
    report = {
        "command": shlex.join(["python", "benchmarks/audio_tower.py", *argv]),
        "machine": machine_info("cpu"),
        "workload": {"sources": files, "n_clips": len(clips), "audio_seconds": sum(audio_seconds),
                     "seconds_min": min(audio_seconds), "seconds_median": statistics.median(audio_seconds),
                     "seconds_max": max(audio_seconds)},
        "settings": {"threads": args.threads, "runs": args.runs, "models": list(models)},
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio_tower.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = render_markdown(report)
    (out / "audio_tower.md").write_text(markdown)
    print(markdown)
    return 0


def render_markdown(report: dict) -> str:
    work, settings = report["workload"], report["settings"]
    models = settings["models"]
    lines = [
        "# Audio tower: engines and batchings",
        "",
        (f"{work['n_clips']} clips, {work['audio_seconds']:.0f} s of audio ({work['seconds_min']:.1f}-"
         f"{work['seconds_max']:.1f} s, median {work['seconds_median']:.1f} s); {settings['threads']} thread(s), "
         f"median of {settings['runs']} interleaved runs. Machine: {report['machine']['cpu_model']}."),
        "",
        "| engine | batch (clips x s) | clips/s | vs float32 | max abs state diff | "
        + " | ".join(f"cosine min / mean, {m}" for m in models) + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(models),
    ]
    for r in report["results"]:
        batch = "1 (no mask)" if r["engine"].startswith("ct2-") else f"{r['batch_clips']} x {r['batch_seconds']:g}"
        p = r.get("parity")
        diff = f"{p['max_abs_state_diff']:.3g}" if p else ""
        cosines = " | ".join(f"{p[m]['cosine_min']:.5f} / {p[m]['cosine_mean']:.5f}" if p else "" for m in models)
        lines.append(f"| {r['engine']} | {batch} | {r['clips_per_s']:.1f} | {r['speedup']:.2f}x | {diff} | {cosines} |")
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
