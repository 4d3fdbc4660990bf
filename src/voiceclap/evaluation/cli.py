"""``voiceclap eval`` / ``python -m voiceclap.evaluation``: arguments and the run they drive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["DESCRIPTION", "EPILOG", "add_eval_arguments", "build_parser", "eval_from_args"]

DESCRIPTION = """\
Evaluate a VoiceCLAP model the way the field judges a WER substitute, and write a report directory.

With --heldout (real or synthetic speech with its transcripts):
  retrieval    audio->text and text->audio R@1/5/10 and median rank, with N, overall and per language;
  corruption   the model card's protocol: each clip scored against its true transcript and
               --k-corruptions corrupted ones at a spread of WER levels; Spearman/Kendall/Pearson of
               score vs WER pooled over all (clip, candidate) rows, per language, 95% CIs from
               resampling clips; and its text-prior control, the same rows scored against another
               clip's audio of the same language (what the text alone earns: near 0 if the score listens);
  calibration  with --fit-calibration, an isotonic score -> expected-WER map fitted on half of the
               clips (by id hash), its MAE on the other half; saved beside the model.
With --gold (clips whose audio says a corrupted text, true WER known by construction):
  gold         correlation of the score against the intended text with the true WER, per language
               and per system (TTS voice); with --asr, the ASR-WER baseline (faster-whisper,
               language given) on the same clips, its correlation and the time each method took.

Sets are WebDataset .tar shards in Emilia's layout (a folder, a glob or files) or a .jsonl/.tsv/.csv
manifest (audio, text, language, [id], [system], [true_wer], [intended_text], [spoken_text]).
"""

EPILOG = """\
Output: OUT/report.json (every number, the model, data and command), OUT/report.md (tables),
OUT/*_rows.jsonl (per clip / per candidate rows) and PNG plots.

The ASR baseline runs offline after: pip install -e ".[offline]"
Example: voiceclap eval --model runs/m1 --heldout data/corpus/heldout --gold data/corpus/gold --asr --out reports/m1
"""


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``voiceclap eval`` options, added to ``parser`` (the CLI's sub-command parser)."""
    from voiceclap.cli import (
        MODEL_HELP,  # --model means the same in every voiceclap command
    )

    parser.add_argument("--model", help=MODEL_HELP)
    parser.add_argument(
        "--heldout", nargs="+", metavar="PATH", help="held-out set: shard folder(s), glob(s), .tar files or a manifest"
    )
    parser.add_argument(
        "--gold", nargs="+", metavar="PATH", help="gold set (intended_text, true_wer per clip): shards or a manifest"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="report directory (created; files in it are overwritten)"
    )
    parser.add_argument(
        "--max-clips", type=int, metavar="N", help="use a seeded uniform sample of at most N clips of each set"
    )
    parser.add_argument(
        "--max-gold-clips", type=int, metavar="N",
        help="sample size for the gold set alone (default: --max-clips); the ASR baseline runs on every gold clip",
    )
    parser.add_argument(
        "--k-corruptions", type=int, default=5, metavar="K", help="corrupted transcripts per held-out clip (default 5)"
    )
    parser.add_argument(
        "--fit-calibration",
        action="store_true",
        help="fit score -> expected WER on half the held-out clips and save it with the model",
    )
    parser.add_argument("--asr", action="store_true", help="run the ASR-WER baseline on the gold set")
    parser.add_argument(
        "--asr-model",
        default="offline:whisper-base-ct2",
        help="faster-whisper model directory or offline: source (default offline:whisper-base-ct2)",
    )
    parser.add_argument("--asr-compute-type", default="int8", help="CTranslate2 compute type (default int8)")
    parser.add_argument("--asr-beam", type=int, default=1, metavar="N", help="ASR beam size (default 1: greedy)")
    parser.add_argument(
        "--asr-cache", metavar="FILE", help="transcript cache (default <voiceclap cache>/asr/transcripts.jsonl)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the clip sample, the corruptions and the bootstrap (default 0)"
    )
    parser.add_argument(
        "--n-boot", type=int, default=1000, metavar="N", help="bootstrap replicates for the 95%% CIs (default 1000)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=16, metavar="N", help="audio clips per model batch (default 16)"
    )
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m voiceclap.evaluation",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_eval_arguments(parser)


def _print_summary(report: dict, out: Path) -> None:
    from .report import format_correlation

    if "retrieval" in report and "overall" in report["retrieval"]:
        a2t = report["retrieval"]["overall"]["audio_to_text"]
        print(f"retrieval   audio->text R@1 {a2t['R@1']:.3f}  R@5 {a2t['R@5']:.3f}  (N = {a2t['N']})")
    if "pooled" in report.get("corruption", {}):
        corruption = report["corruption"]
        print(f"corruption  Spearman rho(score, WER) {format_correlation(corruption['pooled']['spearman'])}")
        print(f"            against other clips' audio {format_correlation(corruption['other_audio_control']['spearman'])}"
              " (text-prior control: near 0 if the score listens)")
    if "test" in report.get("calibration", {}):
        print(f"calibration MAE on the test half {report['calibration']['test']['mae']:.3f}")
    gold = report.get("gold", {})
    if "voiceclap" in gold:
        print(
            f"gold        VoiceCLAP rho(score, true WER) {format_correlation(gold['voiceclap']['correlation']['spearman'])}"
            f"  {gold['voiceclap']['seconds']:.1f} s"
        )
    if "asr" in gold:
        print(
            f"gold        ASR-WER  rho(ASR-WER, true WER) {format_correlation(gold['asr']['correlation']['spearman'])}"
            f"  {gold['asr']['seconds']:.1f} s"
        )
    print(f"report: {out / 'report.md'}")


def eval_from_args(args: argparse.Namespace) -> int:
    """Run ``voiceclap eval``; 0 on success, 2 when the inputs are unusable (the message says why)."""
    import torch

    from voiceclap.cli import RANDOM_PREFIX, CommandError, load_cli_model
    from voiceclap.pretrained import default_model_path

    from .asr_baseline import (
        FasterWhisperTranscriber,
        TranscriptCache,
        default_cache_path,
    )
    from .data import load_eval_set
    from .pipeline import EvalOptions, evaluate
    from .scorer import ModelScorer

    if not args.heldout and not args.gold:
        print("voiceclap eval: give --heldout, --gold or both", file=sys.stderr)
        return 2
    if args.asr and not args.gold:
        print("voiceclap eval: --asr compares on the gold set; give --gold", file=sys.stderr)
        return 2
    progress = not args.no_progress
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    transcriber = cache = None
    try:
        # Model and ASR first: a wrong --model or a missing ASR install should fail before
        # minutes of decoding.
        model = load_cli_model(args.model, device)
        # Where a fitted calibration is stored with the model: its local directory, if it has one.
        if args.model is None:
            model_dir = default_model_path()
        elif not args.model.startswith(RANDOM_PREFIX) and Path(args.model).is_dir():
            model_dir = Path(args.model)
        else:
            model_dir = None
        if args.asr:
            transcriber = FasterWhisperTranscriber(
                args.asr_model,
                compute_type=args.asr_compute_type,
                beam_size=args.asr_beam,
                device="cuda" if device.startswith("cuda") else "cpu",
                # The same thread count as the model's, so the two methods' times compare.
                cpu_threads=torch.get_num_threads(),
            )
            cache = TranscriptCache(args.asr_cache or default_cache_path())
        heldout = (
            load_eval_set(args.heldout, max_clips=args.max_clips, seed=args.seed, progress=progress)
            if args.heldout
            else None
        )
        gold = (
            load_eval_set(args.gold, gold=True, max_clips=args.max_gold_clips or args.max_clips, seed=args.seed, progress=progress)
            if args.gold
            else None
        )
    # ManifestError is a ValueError; RuntimeError: faster-whisper or its offline weights missing.
    except (CommandError, FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"voiceclap eval: {error}", file=sys.stderr)
        return 2
    settings = {k: v for k, v in vars(args).items() if not callable(v)}
    report = evaluate(
        ModelScorer(model, audio_batch_size=args.batch_size, progress=progress),
        args.out,
        heldout=heldout,
        gold=gold,
        model=model,
        model_source=str(args.model or model_dir),
        model_dir=model_dir,
        transcriber=transcriber,
        asr_cache=cache,
        options=EvalOptions(args.k_corruptions, args.seed, args.n_boot, args.fit_calibration, progress),
        settings={**settings, "device": device},
    )
    _print_summary(report, Path(args.out))
    return 0
