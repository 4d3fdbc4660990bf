"""`voiceclap corpus build`: the corpus, part by part, as WebDataset tar shards in Emilia's layout.

Layout under ``--out`` (default ``data/corpus``)::

    synthetic/{heldout,gold,train}/   the first corpus's robotic voices (:mod:`.parts.synthetic`)
    recorded/{train,dev,test}/        recorded human speech; recorded/report.md (:mod:`.parts.recorded`)
    voices/{heldout,train}/           the better TTS voices (:mod:`.parts.voices`)
    spoken/train/                     spoken negatives (:mod:`.parts.spoken`)
    pairs/{dev,test}/                 the spoken fluent minimal-pair set (:mod:`.parts.pairs`)
    <part>/<split>/shard-NNNNNN.tar   <key>.json + <key>.flac (16 kHz mono 16-bit FLAC) per clip
    <part>/<split>/shard-NNNNNN.stats.json   per-shard counts: the shard is done when this exists
    <part>/plan.json                  the part's parameters and the fingerprint of its clip plan
    fluent/<language>.npz             fluent contexts of the training sentences (annotate, spoken, pairs)
    summary.json, SOURCES.md          what was built, per part and per source with its license

Every part's plan is drawn up front from ``--seed``, so it is identical on every run; then the
shards of every part are written by one process pool, evaluation splits first, training splits
last, each resumable on its own (:mod:`.shards`). The ``annotate`` step then adds fluent text
candidates to every finished training shard (:mod:`.annotate`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from voiceclap.clips import expand_sources
from voiceclap.corpus import augment
from voiceclap.corpus.annotate import AnnotateJob
from voiceclap.corpus.config import PARTS, SPLIT_MODES, BuildConfig
from voiceclap.corpus.licenses import TERMS, terms_of
from voiceclap.corpus.materials import Materials, context_path
from voiceclap.corpus.parts import SHARD_PARTS
from voiceclap.corpus.recorded import READERS, SOURCES
from voiceclap.corpus.sentences import SENTENCE_LANGUAGES
from voiceclap.corpus.shards import (
    ShardJob,
    check_plan,
    fingerprint,
    remove_stale,
    run_jobs,
    shard_jobs,
    stats_path,
    write_json,
)
from voiceclap.corpus.summary import corpus_summary, print_summary, sources_markdown
from voiceclap.corpus.tts import ENGINES

__all__ = ["add_build_arguments", "build_corpus", "build_from_args"]

_ANNOTATE_HELP = "fluent text candidates (--fluent-k) added to every finished training shard (and --annotate)"
_EVALUATION_FIRST = {"train": 1}  # sort key of a split: every evaluation split before any training split


def _plan_part(name: str, config: BuildConfig, materials: Materials, unavailable: dict[str, str]) -> list[ShardJob]:
    """Plan one part, check it against the one recorded in its directory, write its reports; the jobs
    still to run. A part with nothing to build says why in ``unavailable``."""
    part = SHARD_PARTS[name]
    directory = Path(config.out) / name
    plan = part.plan(config, materials)
    if plan.unavailable:
        print(f"{name}: nothing to build: {plan.unavailable}", flush=True)
        unavailable[name] = plan.unavailable
        return []
    if directory.exists():
        remove_stale(directory)
    check_plan(
        directory,
        {
            **plan.description,
            "fingerprint": fingerprint(plan.units, config.shard_size),
            "seed": config.seed,
            "shard_size": config.shard_size,
            "clips": {split: sum(len(unit) for unit in units) for split, units in plan.units.items()},
        },
    )
    for file_name, text in plan.files.items():
        (directory / file_name).write_text(text, encoding="utf-8")
    jobs = shard_jobs(directory, plan.units, config.shard_size, part.render)
    todo = [job for job in jobs if not job.done()]
    print(
        f"{name}: {sum(job.size for job in jobs)} clips in {len(jobs)} shards; {len(jobs) - len(todo)} shards "
        f"already done, {len(todo)} to build",
        flush=True,
    )
    return todo


def _annotate(config: BuildConfig, materials: Materials) -> None:
    out = Path(config.out)
    contexts = {lang: str(context_path(out, lang)) for lang in config.languages if materials.fluent_context(lang)}
    shards = [p for p in sorted(out.glob("*/train/shard-*.tar")) if stats_path(p).exists()]
    shards += [Path(p) for p in expand_sources(config.annotate_shards)] if config.annotate_shards else []
    jobs = [AnnotateJob(str(shard), config.fluent_k, contexts, config.seed) for shard in shards]
    todo = [job for job in jobs if not job.done()]
    for job in todo:  # temporary files of an interrupted rewrite
        for stale in Path(job.path).parent.glob(f"{Path(job.path).name}.tmp-*"):
            stale.unlink()
    print(
        f"annotate: {len(shards)} training shards, {len(shards) - len(todo)} already annotated; contexts for "
        f"{', '.join(contexts) or 'no language'}",
        flush=True,
    )
    run_jobs(todo, config.workers, config.progress, desc="annotating", unit="shard")


def build_corpus(config: BuildConfig) -> dict:
    """Plan every part, write the missing shards, annotate, and write/return the summary."""
    unknown = set(config.parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; the parts are {', '.join(PARTS)}")
    out = Path(config.out)
    materials = Materials(config)
    started = time.time()
    unavailable: dict[str, str] = {}
    jobs = [
        job for name in SHARD_PARTS if name in config.parts for job in _plan_part(name, config, materials, unavailable)
    ]
    jobs.sort(key=lambda job: _EVALUATION_FIRST.get(Path(job.path).parent.name, 0))  # stable: part order kept
    planned = time.time()
    run_jobs(jobs, config.workers, config.progress, desc="synthesizing")
    built = time.time()
    if "annotate" in config.parts:
        _annotate(config, materials)
    clips = sum(job.size for job in jobs)
    summary = corpus_summary(out)
    summary["nothing_to_build"] = unavailable
    summary["build"] = {
        "planning_seconds": round(planned - started, 1),
        "clips": clips,
        "seconds": round(built - planned, 1),
        "clips_per_second": round(clips / (built - planned), 2) if clips else None,
        "annotation_seconds": round(time.time() - built, 1),
    }
    write_json(out / "summary.json", summary)
    (out / "SOURCES.md").write_text(sources_markdown(summary), encoding="utf-8")
    return summary


# ----- command line


def _voice_names(names: list[str]) -> str:
    """Voice names; names of the form base+variant grouped by their variants: ``en-us en-gb +{m1,m2}``."""
    variants: dict[str, list[str]] = {}
    for name in names:
        base, _, variant = name.partition("+")
        variants.setdefault(base, []).append(variant)
    bases: dict[tuple[str, ...], list[str]] = {}
    for base, of_base in variants.items():
        bases.setdefault(tuple(of_base), []).append(base)
    return " ".join(
        " ".join(group) + (f" +{{{','.join(of_base)}}}" if any(of_base) else "") for of_base, group in bases.items()
    )


def sources_help() -> str:
    """Every part, engine (with its voices) and recorded source, with its license, for --help."""
    lines = ["parts (--parts):"]
    lines += [f"  {name:9s} {part.help}" for name, part in SHARD_PARTS.items()]
    lines.append(f"  {'annotate':9s} {_ANNOTATE_HELP}")
    lines.append("\nTTS engines and their voices (commercial use: whether a model trained on them may be sold):")
    for name, engine in ENGINES.items():
        terms = terms_of(name)
        lines.append(f"  {name}: {terms.license}; commercial use {'yes' if terms.commercial_use else 'no'}")
        for language in SENTENCE_LANGUAGES:
            voices = [voice.name for voice in engine.voices(language)]
            if voices:
                lines.append(f"    {language}: {_voice_names(voices)}")
        for voice_id, voice_terms in TERMS.items():
            if voice_id.startswith(f"{name}:"):
                allowed = "yes" if voice_terms.commercial_use else "no"
                lines.append(f"    {voice_id}: {voice_terms.license}; commercial use {allowed}")
    lines.append("\nrecorded sources:")
    for name in READERS:
        info = SOURCES[name]
        lines.append(
            f"  {name} ({', '.join(info.packages)}): {info.license}; commercial use {'yes' if info.commercial_use else 'no'}"
        )
    return "\n".join(lines)


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``corpus build`` options (shared by ``voiceclap corpus build`` and ``python -m voiceclap.corpus``)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = sources_help()
    defaults = BuildConfig()
    parser.add_argument("--out", type=Path, default=defaults.out, help="output directory (default: %(default)s)")
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated parts to build (default: all; see below)"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the whole plan (default: %(default)s)")
    parser.add_argument(
        "--languages",
        default=",".join(defaults.languages),
        help=f"comma-separated subset of {','.join(SENTENCE_LANGUAGES)} (default: all; the synthetic part "
        "speaks de, en, fr, es and it)",
    )
    parser.add_argument(
        "--engines",
        default=",".join(defaults.engines),
        help="comma-separated TTS engines to use (default: %(default)s; missing ones are skipped)",
    )
    parser.add_argument(
        "--commercial-only",
        action="store_true",
        help="leave out every source whose terms forbid selling a model trained on it (uqm, MBROLA but en1); "
        "a different plan, so a different --out",
    )
    parser.add_argument("--workers", type=int, default=defaults.workers, help="processes, one shard each (default: %(default)s)")
    parser.add_argument("--shard-size", type=int, default=defaults.shard_size, help="clips per tar shard (default: %(default)s)")
    parser.add_argument(
        "--max-sentences", type=int, default=None, help="use at most this many sentences per language (small/quick builds)"
    )
    parser.add_argument(
        "--augment",
        choices=tuple(augment.STRENGTHS),
        default=defaults.augment,
        help="noise/reverberation/MP3 degradation of synthesized train and held-out clips (gold clips and "
        "minimal pairs are never degraded; a spoken pair's two clips get the same): mild (default), strong "
        "(the first corpus's setting) or none",
    )
    parser.add_argument(
        "--sources",
        type=Path,
        default=defaults.sources,
        help="where install_corpus_tools.sh put the sentence sources (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    synthetic = parser.add_argument_group("synthetic part")
    synthetic.add_argument("--train-clips", type=int, default=defaults.train_clips, help="(default: %(default)s)")
    synthetic.add_argument("--heldout-clips", type=int, default=defaults.heldout_clips, help="(default: %(default)s)")
    synthetic.add_argument(
        "--gold-clips",
        type=int,
        default=defaults.gold_clips,
        help="clips speaking corrupted held-out sentences with known WER (default: %(default)s)",
    )
    synthetic.add_argument(
        "--split-mode",
        choices=SPLIT_MODES,
        default=defaults.split_mode,
        help="voice-sentence: held-out voices and sentences unseen in training (default); "
        "clip-hash: the seed's split by clip-id hash (voices and sentences shared; the other parts keep "
        "the voice-sentence split)",
    )
    voices = parser.add_argument_group("voices part")
    voices.add_argument("--voices-clips", type=int, default=defaults.voices_clips, help="training clips (default: %(default)s)")
    voices.add_argument(
        "--voices-heldout-clips", type=int, default=defaults.voices_heldout_clips, help="(default: %(default)s)"
    )
    spoken = parser.add_argument_group("spoken part")
    spoken.add_argument(
        "--spoken-clips",
        type=int,
        default=defaults.spoken_clips,
        help="clips of spoken negatives, two per training sentence (default: %(default)s)",
    )
    pairs = parser.add_argument_group("pairs part")
    pairs.add_argument(
        "--pairs-per-language", type=int, default=defaults.pairs_per_language, help="minimal pairs (default: %(default)s)"
    )
    annotate = parser.add_argument_group("annotate step")
    annotate.add_argument(
        "--fluent-k", type=int, default=defaults.fluent_k, help="fluent candidates per clip, at most (default: %(default)s)"
    )
    annotate.add_argument(
        "--annotate",
        dest="annotate_shards",
        action="append",
        default=[],
        metavar="SHARDS",
        help="other training shards to annotate as well (a folder, glob or list; repeatable), e.g. Emilia's",
    )


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    def names(value: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in value.split(",") if part.strip())

    return BuildConfig(
        out=args.out,
        parts=names(args.parts),
        seed=args.seed,
        languages=names(args.languages),
        engines=names(args.engines),
        commercial_only=args.commercial_only,
        workers=args.workers,
        shard_size=args.shard_size,
        max_sentences=args.max_sentences,
        augment=args.augment,
        sources=args.sources,
        progress=not args.no_progress,
        train_clips=args.train_clips,
        heldout_clips=args.heldout_clips,
        gold_clips=args.gold_clips,
        split_mode=args.split_mode,
        voices_clips=args.voices_clips,
        voices_heldout_clips=args.voices_heldout_clips,
        spoken_clips=args.spoken_clips,
        pairs_per_language=args.pairs_per_language,
        fluent_k=args.fluent_k,
        annotate_shards=tuple(args.annotate_shards),
    )


def build_from_args(args: argparse.Namespace) -> int:
    """Run a build from parsed :func:`add_build_arguments` options; returns the exit status."""
    try:
        summary = build_corpus(config_from_args(args))
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"corpus build failed: {error}", file=sys.stderr)
        return 1
    print_summary(summary)
    print(f"summary written to {Path(args.out) / 'summary.json'} and {Path(args.out) / 'SOURCES.md'}")
    return 0
