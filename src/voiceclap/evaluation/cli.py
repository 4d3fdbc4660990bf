"""``voiceclap eval`` / ``python -m voiceclap.evaluation``: arguments and the run they drive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from voiceclap.config import AUDIO_PRECISIONS

__all__ = ["DESCRIPTION", "EPILOG", "add_eval_arguments", "build_parser", "eval_from_args"]

DESCRIPTION = """\
Evaluate scorers the way the field judges a WER substitute, and write a report directory.

Scorers (--scorers, default clap): clap, the VoiceCLAP model (--model); asr, the ASR-WER pipeline it
replaces (faster-whisper, language given; score = minus the WER); teacher, Whisper's decoder asked
for the likelihood of the text. Every set goes through every scorer, in one run, side by side.

Sets (each flag takes [NAME=]PATH..., and may be repeated for several sets of that role):
  --heldout  transcribed speech (synthetic held-out clips, recorded speech):
             retrieval    audio->text and text->audio R@1/5/10 among the set's distinct transcripts
                          (not for the teacher: N^2 decoder passes), and R@k among --pool
                          same-language candidates;
             corruption   the card's protocol: each clip against its transcript and --k-corruptions
                          corrupted ones; Spearman/Kendall/Pearson of score vs WER pooled over all rows,
                          per language, 95% CIs from resampling clips; and its text-prior control, the
                          same rows against another clip's audio (near 0 if the score listens);
             calibration  with --fit-calibration, an isotonic score -> expected-WER map for the clap
                          scorer, fitted on half of the clips, tested on the other half, saved beside
                          the model.
  --gold     clips whose audio says a corrupted text (intended_text, true_wer): the score against the
             intended text vs the true WER, per language and per system.
  --pairs    fluent minimal pairs (each clip stores the variant it does not say): pair accuracy.

Sets are WebDataset .tar shards in Emilia's layout (a folder, a glob or files) or a .jsonl/.tsv/.csv
manifest (audio, text, language, [id], [system], [intended_text], [true_wer]).
"""

EPILOG = """\
Output: OUT/report.json (every number, the model, data and command), OUT/report.md (tables),
OUT/<set>_<scorer>_*_rows.jsonl (per clip / per candidate rows) and PNG plots.

The asr and teacher scorers run offline after: pip install -e ".[offline]"
Example: voiceclap eval --heldout data/corpus/synthetic/heldout --gold data/corpus/synthetic/gold --scorers clap,asr --out reports/m1
"""

SCORERS = ("clap", "asr", "teacher")


def _named_paths(role: str):
    """argparse type for "[NAME=]PATH": (name, path); the role is the default name."""

    def parse(value: str) -> tuple[str, str]:
        name, sep, path = value.partition("=")
        return (name, path) if sep and name and "/" not in name else (role, value)

    return parse


def _scorer_list(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = sorted(set(names) - set(SCORERS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"scorers are a comma-separated subset of {', '.join(SCORERS)}")
    return list(dict.fromkeys(names))


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``voiceclap eval`` options, added to ``parser`` (the CLI's sub-command parser)."""
    parser.add_argument(
        "--model", help="clap scorer's model: a directory, hub id or random:<config> (default: the shipped model)"
    )
    # float32 by default: a report measures the model as trained, the same on every machine (and equal
    # to the trainer's logged figures); --audio-precision auto measures the fast scoring path.
    parser.add_argument("--audio-precision", choices=AUDIO_PRECISIONS, default="float32",
                        help="the clap audio encoder's precision: float32 (default), or auto / bfloat16 as "
                        "voiceclap score --help describes")
    parser.add_argument("--scorers", type=_scorer_list, default=["clap"], help="comma-separated (default clap)")
    for role, what in (
        ("heldout", "transcribed speech"),
        ("gold", "gold clips (intended_text, true_wer)"),
        ("pairs", "minimal pairs (a `variant` candidate per clip)"),
    ):
        parser.add_argument(
            f"--{role}", nargs="+", action="append", type=_named_paths(role), metavar="[NAME=]PATH",
            help=f"{what}: shard folder(s), glob(s), .tar files or a manifest",
        )
    parser.add_argument("--out", required=True, metavar="DIR", help="report directory (created; files in it are overwritten)")
    parser.add_argument("--max-clips", type=int, metavar="N", help="a seeded uniform sample of at most N clips of each set")
    parser.add_argument("--max-gold-clips", type=int, metavar="N", help="sample size for gold sets (default: --max-clips)")
    parser.add_argument("--k-corruptions", type=int, default=5, metavar="K", help="corrupted transcripts per clip (default 5)")
    parser.add_argument("--pool", type=int, default=60, metavar="N", help="same-language retrieval candidates (default 60)")
    parser.add_argument("--fit-calibration", action="store_true", help="fit the clap score -> expected WER map and save it with the model")
    parser.add_argument("--asr-model", default="offline:whisper-base-ct2", help="faster-whisper model directory or offline: source (default %(default)s)")
    parser.add_argument("--asr-compute-type", default="int8", help="CTranslate2 compute type (default int8)")
    parser.add_argument("--asr-beam", type=int, default=1, metavar="N", help="ASR beam size (default 1: greedy)")
    parser.add_argument("--asr-cache", metavar="FILE", help="transcript cache (default <voiceclap cache>/asr/transcripts.jsonl)")
    parser.add_argument("--teacher-context", default="short", choices=("short", "full"),
                        help="teacher's audio context: the clip's length or Whisper's 30 s (default short)")
    parser.add_argument("--teacher-normalization", default="mean", choices=("mean", "sum", "pmi_other", "pmi_silence"),
                        help="teacher score: mean/sum token log-probability, or PMI against another clip or silence")
    parser.add_argument("--teacher-calibration", metavar="FILE", help="a teacher calibration to test (teacher_calibration.json)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip sample, the corruptions and the bootstrap (default 0)")
    parser.add_argument("--n-boot", type=int, default=1000, metavar="N", help="bootstrap replicates for the 95%% CIs (default 1000)")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N",
                        help="audio clips per model batch (default 16, as the trainer's evaluation)")
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

    for set_name, entry in report["sets"].items():
        for scorer, result in entry["results"].items():
            head = f"{set_name:>10s} {scorer:>7s}"
            if "overall" in result.get("retrieval", {}):
                a2t = result["retrieval"]["overall"]["audio_to_text"]
                print(f"{head}  retrieval R@1 {a2t['R@1']:.3f}  R@5 {a2t['R@5']:.3f}  (N = {a2t['N']})")
            if "overall" in result.get("pooled_retrieval", {}):
                pooled = result["pooled_retrieval"]
                print(f"{head}  R@1 among {pooled['pool']} same-language candidates {pooled['overall']['R@1']:.3f}")
            if "pooled" in result.get("corruption", {}):
                c = result["corruption"]
                print(f"{head}  corruption rho {format_correlation(c['pooled']['spearman'])}; "
                      f"text-prior control {format_correlation(c['other_audio_control']['spearman'])}")
            if "correlation" in result.get("gold", {}):
                print(f"{head}  gold rho(score, true WER) {format_correlation(result['gold']['correlation']['spearman'])}")
            if "accuracy" in result.get("pairs", {}):
                print(f"{head}  minimal pairs {result['pairs']['accuracy']:.3f} (of {result['pairs']['n_pairs']})")
            print(f"{head}  {result['seconds']:.1f} s")
    print(f"report: {out / 'report.md'}")


def _scorers(args: argparse.Namespace, device: str, progress: bool):
    """(scorers by name, the clap model or None)."""
    import torch

    from voiceclap.model import RANDOM_PREFIX, load_model
    from voiceclap.pretrained import default_model_path
    from voiceclap.runtime import quiet_transformers

    from .scorers import AsrScorer, ClapScorer

    quiet_transformers()
    scorers, model = {}, None
    for name in args.scorers:
        if name == "clap":
            model = load_model(args.model, device, args.audio_precision)
            # Where a fitted calibration is stored with the model: its local directory, if it has one.
            model_dir = None
            if args.model is None:
                model_dir = default_model_path()
            elif not args.model.startswith(RANDOM_PREFIX) and Path(args.model).is_dir():
                model_dir = Path(args.model)
            scorers[name] = ClapScorer(model, args.batch_size, progress, model_dir)
        elif name == "asr":
            from .asr_baseline import FasterWhisperTranscriber, TranscriptCache, default_cache_path

            transcriber = FasterWhisperTranscriber(
                args.asr_model, compute_type=args.asr_compute_type, beam_size=args.asr_beam,
                device="cuda" if device.startswith("cuda") else "cpu",
                cpu_threads=torch.get_num_threads(),  # the same threads as the model's, so times compare
            )
            scorers[name] = AsrScorer(transcriber, TranscriptCache(args.asr_cache or default_cache_path()), progress)
        else:
            from .scorers import TeacherScorer

            scorers[name] = TeacherScorer.load(
                device=device, progress=progress, context=args.teacher_context,
                normalization=args.teacher_normalization,
            )
            if args.teacher_calibration:
                scorers[name].teacher.load_calibration(args.teacher_calibration)
    return scorers, model


def eval_from_args(args: argparse.Namespace) -> int:
    """Run ``voiceclap eval``; 0 on success, 2 when the inputs are unusable (the message says why)."""
    import torch

    from .pipeline import EvalOptions, run_evaluation
    from .sets import load_eval_set

    requested = [(role, group) for role in ("heldout", "gold", "pairs") for group in getattr(args, role) or []]
    if not requested:
        print("voiceclap eval: give at least one of --heldout, --gold, --pairs", file=sys.stderr)
        return 2
    progress = not args.no_progress
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        # Scorers first: a wrong --model or a missing ASR install should fail before minutes of decoding.
        scorers, model = _scorers(args, device, progress)
        sets = []
        for role, group in requested:
            name = group[0][0]
            max_clips = args.max_gold_clips or args.max_clips if role == "gold" else args.max_clips
            sets.append(load_eval_set([path for _, path in group], role, name, max_clips, args.seed, progress=progress))
        if len({s.name for s in sets}) < len(sets):
            raise ValueError("two sets share a name: name them NAME=PATH")
    # ManifestError is a ValueError; RuntimeError: faster-whisper or its offline weights missing.
    except (FileNotFoundError, ValueError, RuntimeError) as error:
        print(f"voiceclap eval: {error}", file=sys.stderr)
        return 2
    settings = {k: v for k, v in vars(args).items() if not callable(v)}
    report = run_evaluation(
        scorers, sets, args.out, model=model, model_source=str(args.model or "the shipped default model"),
        options=EvalOptions(args.k_corruptions, args.pool, args.seed, args.n_boot, args.fit_calibration, progress),
        settings={**settings, "device": device},
    )
    _print_summary(report, Path(args.out))
    return 0
