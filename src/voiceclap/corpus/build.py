"""Plan and write the synthetic corpus: WebDataset tar shards in Emilia's layout.

Layout under ``--out`` (default ``data/corpus``)::

    heldout/shard-000000.tar ...   unseen voices AND unseen sentences (or a clip-id-hash split)
    gold/shard-000000.tar ...      held-out voices speaking *corrupted* held-out sentences
    train/shard-000000.tar ...     each shard mixes languages, engines and voices
    <split>/shard-NNNNNN.stats.json  per-shard counts, read back for the summary
    plan.json                      the build's parameters and a fingerprint of its clip plan
    summary.json                   clips / hours per split, language, engine, voice

Per clip, ``<key>.json`` carries Emilia's fields ``id``, ``text``, ``language``, ``speaker`` (the
voice id, e.g. ``pico:de-DE``) and ``duration``, plus ``engine``, ``split``, ``rate``, ``pitch``,
``volume``, ``augmentation``; gold clips add ``intended_text`` (= ``text``), ``spoken_text``,
``true_wer`` (WER of spoken against intended, by :func:`voiceclap.metrics.error_rate`),
``edit_fraction`` and ``ops``. ``<key>.flac`` is 16 kHz mono 16-bit FLAC.

The whole clip plan is drawn up front from ``--seed`` (sentences, voices, prosody, augmentation,
corruptions), so it is identical on every run; shards are then synthesized by a process pool in
priority order (held-out, gold, train). A shard is written under a temporary name and renamed when
complete, so an interrupted build resumes by skipping the shards that exist, and a partial build
already has every evaluation split plus the first training shards.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import multiprocessing
import os
import queue
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from voiceclap.clips import Clip, write_shard
from voiceclap.corpus import augment
from voiceclap.corpus.sentences import LANGUAGES, default_sources_dir, load_sentences
from voiceclap.corpus.tts import (
    ENGINES,
    SynthesisError,
    Voice,
    discover_voices,
    synthesize,
)

__all__ = ["BuildConfig", "build_corpus", "plan_corpus"]

SAMPLE_RATE = 16000
SPLITS = ("heldout", "gold", "train")  # also the build order: evaluation splits first
SPLIT_MODES = ("voice-sentence", "clip-hash")
# Requested corruption fractions of gold clips, cycled per language so each level (clean
# included) is equally represented; the measured WER then spreads around each level.
GOLD_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75)
# Prosody ranges: wide enough to vary speakers, narrow enough to stay intelligible.
_RATE = (0.85, 1.25)
_PITCH = (0.85, 1.2)
_VOLUME = (0.3, 1.0)
# espeak-ng variants held out from training, per language (they apply to every language voice).
_HELDOUT_ESPEAK_VARIANTS = 2
_PLAN_VERSION = 1


@dataclass
class BuildConfig:
    out: Path = Path("data/corpus")
    seed: int = 0
    languages: Sequence[str] = LANGUAGES
    engines: Sequence[str] = tuple(ENGINES)
    train_clips: int = 50_000
    heldout_clips: int = 2_500
    gold_clips: int = 1_000
    workers: int = 2
    shard_size: int = 500
    split_mode: str = "voice-sentence"
    max_sentences: int | None = None
    augment: str = "mild"  # a key of augment.STRENGTHS
    sources: Path = field(default_factory=default_sources_dir)
    progress: bool = True


def _hash_int(*parts: object) -> int:
    return int.from_bytes(
        hashlib.sha1(":".join(map(str, parts)).encode("utf-8")).digest()[:8], "big"
    )


def _per_language(total: int, languages: Sequence[str]) -> dict[str, int]:
    base, extra = divmod(total, len(languages))
    return {lang: base + (i < extra) for i, lang in enumerate(languages)}


def _split_voices(
    voices: dict[str, list[Voice]], seed: int
) -> tuple[dict[str, list[Voice]], dict[str, list[Voice]]]:
    """(train voices, held-out voices) per language: one voice of every engine that has several
    voices in a language (MBROLA, flite, English Pico), and for espeak-ng two whole variants."""
    rng = random.Random(f"{seed}:voices")
    variants = sorted(
        {
            v.name.split("+", 1)[1]
            for vs in voices.values()
            for v in vs
            if v.engine == "espeak"
        }
    )
    heldout_variants = set(
        rng.sample(variants, min(_HELDOUT_ESPEAK_VARIANTS, max(0, len(variants) - 1)))
    )
    train, heldout = {}, {}
    for language, language_voices in voices.items():
        held = set()
        for engine in sorted({v.engine for v in language_voices}):
            engine_voices = [v for v in language_voices if v.engine == engine]
            if engine == "espeak":
                held.update(
                    v
                    for v in engine_voices
                    if v.name.split("+", 1)[1] in heldout_variants
                )
            elif len(engine_voices) >= 2:
                held.add(engine_voices[rng.randrange(len(engine_voices))])
        train[language] = [v for v in language_voices if v not in held]
        heldout[language] = [v for v in language_voices if v in held]
        if not train[language] or not heldout[language]:
            raise RuntimeError(
                f"{language}: {len(language_voices)} voice(s) cannot give both training and held-out voices; "
                "install more engines (scripts/install_corpus_tools.sh)"
            )
    return train, heldout


def _split_sentences(
    sentences: list[str], n_heldout: int, seed: int, language: str
) -> tuple[list[str], list[str]]:
    """(train, held-out) sentences: the held-out ones are those with the smallest seeded hash."""
    ranked = sorted(sentences, key=lambda s: _hash_int(seed, "sentence", language, s))
    n_heldout = min(n_heldout, len(ranked) // 4)
    if n_heldout < 2:
        raise RuntimeError(
            f"{language}: only {len(sentences)} sentences; too few for a held-out set"
        )
    return ranked[n_heldout:], ranked[:n_heldout]


class _Cycler:
    """Draws from a list without replacement, reshuffling when exhausted, so every sentence is used
    once before any is repeated."""

    def __init__(self, items: Sequence, rng: random.Random) -> None:
        self.items, self.rng, self.pool = list(items), rng, []

    def next(self):
        if not self.pool:
            self.pool = self.items[:]
            self.rng.shuffle(self.pool)
        return self.pool.pop()


def _pick_voice(voices: list[Voice], rng: random.Random) -> Voice:
    # Engine first, uniformly, then a voice of it: otherwise espeak's many variants would swamp
    # the four MBROLA voices and the single Pico voice of a language.
    engines = sorted({v.engine for v in voices})
    engine = engines[rng.randrange(len(engines))]
    of_engine = [v for v in voices if v.engine == engine]
    return of_engine[rng.randrange(len(of_engine))]


def _clip(
    key: str,
    split: str,
    language: str,
    voice: Voice,
    text: str,
    rng: random.Random,
    seed: int,
    strength: str | None,
) -> dict:
    return {
        "id": key,
        "text": text,
        "language": language,
        "speaker": voice.id,
        "engine": voice.engine,
        "split": split,
        "rate": round(rng.uniform(*_RATE), 3),
        "pitch": round(rng.uniform(*_PITCH), 3),
        "volume": round(rng.uniform(*_VOLUME), 3),
        "augmentation": augment.draw(rng, strength).as_json() if strength else {},
        "seed": _hash_int(seed, "clip", key) & 0x7FFFFFFF,
    }


def _plan_split(
    split: str,
    counts: dict[str, int],
    sentences: dict[str, list[str]],
    voices: dict[str, list[Voice]],
    seed: int,
    strength: str,
) -> list[dict]:
    rng = random.Random(f"{seed}:{split}")
    clips = []
    for language, count in counts.items():
        cycler = _Cycler(sentences[language], rng)
        for _ in range(count):
            clips.append((language, _pick_voice(voices[language], rng), cycler.next()))
    # Shuffle so that every shard mixes languages and voices (training reads shards in order).
    rng.shuffle(clips)
    return [
        _clip(
            f"{language.upper()}_{split}_{i:07d}",
            split,
            language,
            voice,
            text,
            rng,
            seed,
            strength,
        )
        for i, (language, voice, text) in enumerate(clips)
    ]


def _plan_gold(
    counts: dict[str, int],
    sentences: dict[str, list[str]],
    voices: dict[str, list[Voice]],
    vocab_sentences: dict[str, list[str]],
    seed: int,
) -> list[dict]:
    # Imported here: the corruption stack (jiwer, scipy) is only needed for gold clips.
    from voiceclap.corruption import build_vocabulary, corrupt_transcript
    from voiceclap.metrics import error_rate

    rng = random.Random(f"{seed}:gold")
    clips = []
    for language, count in counts.items():
        vocabulary = build_vocabulary(
            vocab_sentences[language], language, max_size=20000
        )
        cycler = _Cycler(sentences[language], rng)
        for i in range(count):
            intended = cycler.next()
            fraction = GOLD_FRACTIONS[i % len(GOLD_FRACTIONS)]
            if fraction > 0:
                corruption = corrupt_transcript(
                    intended, language, fraction, vocabulary, rng
                )
                spoken, edit_fraction, ops = (
                    corruption.text,
                    corruption.edit_fraction,
                    list(corruption.ops),
                )
            else:
                spoken, edit_fraction, ops = intended, 0.0, []
            voice = _pick_voice(voices[language], rng)
            key = f"{language.upper()}_gold_{len(clips):07d}"
            # No added noise/reverb/codec on gold clips: their label is what the voice says, and
            # heavy noise could mask a word and make the by-construction WER wrong.
            clip = _clip(
                key, "gold", language, voice, intended, rng, seed, strength=None
            )
            clip.update(
                intended_text=intended,
                spoken_text=spoken,
                true_wer=error_rate(intended, spoken, language),
                edit_fraction=edit_fraction,
                ops=ops,
            )
            clips.append(clip)
    return clips


def plan_corpus(config: BuildConfig) -> tuple[dict[str, list[dict]], dict]:
    """The full clip plan per split, and a description of it (voices, sentence pools)."""
    languages = list(config.languages)
    sentences = load_sentences(
        languages, config.sources, max_sentences=config.max_sentences
    )
    voices = discover_voices(languages, config.engines)
    missing = [lang for lang in languages if not voices[lang]]
    if missing:
        raise RuntimeError(
            f"no working TTS voice for {missing}; run scripts/install_corpus_tools.sh"
        )

    heldout_counts = _per_language(config.heldout_clips, languages)
    gold_counts = _per_language(config.gold_clips, languages)
    train_counts = _per_language(config.train_clips, languages)
    info: dict = {"split_mode": config.split_mode, "languages": languages}

    if config.split_mode == "voice-sentence":
        train_voices, heldout_voices = _split_voices(voices, config.seed)
        train_sentences, heldout_sentences, gold_sentences = {}, {}, {}
        for lang in languages:
            n_eval = heldout_counts[lang] + gold_counts[lang]
            train_sentences[lang], held = _split_sentences(
                sentences[lang], n_eval, config.seed, lang
            )
            # Gold and held-out clips use different held-out sentences where the pool allows.
            n_gold = max(1, round(len(held) * gold_counts[lang] / max(1, n_eval)))
            n_gold = min(n_gold, len(held) - 1)
            gold_sentences[lang], heldout_sentences[lang] = held[:n_gold], held[n_gold:]
        plan = {
            "heldout": _plan_split(
                "heldout",
                heldout_counts,
                heldout_sentences,
                heldout_voices,
                config.seed,
                config.augment,
            ),
            "gold": _plan_gold(
                gold_counts, gold_sentences, heldout_voices, sentences, config.seed
            ),
            "train": _plan_split(
                "train",
                train_counts,
                train_sentences,
                train_voices,
                config.seed,
                config.augment,
            ),
        }
        info["heldout_voices"] = {
            lang: [v.id for v in vs] for lang, vs in heldout_voices.items()
        }
        info["train_voices"] = {
            lang: [v.id for v in vs] for lang, vs in train_voices.items()
        }
        info["sentences"] = {
            lang: {
                "train": len(train_sentences[lang]),
                "heldout": len(heldout_sentences[lang]),
                "gold": len(gold_sentences[lang]),
            }
            for lang in languages
        }
    elif config.split_mode == "clip-hash":
        # The seed's protocol: one pool of clips, held out by a hash of the clip id, so voices and
        # sentences are shared between the splits (measures fit, not generalisation).
        counts = {lang: train_counts[lang] + heldout_counts[lang] for lang in languages}
        pooled = _plan_split(
            "all", counts, sentences, voices, config.seed, config.augment
        )
        fraction = config.heldout_clips / max(
            1, config.train_clips + config.heldout_clips
        )
        plan = {"heldout": [], "train": []}
        for clip in pooled:
            split = (
                "heldout"
                if _hash_int(config.seed, "clip-split", clip["id"]) / 2**64 < fraction
                else "train"
            )
            clip["split"] = split
            clip["id"] = clip["id"].replace("_all_", f"_{split}_")
            plan[split].append(clip)
        gold_sentences = {
            # A language with no held-out clip (tiny builds) falls back to all its sentences.
            lang: sorted({c["text"] for c in plan["heldout"] if c["language"] == lang})
            or sentences[lang]
            for lang in languages
        }
        plan["gold"] = _plan_gold(
            gold_counts, gold_sentences, voices, sentences, config.seed
        )
        info["voices"] = {lang: [v.id for v in vs] for lang, vs in voices.items()}
        info["sentences"] = {lang: len(sentences[lang]) for lang in languages}
    else:
        raise ValueError(
            f"split mode must be one of {SPLIT_MODES}, got {config.split_mode!r}"
        )
    return {split: plan[split] for split in SPLITS}, info


def _fingerprint(plan: dict[str, list[dict]], shard_size: int) -> str:
    digest = hashlib.sha256(f"v{_PLAN_VERSION}:{shard_size}".encode())
    for split in SPLITS:
        for clip in plan[split]:
            digest.update(
                json.dumps(clip, sort_keys=True, ensure_ascii=False).encode("utf-8")
            )
    return digest.hexdigest()


# ---------------------------------------------------------------- shard workers

_progress_queue = None


def _init_worker(progress) -> None:
    global _progress_queue
    _progress_queue = progress


def _render(clip: dict) -> tuple[bytes, float]:
    """Synthesize one planned clip: (FLAC bytes, duration in seconds)."""
    voice = Voice.from_id(clip["speaker"], clip["language"])
    text = clip.get("spoken_text", clip["text"])
    audio, sr = synthesize(text, voice, clip["rate"], clip["pitch"], clip["volume"])
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)
    audio = augment.apply(
        audio, SAMPLE_RATE, augment.Augmentation(**clip["augmentation"]), clip["seed"]
    )
    buffer = io.BytesIO()
    sf.write(buffer, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return buffer.getvalue(), len(audio) / SAMPLE_RATE


def _record(clip: dict, duration: float) -> Clip:
    """A planned clip as the shared clip record: the text is what the audio says."""
    extra = {k: v for k, v in clip.items() if k not in ("id", "text", "language", "speaker", "seed", "spoken_text",
                                                          "intended_text", "true_wer")}
    return Clip(
        clip["id"],
        clip.get("spoken_text", clip["text"]),
        clip["language"],
        duration=round(duration, 3),
        speaker=clip["speaker"],
        source=clip["engine"],
        intended_text=clip.get("intended_text"),
        true_wer=clip.get("true_wer"),
        extra=extra,
    )


def _write_shard(job: tuple[str, list[dict]]) -> dict:
    """Write one shard (atomically, see voiceclap.clips.write_shard) and its stats file; returns the stats."""
    path_str, clips = job
    path = Path(path_str)
    stats: dict = {
        "shard": f"{path.parent.name}/{path.name}",
        "clips": 0,
        "seconds": 0.0,
        "failed": [],
        "by_language": Counter(),
        "by_voice": Counter(),
        "seconds_by_language": Counter(),
    }
    pending = 0

    def rendered():
        nonlocal pending
        for clip in clips:
            try:
                flac, duration = _render(clip)
            except SynthesisError as error:
                stats["failed"].append({"id": clip["id"], "error": str(error)[:200]})
                continue
            finally:
                pending += 1
                if _progress_queue is not None and pending >= 10:
                    _progress_queue.put(pending)
                    pending = 0
            stats["clips"] += 1
            stats["seconds"] += duration
            stats["by_language"][clip["language"]] += 1
            stats["seconds_by_language"][clip["language"]] += duration
            stats["by_voice"][clip["speaker"]] += 1
            yield _record(clip, duration), flac

    write_shard(path, rendered())
    if _progress_queue is not None and pending:
        _progress_queue.put(pending)
    # The stats file comes last, atomically: a shard is done when its stats file exists.
    stats_path = _stats_path(path)
    stats_tmp = stats_path.with_name(f"{stats_path.name}.tmp-{os.getpid()}")
    stats_tmp.write_text(json.dumps(stats, indent=1, ensure_ascii=False))
    os.replace(stats_tmp, stats_path)
    return stats


def _stats_path(shard: Path) -> Path:
    return shard.with_name(shard.name.replace(".tar", ".stats.json"))


# ---------------------------------------------------------------- driver


def _shard_jobs(
    out: Path, plan: dict[str, list[dict]], shard_size: int
) -> list[tuple[str, list[dict]]]:
    jobs = []
    for split in SPLITS:
        clips = plan[split]
        for index in range(math.ceil(len(clips) / shard_size)):
            path = out / split / f"shard-{index:06d}.tar"
            jobs.append(
                (str(path), clips[index * shard_size : (index + 1) * shard_size])
            )
    return jobs


def _check_plan_file(out: Path, description: dict) -> None:
    plan_path = out / "plan.json"
    if plan_path.exists():
        previous = json.loads(plan_path.read_text())
        if previous.get("fingerprint") != description["fingerprint"]:
            recorded = ", ".join(
                f"{key}={previous[key]}"
                for key in ("seed", "clips", "shard_size", "max_sentences", "augment")
                if key in previous
            )
            raise RuntimeError(
                f"{out} holds a build with a different plan ({recorded}); resume it with the "
                "same arguments, installed voices and sources, or choose a new --out"
            )
    else:
        plan_path.write_text(json.dumps(description, indent=1, ensure_ascii=False))


def _run_jobs(jobs: list[tuple[str, list[dict]]], workers: int, progress: bool) -> None:
    total = sum(len(clips) for _, clips in jobs)
    bar = tqdm(
        total=total,
        unit="clip",
        disable=not progress,
        mininterval=1 if sys.stderr.isatty() else 30,
        desc="synthesizing",
        dynamic_ncols=True,
    )
    if workers <= 1:
        for job in jobs:
            _write_shard(job)
            bar.update(len(job[1]))
        bar.close()
        return
    context = multiprocessing.get_context("fork")
    progress = (
        context.Queue()
    )  # workers report finished clips here, for a per-clip progress bar
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set() or not progress.empty():
            try:
                bar.update(progress.get(timeout=0.5))
            except queue.Empty:
                continue

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    # SIGTERM (kill, a scheduler ending the job) unwinds like Ctrl-C, so the pool below terminates
    # its workers instead of leaving them orphaned and still writing shards.
    previous_handler = signal.signal(
        signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum)
    )
    try:
        with context.Pool(
            workers, initializer=_init_worker, initargs=(progress,)
        ) as pool:
            # Tasks are handed out in submission order (chunksize 1), which keeps the priority order:
            # held-out and gold shards first; results arrive as shards finish.
            for stats in pool.imap_unordered(_write_shard, jobs, chunksize=1):
                bar.write(
                    f"finished {stats['shard']}: {stats['clips']} clips, {stats['seconds'] / 3600:.2f} h"
                    + (f", {len(stats['failed'])} failed" if stats["failed"] else "")
                )
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        stop.set()
        reader.join()
        bar.close()


def corpus_summary(out: Path) -> dict:
    """Totals over the finished shards of ``out`` (reads the per-shard stats files)."""
    summary: dict = {
        "clips": 0,
        "hours": 0.0,
        "failed": 0,
        "splits": {},
        "by_language": Counter(),
        "hours_by_language": Counter(),
        "by_engine": Counter(),
        "by_voice": Counter(),
    }
    for split in SPLITS:
        entry = {
            "shards": 0,
            "clips": 0,
            "hours": 0.0,
            "by_language": Counter(),
            "voices": Counter(),
        }
        for stats_path in sorted((out / split).glob("shard-*.stats.json")):
            stats = json.loads(stats_path.read_text())
            entry["shards"] += 1
            entry["clips"] += stats["clips"]
            entry["hours"] += stats["seconds"] / 3600
            entry["by_language"].update(stats["by_language"])
            entry["voices"].update(stats["by_voice"])
            summary["failed"] += len(stats["failed"])
            summary["hours_by_language"].update(
                {k: v / 3600 for k, v in stats["seconds_by_language"].items()}
            )
        summary["clips"] += entry["clips"]
        summary["hours"] += entry["hours"]
        summary["by_language"].update(entry["by_language"])
        summary["by_voice"].update(entry["voices"])
        for voice, n in entry["voices"].items():
            summary["by_engine"][voice.split(":", 1)[0]] += n
        entry["hours"] = round(entry["hours"], 3)
        entry["voices"] = dict(sorted(entry["voices"].items()))
        entry["by_language"] = dict(sorted(entry["by_language"].items()))
        summary["splits"][split] = entry
    summary["hours"] = round(summary["hours"], 3)
    summary["hours_by_language"] = {
        k: round(v, 3) for k, v in sorted(summary["hours_by_language"].items())
    }
    for key in ("by_language", "by_engine", "by_voice"):
        summary[key] = dict(sorted(summary[key].items()))
    return summary


def build_corpus(config: BuildConfig) -> dict:
    """Plan, synthesize the missing shards, and write/return the summary."""
    started = time.time()
    out = Path(config.out)
    plan, info = plan_corpus(config)
    info.update(
        fingerprint=_fingerprint(plan, config.shard_size),
        seed=config.seed,
        shard_size=config.shard_size,
        clips={split: len(plan[split]) for split in SPLITS},
        max_sentences=config.max_sentences,
        augment=config.augment,
    )
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        for stale in (out / split).glob("*.tmp-*"):  # left by an interrupted run
            stale.unlink()
    _check_plan_file(out, info)

    jobs = _shard_jobs(out, plan, config.shard_size)
    todo = [job for job in jobs if not _stats_path(Path(job[0])).exists()]
    todo_clips = sum(len(clips) for _, clips in todo)
    print(
        f"plan: {sum(info['clips'].values())} clips in {len(jobs)} shards ({info['clips']}); "
        f"{len(jobs) - len(todo)} shards already done, {len(todo)} to build with {config.workers} worker(s)",
        flush=True,
    )
    synth_started = time.time()
    _run_jobs(todo, config.workers, config.progress)
    elapsed = time.time() - synth_started

    summary = corpus_summary(out)
    summary.update(
        plan={key: info[key] for key in info if key != "fingerprint"},
        fingerprint=info["fingerprint"],
        built_clips=todo_clips,
        synthesis_seconds=round(elapsed, 1),
        clips_per_second=round(todo_clips / elapsed, 2)
        if elapsed > 0 and todo_clips
        else None,
        total_seconds=round(time.time() - started, 1),
    )
    (out / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def print_summary(summary: dict, stream=sys.stdout) -> None:
    print(
        f"corpus: {summary['clips']} clips, {summary['hours']:.2f} h, {summary['failed']} failed",
        file=stream,
    )
    for split, entry in summary["splits"].items():
        langs = ", ".join(f"{k} {v}" for k, v in entry["by_language"].items())
        print(
            f"  {split:8s} {entry['clips']:7d} clips {entry['hours']:7.2f} h  {entry['shards']} shards  "
            f"{len(entry['voices'])} voices  ({langs})",
            file=stream,
        )
    print(
        "  engines: " + ", ".join(f"{k} {v}" for k, v in summary["by_engine"].items()),
        file=stream,
    )
    print(
        "  hours per language: "
        + ", ".join(f"{k} {v:.2f}" for k, v in summary["hours_by_language"].items()),
        file=stream,
    )
    if summary.get("clips_per_second"):
        print(
            f"  built {summary['built_clips']} clips in {summary['synthesis_seconds']:.0f} s "
            f"({summary['clips_per_second']} clips/s)",
            file=stream,
        )


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``corpus build`` options (shared by ``voiceclap corpus build`` and ``python -m voiceclap.corpus``)."""
    defaults = BuildConfig()
    parser.add_argument(
        "--out",
        type=Path,
        default=defaults.out,
        help="output directory (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=defaults.seed,
        help="seed of the whole plan (default: %(default)s)",
    )
    parser.add_argument(
        "--languages",
        default=",".join(defaults.languages),
        help=f"comma-separated subset of {','.join(LANGUAGES)} (default: all)",
    )
    parser.add_argument(
        "--engines",
        default=",".join(defaults.engines),
        help="comma-separated TTS engines to use (default: %(default)s; missing ones are skipped)",
    )
    parser.add_argument(
        "--train-clips",
        type=int,
        default=defaults.train_clips,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--heldout-clips",
        type=int,
        default=defaults.heldout_clips,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--gold-clips",
        type=int,
        default=defaults.gold_clips,
        help="clips speaking corrupted held-out sentences with known WER (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=defaults.workers,
        help="synthesis processes, one shard each (default: %(default)s)",
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        default=defaults.shard_size,
        help="clips per tar shard (default: %(default)s)",
    )
    parser.add_argument(
        "--split-mode",
        choices=SPLIT_MODES,
        default=defaults.split_mode,
        help="voice-sentence: held-out voices and sentences unseen in training (default); "
        "clip-hash: the seed's split by clip-id hash (voices and sentences shared)",
    )
    parser.add_argument(
        "--max-sentences",
        type=int,
        default=None,
        help="use at most this many sentences per language (small/quick builds)",
    )
    parser.add_argument(
        "--augment",
        choices=tuple(augment.STRENGTHS),
        default=defaults.augment,
        help="noise/reverberation/MP3 degradation of train and held-out clips (gold clips "
        "are never degraded): mild (default), strong (the first corpus's setting) or none",
    )
    parser.add_argument(
        "--sources",
        type=Path,
        default=defaults.sources,
        help="where install_corpus_tools.sh put the sentence sources (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    def names(value: str) -> tuple[str, ...]:
        return tuple(part.strip() for part in value.split(",") if part.strip())

    return BuildConfig(
        out=args.out,
        seed=args.seed,
        languages=names(args.languages),
        engines=names(args.engines),
        train_clips=args.train_clips,
        heldout_clips=args.heldout_clips,
        gold_clips=args.gold_clips,
        workers=args.workers,
        shard_size=args.shard_size,
        split_mode=args.split_mode,
        max_sentences=args.max_sentences,
        augment=args.augment,
        sources=args.sources,
        progress=not args.no_progress,
    )


def build_from_args(args: argparse.Namespace) -> int:
    """Run a build from parsed :func:`add_build_arguments` options; returns the exit status."""
    try:
        summary = build_corpus(config_from_args(args))
    except (RuntimeError, ValueError, FileNotFoundError) as error:
        print(f"corpus build failed: {error}", file=sys.stderr)
        return 1
    print_summary(summary)
    print(f"summary written to {Path(args.out) / 'summary.json'}")
    return 0
