"""The ``voiceclap`` command; `EXIT_CODES` is the contract every command keeps.

``corpus build``, ``train`` and ``eval`` live in packages the library never imports; their options
are only loaded when one of them is the command, so the rest of the CLI works without them.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pickle
import sys
from pathlib import Path
from typing import NoReturn

from .config import AUDIO_PRECISIONS

EXIT_CODES = """exit codes:
  0    everything asked for was done (every manifest row scored)
  1    the run finished but some rows failed: each is in the output with its error and the
       summary counts them (for a single pair: that pair could not be scored)
  2    nothing could be done: bad arguments, an unreadable or invalid manifest, no model, an
       output that cannot be written or resumed; one line on stderr says why
  130  interrupted"""
MODEL_HELP = (
    "model directory, Hugging Face hub id, or random:<config> (a randomly initialised named "
    "architecture, seeded, for smoke tests: its scores mean nothing); default: the model shipped "
    "with the package"
)
AUDIO_PRECISION_HELP = (
    "what the audio encoder's matrix products run in: auto (default: bfloat16 on a CPU with AMX, where it "
    "is 1.6-1.9x faster with embeddings at cosine >= 0.999 to float32's; float32 elsewhere), float32, bfloat16"
)
ENGINES = ("auto", "traced", "eager")
ENGINE_HELP = (
    "how the clap scorer runs the model: traced (TorchScript made once per model and machine, starts without "
    "transformers: a first score in seconds; float32, CPU), eager (the model itself: bfloat16, GPUs, hub ids); "
    "auto (default): traced for one pair on a CPU from a model directory, eager otherwise"
)

# command -> (module, function adding its options, function running it, help)
LAZY_COMMANDS = {
    "build": ("voiceclap.corpus", "add_build_arguments", "build_from_args",
              "build the corpus: synthetic and recorded speech, spoken negatives, minimal pairs (WebDataset shards)"),
    "train": ("voiceclap.train", "add_train_arguments", "train_from_args",
              "train a model from a recipe (run under torchrun for several processes)"),
    "eval": ("voiceclap.evaluation", "add_eval_arguments", "eval_from_args",
             "evaluate a model: retrieval, synthetic corruption, gold set, ASR-WER baseline, report"),
}


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit code 2."""


# ----- helpers -----


def load_cli_model(spec: str | None, device: str | None = None, audio_precision: str = "auto"):
    """--model through the library's loader (:func:`voiceclap.model.load_model`)."""
    from .model import load_model
    from .runtime import quiet_transformers

    quiet_transformers()
    try:
        return load_model(spec, device, audio_precision)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None


def _load_waveform(path: str):
    from .audio import AudioDecodeError, load_audio

    try:
        return load_audio(path)
    except (AudioDecodeError, OSError) as error:
        message = str(error)
        raise CommandError(message if path in message else f"{path}: {message}") from None


# ----- commands -----


def _traced_engine(args: argparse.Namespace, device) -> bool:
    """--engine: whether the clap scorer runs the traced model (voiceclap.traced)."""
    if args.engine == "eager" or args.scorer != "clap":
        return False
    from_directory = args.model is None or Path(args.model).is_dir()
    can = from_directory and str(device or "cpu") == "cpu" and args.audio_precision != "bfloat16"
    if args.engine == "traced" and not can:
        raise CommandError("--engine traced needs the clap scorer, a model directory, the CPU and float32 audio")
    return can and (args.engine == "traced" or args.manifest is None)


def _load_traced(args: argparse.Namespace):
    """The traced model; under --engine auto, the model itself where tracing fails (said on stderr)."""
    from .traced import CannotTrace, load_traced

    try:
        return load_traced(args.model)
    except FileNotFoundError as error:
        raise CommandError(str(error)) from None
    except CannotTrace as error:
        if args.engine == "traced":
            raise CommandError(f"cannot trace the model: {error}") from None
        print(f"voiceclap: cannot trace the model ({error}); loading it instead", file=sys.stderr)
        return load_cli_model(args.model, "cpu", args.audio_precision)


def _backend(args: argparse.Namespace, device):
    """What `voiceclap score` scores with: the CLAP (--model) or Whisper's decoder (--scorer whisper)."""
    from .scoring import ClapBackend, TeacherBackend

    if args.scorer == "clap":
        if _traced_engine(args, device):
            return ClapBackend(_load_traced(args))
        return ClapBackend(load_cli_model(args.model, device, args.audio_precision))
    from .pretrained import TEACHER_CALIBRATION_PATH
    from .runtime import quiet_transformers
    from .teacher import WhisperTeacher

    quiet_transformers()
    teacher = WhisperTeacher.from_pretrained(device=device or "cpu")
    calibration = args.teacher_calibration or (TEACHER_CALIBRATION_PATH if TEACHER_CALIBRATION_PATH.exists() else None)
    if calibration:
        teacher.load_calibration(calibration)
    return TeacherBackend(teacher)


def cmd_score(args: argparse.Namespace) -> int:
    if args.manifest is not None:
        return _score_manifest(args)
    from .scoring import FLAGS, score_pair

    record = score_pair(_backend(args, args.device), args.audio, args.text, args.language)
    if args.json:
        print(json.dumps(record, ensure_ascii=False))
    if record["error"]:
        print(f"voiceclap: {args.audio}: {record['error']}", file=sys.stderr)
        return 1
    if not args.json:
        # The CLAP's score is a cosine; the whisper scorer's a normalized log-likelihood.
        label = "cosine" if args.scorer == "clap" else "log-likelihood"
        print(f"{label}: {record['score']:.6f}")
        if record.get("estimated_wer") is not None:
            print(f"estimated WER: {record['estimated_wer']:.4f}")
        flags = [flag for flag in FLAGS if record[flag] and flag != "duplicate_id"]
        if flags:
            print(f"flags: {', '.join(flags)}")
    return 0


def _score_manifest(args: argparse.Namespace) -> int:
    from .manifest import read_manifest
    from .runtime import configure_threads
    from .scoring import (
        Shard,
        default_device,
        output_format,
        score_manifest,
    )

    output_format(args.output)  # a wrong extension fails before the model loads
    manifest = read_manifest(args.manifest)  # so does a bad manifest
    shard = Shard.from_env()
    configure_threads(shard.local_world, args.threads)
    summary = score_manifest(
        _backend(args, args.device or default_device(shard)),
        manifest,
        args.output,
        batch_size=args.batch_size,
        batch_seconds=args.batch_seconds,
        resume=args.resume,
        decode_workers=args.decode_workers,
        shard=shard,
    )
    if shard.rank == 0:
        print(summary.format(), file=sys.stderr)
        if args.summary:
            Path(args.summary).write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return summary.exit_code


def cmd_embed(args: argparse.Namespace) -> int:
    import numpy as np

    from .manifest import transcript_problem

    if args.text_file:
        try:
            texts = Path(args.text_file).read_text(encoding="utf-8").split("\n")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"cannot read {args.text_file}: {error}") from None
        texts = texts[:-1] if texts and texts[-1] == "" else texts  # the final newline ends a line
    else:
        texts = args.text
    model = load_cli_model(args.model, args.device, args.audio_precision)
    chunks = []
    if args.audio:
        for start in range(0, len(args.audio), args.batch_size):
            waveforms = [_load_waveform(p) for p in args.audio[start : start + args.batch_size]]
            chunks.append(model.encode_audio(waveforms))
    else:
        for number, text in enumerate(texts, start=1):
            if transcript_problem(text):
                raise CommandError(f"transcript {number} is empty")
        for start in range(0, len(texts), args.batch_size):
            chunks.append(model.encode_text(texts[start : start + args.batch_size]))
    embeddings = np.concatenate([c.float().cpu().numpy() for c in chunks]) if chunks else np.zeros((0, model.config.joint_dim), np.float32)
    np.save(args.output, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {args.output}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .seed_checkpoint import import_seed_checkpoint

    if not Path(args.checkpoint).is_file():
        raise CommandError(f"no such file: {args.checkpoint}")
    try:
        model = import_seed_checkpoint(args.checkpoint, args.config, args.tokenizer)
    except pickle.UnpicklingError as error:
        # torch.load(weights_only=True) stopped at the first thing that is not a tensor or plain
        # data; nothing in the file was executed.
        reason = next((line.strip() for line in str(error).splitlines() if line.strip().startswith("Unsupported")), "")
        raise CommandError(
            f"refused {args.checkpoint}: it holds objects other than tensors, which could run code; "
            f"nothing in it was executed{f' ({reason})' if reason else ''}"
        ) from None
    model.save_pretrained(args.output)
    print(f"converted {args.checkpoint} ({model.config.name}) -> {args.output}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .pretrained import default_model_path

    model = load_cli_model(args.model)
    info = model.describe()
    if args.model is None:
        directory = default_model_path()
    else:
        directory = Path(args.model) if Path(args.model).is_dir() else None  # a hub id or random:
    if directory is not None:
        info["directory"] = str(directory)
        info["files"] = {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()}
    print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


# ----- the parser -----


def _lazy_command(parser: argparse.ArgumentParser, name: str, chosen: bool) -> None:
    """Give `parser` the options of a lazily imported command, if that command is being run."""
    if not chosen:
        return
    module_name, add_name, run_name, _ = LAZY_COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
        add, run = getattr(module, add_name), getattr(module, run_name)
    except (ImportError, AttributeError) as error:
        reason = f"this installation cannot run it ({module_name}: {error})"
        parser.description = f"{parser.description}\n\nUnavailable: {reason}."
        parser.set_defaults(unavailable=reason)
        return
    add(parser)
    parser.set_defaults(func=run)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return number


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    command, subcommand = (words + [None, None])[:2]
    formatter = argparse.RawDescriptionHelpFormatter

    from . import __version__

    parser = argparse.ArgumentParser(
        prog="voiceclap",
        description="VoiceCLAP: reference-free speech/transcript fidelity scores (a substitute for WER).",
        epilog=EXIT_CODES,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"voiceclap {__version__}")
    parser.add_argument("--traceback", action="store_true", help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    score = commands.add_parser(
        "score",
        help="score one (audio, transcript) pair or a whole manifest",
        formatter_class=formatter,
        description=(
            "Cosine similarity between audio and transcript in the joint space: higher means the\n"
            "transcript matches the speech better (and the estimated WER, for a calibrated model).\n\n"
            "  voiceclap score --audio clip.wav --text 'what was said'\n"
            "  voiceclap score --manifest m.tsv -o scores.jsonl [--resume]\n\n"
            "A manifest (.tsv, .csv, .jsonl) has columns audio and text, optionally id, language,\n"
            "system; audio paths are relative to the manifest. Every row ends in the output (.jsonl\n"
            "or .csv) as a score or an error, in input order; a summary per language and system goes\n"
            "to stderr. Under torchrun, ranks share the rows and rank 0 merges the output.\n"
            "Exit: 0 all rows scored, 1 some rows failed, 2 nothing could be done."
        ),
    )
    pair = score.add_argument_group("one pair")
    pair.add_argument("--audio", help="audio file (wav, flac, mp3, ogg/opus, m4a, ...)")
    pair.add_argument("--text", help="its transcript")
    pair.add_argument("--language", help="its language, e.g. en (the whisper scorer needs it)")
    pair.add_argument("--json", action="store_true", help="print the full result record as JSON")
    batch = score.add_argument_group("a manifest")
    batch.add_argument("--manifest", help="manifest file: .tsv, .csv or .jsonl")
    batch.add_argument("-o", "--output", help="output file: .jsonl or .csv (written as it goes)")
    batch.add_argument("--resume", action="store_true", help="keep the rows already in the output, score the rest")
    batch.add_argument("--batch-size", type=_positive, default=16, help="clips per model call (default: %(default)s)")
    batch.add_argument(
        "--batch-seconds", type=_positive_float,
        help="most padded audio per model call, seconds; bounds memory (default: 60 on a CPU, 960 on a GPU)",
    )
    batch.add_argument("--decode-workers", type=_positive, default=2, help="audio decoding threads (default: %(default)s)")
    batch.add_argument("--threads", type=_positive, help="torch threads (default: this machine's cores / ranks on it)")
    batch.add_argument("--summary", help="also write the summary as JSON to this file")
    score.add_argument(
        "--scorer", choices=("clap", "whisper"), default="clap",
        help="clap: the VoiceCLAP model (fast, the default); whisper: the likelihood Whisper base's decoder gives the "
        "transcript (slower, more accurate; needs each clip's language)",
    )
    score.add_argument("--model", help=MODEL_HELP + " (the clap scorer)")
    score.add_argument("--audio-precision", choices=AUDIO_PRECISIONS, default="auto", help=AUDIO_PRECISION_HELP)
    score.add_argument("--engine", choices=ENGINES, default="auto", help=ENGINE_HELP)
    score.add_argument("--teacher-calibration", help="the whisper scorer's score -> WER calibration (default: the shipped one)")
    score.add_argument("--device", help="torch device (default: cuda:<local rank> if available, else cpu)")
    score.set_defaults(func=cmd_score, parser=score)

    embed = commands.add_parser(
        "embed",
        help="embed audio files or transcripts into the joint space (.npy)",
        description="Write L2-normalised joint-space embeddings, one row per input in input order, as a\n"
        "float32 .npy array [N, dim]. Give audio files, transcripts, or a file of transcripts.",
        formatter_class=formatter,
    )
    what = embed.add_mutually_exclusive_group(required=True)
    what.add_argument("--audio", nargs="+", help="audio files")
    what.add_argument("--text", nargs="+", help="transcripts")
    what.add_argument("--text-file", help="UTF-8 file with one transcript per line")
    embed.add_argument("-o", "--output", required=True, help="output .npy file")
    embed.add_argument("--batch-size", type=_positive, default=16, help="inputs per model call (default: %(default)s)")
    embed.add_argument("--model", help=MODEL_HELP)
    embed.add_argument("--audio-precision", choices=AUDIO_PRECISIONS, default="auto", help=AUDIO_PRECISION_HELP)
    embed.add_argument("--device", help="torch device (default: cpu)")
    embed.set_defaults(func=cmd_embed)

    convert = commands.add_parser(
        "convert",
        help="convert the seed's open_clip model.pt into a VoiceCLAP model directory",
        description="Import a seed checkpoint (open_clip layout) strictly: every tensor used, none left at\n"
        "random. The pickle is read with torch.load(weights_only=True): a file holding anything\n"
        "but tensors and plain data is refused and nothing in it runs.",
        formatter_class=formatter,
    )
    convert.add_argument("checkpoint", help="the seed's model.pt")
    convert.add_argument("-o", "--output", required=True, help="model directory to write")
    convert.add_argument("--config", default="whisper-small-mMiniLM", help="architecture name or config JSON (default: %(default)s)")
    convert.add_argument("--tokenizer", help="tokenizer directory or hub id (default: the config's)")
    convert.set_defaults(func=cmd_convert)

    info = commands.add_parser(
        "info",
        help="what a model holds: architecture, parameter counts, calibration, files",
        description="Print a model's configuration, parameter counts per part, whether it is calibrated\n"
        "(scores -> estimated WER) and the files of its directory, as JSON.",
        formatter_class=formatter,
    )
    info.add_argument("--model", help=MODEL_HELP)
    info.set_defaults(func=cmd_info)

    corpus = commands.add_parser("corpus", help="corpus tools (corpus build)", description="Corpus tools.")
    corpus_commands = corpus.add_subparsers(dest="corpus_command", metavar="COMMAND", required=True)
    build = corpus_commands.add_parser("build", help=LAZY_COMMANDS["build"][3], description=LAZY_COMMANDS["build"][3])
    _lazy_command(build, "build", command == "corpus" and subcommand == "build")
    for name in ("train", "eval"):
        sub = commands.add_parser(name, help=LAZY_COMMANDS[name][3], description=LAZY_COMMANDS[name][3])
        _lazy_command(sub, name, command == name)
    return parser


def _check_score_arguments(args: argparse.Namespace) -> None:
    parser = args.parser
    if (args.audio is None) == (args.manifest is None):
        parser.error("give either --audio with --text, or --manifest with -o")
    if args.audio is not None and args.text is None:
        parser.error("--audio needs --text")
    if args.manifest is not None and args.output is None:
        parser.error("--manifest needs -o/--output")


def main(argv: list[str] | None = None) -> int:
    from .runtime import limit_onednn_primitive_cache

    limit_onednn_primitive_cache()
    parser = build_parser(argv)
    # Known args only: an unavailable lazy command has no options, yet its user should hear why
    # it is unavailable rather than that its options are unknown.
    args, unknown = parser.parse_known_args(argv)
    if getattr(args, "unavailable", None):
        print(f"voiceclap: error: {args.command}: {args.unavailable}", file=sys.stderr)
        return 2
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.func is cmd_score:
        _check_score_arguments(args)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print("voiceclap: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # one line for the user; --traceback shows the rest
        if args.traceback:
            raise
        print(f"voiceclap: error: {_one_line(error)}", file=sys.stderr)
        return 2
    if argv is None and args.func is cmd_score and args.manifest is None:
        _exit_now(code)  # the command line's one-pair score (a caller passing argv gets the code back)
    return code


def _exit_now(code: int) -> NoReturn:
    """End the process without the interpreter's teardown. A one-pair score has printed all it has
    to say, and nothing it opened needs closing; tearing down the models, the tokenizer and torch
    took about a second of a first score's few (benchmarks/first_score.py)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _one_line(error: Exception) -> str:
    message = " ".join(str(error).split()) or type(error).__name__
    # Our own errors and the OS's / bad-value ones explain themselves; anything else may be a bug.
    if isinstance(error, (OSError, ValueError)) or type(error).__module__.startswith("voiceclap"):
        return message
    return f"{type(error).__name__}: {message} (run with --traceback for details)"

