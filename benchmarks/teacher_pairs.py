"""Does Whisper's decoder (voiceclap.teacher) hear which sentence of a minimal pair was said?

``benchmarks/data/minimal_pairs.tsv`` holds sentence pairs that differ in one word (en, de, fr). Each
sentence of each pair is spoken by each TTS voice; a trial is one clip scored against both sentences,
right when the said one scores higher (ties count half). Both sentences of a pair are said, so a text
that is merely more likely a priori wins one trial of the pair and loses the other.

Per context (30-s padded or short) it reports pair accuracy for every normalization, from one encoder
pass per clip: the clip's own likelihoods, another clip's (the same voice saying the next pair's
sentence) and silence's; and the time of the default path (encoder + decoder for both candidates).
``--asr`` adds the ASR-WER baseline on the same clips: faster-whisper, int8, greedy, language given;
right when WER(said) < WER(other).

    python benchmarks/teacher_pairs.py --contexts short full --asr --threads 1
"""

import argparse
import csv
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch

from voiceclap import audio as A
from voiceclap.corpus.tts import Voice, synthesize
from voiceclap.metrics import error_rate
from voiceclap.teacher import WhisperTeacher, normalized_scores

PAIRS = Path(__file__).parent / "data" / "minimal_pairs.tsv"
VOICES = {
    "en": [Voice("espeak", "en-us+m3", "en"), Voice("pico", "en-US", "en")],
    "de": [Voice("espeak", "de+m3", "de"), Voice("pico", "de-DE", "de")],
    "fr": [Voice("espeak", "fr+m3", "fr"), Voice("pico", "fr-FR", "fr")],
}
NORMALIZATIONS = ("mean", "mean_without_end", "sum", "pmi_other", "pmi_silence")


def read_pairs(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def first_pairs(pairs: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    kept, seen = [], defaultdict(int)
    for pair in pairs:
        seen[pair["language"]] += 1
        if seen[pair["language"]] <= limit:
            kept.append(pair)
    return kept


def synthesize_trials(pairs: list[dict[str, str]], engines: set[str]) -> list[dict]:
    """One trial per (pair, said sentence, voice), in order of voice then pair."""
    trials = []
    by_language = defaultdict(list)
    for pair in pairs:
        by_language[pair["language"]].append(pair)
    for language, rows in by_language.items():
        for voice in VOICES[language]:
            if voice.engine not in engines:
                continue
            for index, pair in enumerate(rows):
                texts = [pair["first"], pair["second"]]
                for said in (0, 1):
                    waveform, sr = synthesize(texts[said], voice)
                    trials.append({"language": language, "voice": voice.id, "pair": index, "said": said,
                                   "texts": texts, "audio": A.to_mono_16k(waveform, sr)})
    return trials


def right(scores: np.ndarray, said: int) -> float:
    """1 when the said text scores higher, 0.5 on a tie."""
    other = 1 - said
    return 1.0 if scores[said] > scores[other] else 0.5 if scores[said] == scores[other] else 0.0


def teacher_trials(teacher: WhisperTeacher, trials: list[dict]) -> tuple[dict[str, list[float]], dict]:
    """Per normalization, one outcome per trial; and the default path's timings."""
    outcomes: dict[str, list[float]] = defaultdict(list)
    seconds = {"encoder": 0.0, "decoder": 0.0, "audio": 0.0}
    encoded = {}
    for trial in trials:
        start = time.perf_counter()
        encoded[(trial["voice"], trial["pair"], trial["said"])] = teacher.encode(trial["audio"])
        seconds["encoder"] += time.perf_counter() - start
        seconds["audio"] += len(trial["audio"]) / A.SAMPLE_RATE
    pairs_per_voice = {voice: n // 2 for voice, n in Counter(t["voice"] for t in trials).items()}  # 2 said per pair
    for trial in trials:
        own = encoded[(trial["voice"], trial["pair"], trial["said"])]
        start = time.perf_counter()
        likelihoods = teacher.log_likelihoods(own, trial["texts"], trial["language"])
        seconds["decoder"] += time.perf_counter() - start
        next_pair = (trial["pair"] + 1) % pairs_per_voice[trial["voice"]]
        other = teacher.log_likelihoods(encoded[(trial["voice"], next_pair, trial["said"])], trial["texts"],
                                        trial["language"])
        silence = teacher.log_likelihoods(teacher.silence_like(own), trial["texts"], trial["language"])
        scores = {
            "mean": normalized_scores(likelihoods, "mean"),
            "mean_without_end": np.array([t[:-1].mean() for t in likelihoods.token_log_probs]),
            "sum": normalized_scores(likelihoods, "sum"),
            "pmi_other": normalized_scores(likelihoods, "pmi_other", other),
            "pmi_silence": normalized_scores(likelihoods, "pmi_silence", silence),
        }
        for name, values in scores.items():
            outcomes[name].append(right(values, trial["said"]))
    return outcomes, seconds


def asr_trials(trials: list[dict], threads: int) -> tuple[list[float], float]:
    from voiceclap.evaluation.asr_baseline import FasterWhisperTranscriber

    transcriber = FasterWhisperTranscriber(compute_type="int8", beam_size=1, cpu_threads=threads)
    outcomes, seconds = [], 0.0
    for trial in trials:
        start = time.perf_counter()
        hypothesis = transcriber.transcribe(trial["audio"], trial["language"])
        seconds += time.perf_counter() - start
        wers = np.array([-error_rate(text, hypothesis, trial["language"]) for text in trial["texts"]])
        outcomes.append(right(wers, trial["said"]))
    return outcomes, seconds


def accuracy_row(label: str, outcomes: list[float], trials: list[dict]) -> str:
    by_language = defaultdict(list)
    by_engine = defaultdict(list)
    for outcome, trial in zip(outcomes, trials, strict=True):
        by_language[trial["language"]].append(outcome)
        by_engine[trial["voice"].split(":")[0]].append(outcome)
    cells = [f"{np.mean(outcomes):.3f}"] + [f"{np.mean(by_language[k]):.3f}" for k in sorted(by_language)]
    cells += [f"{np.mean(by_engine[k]):.3f}" for k in sorted(by_engine)]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=Path, default=PAIRS)
    parser.add_argument("--contexts", nargs="*", default=["short", "full"])
    parser.add_argument("--engines", nargs="+", default=["espeak", "pico"])
    parser.add_argument("--asr", action="store_true", help="also the ASR-WER baseline on the same clips")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="pairs per language (default: all)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    pairs = read_pairs(args.pairs)
    if args.limit:
        pairs = first_pairs(pairs, args.limit)
    trials = synthesize_trials(pairs, set(args.engines))
    languages = sorted({t["language"] for t in trials})
    engines = sorted({t["voice"].split(":")[0] for t in trials})
    print(f"{len(trials)} trials ({len(pairs)} pairs x 2 said x voices), {args.threads} thread(s)")
    header = "| scorer | all | " + " | ".join(languages + engines) + " |"
    rows, speed = [], []
    for context in args.contexts:
        teacher = WhisperTeacher.from_pretrained(context=context)
        outcomes, seconds = teacher_trials(teacher, trials)
        rows += [accuracy_row(f"teacher {context}, {name}", outcomes[name], trials) for name in NORMALIZATIONS]
        total = seconds["encoder"] + seconds["decoder"]
        speed.append(f"| teacher {context} (encoder + 2 candidates) | {len(trials) / total:.2f} | "
                     f"{2 * len(trials) / total:.2f} | {seconds['encoder'] / len(trials):.3f} | "
                     f"{seconds['decoder'] / (2 * len(trials)):.3f} | {seconds['audio'] / total:.1f} |")
    if args.asr:
        outcomes, seconds = asr_trials(trials, args.threads)
        rows.append(accuracy_row("ASR-WER (faster-whisper int8, beam 1)", outcomes, trials))
        speed.append(f"| ASR-WER (one transcription per clip) | {len(trials) / seconds:.2f} | "
                     f"{2 * len(trials) / seconds:.2f} | - | - | {sum(len(t['audio']) for t in trials) / A.SAMPLE_RATE / seconds:.1f} |")
    print("\nPair accuracy\n\n" + header + "\n|" + "---|" * (2 + len(languages) + len(engines)))
    print("\n".join(rows))
    print("\nSpeed\n\n| scorer | clips/s | candidates/s | encoder s/clip | decoder s/candidate | audio s per s |\n"
          "|---|---|---|---|---|---|")
    print("\n".join(speed))


if __name__ == "__main__":
    main()
