"""Which TTS voices are good enough for the corpus: whisper-base's error rates on each voice's speech
with the language given -- WER (CER for character languages such as Japanese) by
:func:`voiceclap.metrics.error_rate`, and the character error rate by
:func:`voiceclap.metrics.character_error_rate` -- and the voice's real-time factor (synthesis
seconds per second of audio).

A voice is admitted when its mean character error rate over clean synthesized sentences of its
language is at most :data:`MAX_CER` (:data:`MAX_CER_CHARACTER_LANGUAGES` for Japanese and the other
languages written without spaces). The rates measure the voice *and* whisper-base, which is weaker
than the voices in some languages: it misspells words and misplaces word boundaries, which WER
counts as whole wrong words and CER does not. Languages whisper does not know (Kyrgyz, Esperanto)
cannot be checked, and their voices are not admitted.

Sentences come from :func:`voiceclap.corpus.sentences.load_sentences` where a language has a
source; for the others a dozen everyday sentences written for this check (never corpus text).

``python -m voiceclap.corpus voices --languages ru uk --engines rhvoice --out voices.json``
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from voiceclap.audio import to_mono_16k
from voiceclap.corpus.sentences import SENTENCE_LANGUAGES, load_sentences
from voiceclap.corpus.tts import ENGINES, PROBE_TEXT, SynthesisError, Voice, discover_voices, synthesize
from voiceclap.metrics import character_error_rate, error_rate
from voiceclap.text import uses_characters

__all__ = [
    "MAX_CER",
    "MAX_CER_CHARACTER_LANGUAGES",
    "VoiceCheck",
    "add_voices_arguments",
    "check_sentences",
    "check_voice",
    "voices_from_args",
]

#: Admission rule: mean whisper-base character error rate on clean speech. The corpus labels say
#: the audio speaks its text; a voice above this loses too much of it for that to hold. For scale:
#: real read Russian speech (festvox-ru) scores 0.04, the RHVoice voices 0.03-0.09, espeak-ng in the
#: languages RHVoice adds 0.31-0.60.
MAX_CER = 0.1
#: Japanese (and Chinese) CER also counts the ASR's choice among homophone kanji (両替 heard right
#: but written 両会), which a listener does not get wrong: Open JTalk's clean speech scores 0.14-0.17
#: with errors of that kind, espeak-ng's Japanese 3.8.
MAX_CER_CHARACTER_LANGUAGES = 0.2
_SOURCE_POOL = 2000  # the first sentences of a source, sampled from so the check is not one fortune file

# Everyday sentences for languages without a sentence source: measurement only.
_CHECK_SENTENCES = {
    "mk": (
        "Утрово пиев кафе во кујната.",
        "Мојата сестра работи како учителка во мало училиште.",
        "Ќе одиме на море на крајот од летото.",
        "Овој автобус оди во центарот на градот.",
        "Баба ми направи многу вкусна торта.",
        "Децата си играат во паркот покрај реката.",
        "Не знам каде ги оставив клучевите.",
        "Наесен дрвјата ги губат лисјата.",
        "Татко ми чита весник после ручекот.",
        "Те молам, затвори го прозорецот, студено е.",
        "Нашата мачка сака да спие на каучот.",
        "Утре ќе врне дожд и ќе дува силен ветер.",
    ),
    "pt": (
        "Hoje de manhã eu tomei café na cozinha.",
        "Minha irmã trabalha como professora numa escola pequena.",
        "Nós vamos viajar para a praia no fim do verão.",
        "Este ônibus vai para o centro da cidade.",
        "A avó fez um bolo de chocolate delicioso.",
        "As crianças estão brincando no parque perto do rio.",
        "Eu não sei onde deixei as minhas chaves.",
        "No outono as árvores perdem as folhas.",
        "Meu pai lê o jornal depois do almoço.",
        "Por favor, feche a janela porque está frio.",
        "O nosso gato gosta de dormir no sofá.",
        "Amanhã vai chover e ventar muito.",
    ),
    "sq": (
        "Sot në mëngjes piva kafe në kuzhinë.",
        "Motra ime punon si mësuese në një shkollë të vogël.",
        "Do të shkojmë në det në fund të verës.",
        "Ky autobus shkon në qendër të qytetit.",
        "Gjyshja bëri një ëmbëlsirë shumë të shijshme.",
        "Fëmijët luajnë në park pranë lumit.",
        "Nuk e di ku i lashë çelësat.",
        "Në vjeshtë pemët i humbin gjethet.",
        "Babai lexon gazetën pas drekës.",
        "Të lutem, mbyll dritaren, se bën ftohtë.",
        "Macja jonë pëlqen të flejë në divan.",
        "Nesër do të bjerë shi dhe do të fryjë erë e fortë.",
    ),
    "tt": (
        "Бүген иртән мин кухняда кофе эчтем.",
        "Минем апам авыл мәктәбендә укытучы булып эшли.",
        "Без җәй азагында диңгезгә барабыз.",
        "Бу автобус шәһәр үзәгенә бара.",
        "Әби тәмле бәлеш пешерде.",
        "Балалар елга янындагы паркта уйныйлар.",
        "Мин ачкычларымны кая куйганымны белмим.",
        "Көзен агачлар яфракларын коя.",
        "Әти төшке аштан соң газета укый.",
        "Зинһар, тәрәзәне яп, салкын.",
        "Безнең мәче диванда йокларга ярата.",
        "Иртәгә яңгыр явачак һәм көчле җил исәчәк.",
    ),
    "uk": (
        "Сьогодні вранці я пив каву на кухні.",
        "Моя сестра працює вчителькою в сільській школі.",
        "Ми поїдемо до моря наприкінці літа.",
        "Цей автобус їде до центру міста.",
        "Бабуся спекла смачний пиріг з вишнями.",
        "Діти граються в парку біля річки.",
        "Я не знаю, де лежать мої ключі.",
        "Восени в лісі багато грибів.",
        "Батько читає газету після обіду.",
        "Будь ласка, зачиніть вікно, бо холодно.",
        "Наш кіт любить спати на дивані.",
        "Завтра буде дощ і сильний вітер.",
    ),
}


@dataclass
class VoiceCheck:
    voice: str  # Voice.id
    language: str
    # Means over the sentences; None when the ASR does not know the language.
    wer: float | None
    cer: float | None
    rtf: float
    sample_rate: int
    sentences: int
    failed: int  # sentences the engine could not say (not counted in error_rate)

    @property
    def admitted(self) -> bool:
        limit = MAX_CER_CHARACTER_LANGUAGES if uses_characters(self.language) else MAX_CER
        return self.cer is not None and self.cer <= limit


def check_sentences(language: str, n: int, seed: int = 0) -> list[str]:
    """``n`` sentences of ``language`` to check a voice on: a seeded sample of the source's first
    sentences, or the built-in check sentences (at most ``n``)."""
    if language in SENTENCE_LANGUAGES:
        pool = load_sentences([language], max_sentences=_SOURCE_POOL)[language]
    elif language in _CHECK_SENTENCES:
        pool = list(_CHECK_SENTENCES[language])
    else:
        # Kyrgyz, Esperanto: the ASR cannot check them anyway; the probe sentence still times the voice.
        pool = [PROBE_TEXT[language]]
    return random.Random(f"{seed}:{language}").sample(pool, min(n, len(pool)))


def check_voice(voice: Voice, sentences: Sequence[str], transcriber) -> VoiceCheck:
    """Synthesize each sentence at default prosody, transcribe it with ``transcriber`` (a
    :class:`voiceclap.evaluation.asr_baseline.Transcriber`) and score it against the sentence."""
    synthesize(PROBE_TEXT[voice.language], voice)  # warm-up: model loading is not synthesis time
    wers, cers, synthesis_s, audio_s, sample_rate, failed = [], [], 0.0, 0.0, 0, 0
    for sentence in sentences:
        start = time.perf_counter()
        try:
            audio, sample_rate = synthesize(sentence, voice)
        except SynthesisError:
            failed += 1
            continue
        synthesis_s += time.perf_counter() - start
        audio_s += len(audio) / sample_rate
        if transcriber.supports(voice.language):
            hypothesis = transcriber.transcribe(to_mono_16k(audio, sample_rate), voice.language)
            wers.append(error_rate(sentence, hypothesis, voice.language))
            cers.append(character_error_rate(sentence, hypothesis, voice.language))
    return VoiceCheck(
        voice=voice.id,
        language=voice.language,
        wer=_mean(wers),
        cer=_mean(cers),
        rtf=round(synthesis_s / audio_s, 4) if audio_s else float("nan"),
        sample_rate=sample_rate,
        sentences=len(sentences),
        failed=failed,
    )


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def add_voices_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--languages", nargs="+", default=sorted(PROBE_TEXT), help="default: every probed language")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--sentences", type=int, default=12, help="sentences per voice (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the checks as JSON here")


def voices_from_args(args: argparse.Namespace) -> int:
    # Imported here: faster-whisper is an optional dependency of the ASR baseline.
    from voiceclap.evaluation.asr_baseline import FasterWhisperTranscriber

    transcriber = FasterWhisperTranscriber(cpu_threads=1)
    checks = []
    for language, voices in discover_voices(args.languages, args.engines).items():
        sentences = check_sentences(language, args.sentences, args.seed) if voices else []
        for voice in voices:
            check = check_voice(voice, sentences, transcriber)
            checks.append(check)
            wer, cer = ("-" if rate is None else f"{rate:.3f}" for rate in (check.wer, check.cer))
            print(
                f"{check.voice:36s} {language:3s} wer {wer:>5s} cer {cer:>5s} rtf {check.rtf:.3f} {check.sample_rate} Hz"
                f"  {'admitted' if check.admitted else 'rejected'}",
                flush=True,
            )
    if args.out is not None:
        records = [{**asdict(check), "admitted": check.admitted} for check in checks]
        args.out.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0
