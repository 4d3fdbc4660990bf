"""The traced model (voiceclap.traced): the model's scores, and a start that never imports transformers."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import SR, random_model, tone

from voiceclap import cli, traced
from voiceclap.config import get_model_config
from voiceclap.model import VoiceCLAP
from voiceclap.traced import CannotTrace, TracedCLAP, load_traced, trace_model

LONG_TEXT = "a sentence that goes on " * 20  # over tiny-test's 256 tokens: cut and flagged
TEXTS = ["hello world", "Grüße, 世界! ", LONG_TEXT, "x"]


def _variant(**changes) -> VoiceCLAP:
    """tiny-test with other pooling, masks or heads, seeded."""
    config = dataclasses.replace(get_model_config("tiny-test"), **changes)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return VoiceCLAP.from_config(config, load_base_weights=False).eval()


ATTENTION_HEAD = {"type": "attention", "dim": 16, "layers": 1, "heads": 2, "queries": 3}
VARIANTS = {
    "tiny-test": {},
    "attention heads": {"audio_head": ATTENTION_HEAD, "text_head": ATTENTION_HEAD},
    "seed pooling, pad-id mask, padded text": {"audio_pooling": "seed", "text_mask": "pad_token_id",
                                               "text_pad_to_max_length": True, "text_max_length": 40},
}


@pytest.mark.parametrize("changes", VARIANTS.values(), ids=VARIANTS.keys())
def test_traced_model_embeds_as_the_model_at_every_length(changes, tmp_path):
    model = _variant(**changes)
    trace_model(model, tmp_path)
    fast = TracedCLAP(tmp_path)
    clips = [tone(440, 0.7), tone(300, 4.3), np.zeros(SR // 5, np.float32), tone(500, 2.05)]
    with torch.inference_mode():
        for batch in (clips, clips[1:2], clips[2:]):  # other sizes and lengths than traced on
            np.testing.assert_allclose(fast.embed_audio_batch(fast.prepare_audio(batch)),
                                       model.encode_audio(batch), atol=1e-5)
        ours, theirs = fast.tokenize(TEXTS), model.tokenize(TEXTS)
        assert torch.equal(ours.input_ids, theirs.input_ids) and torch.equal(ours.attention_mask, theirs.attention_mask)
        assert ours.truncated == theirs.truncated and ours.truncated[2]
        for texts in (TEXTS, TEXTS[:1]):
            np.testing.assert_allclose(fast.embed_text_batch(fast.tokenize(texts)), model.encode_text(texts), atol=1e-5)


def test_a_trace_that_does_not_reproduce_the_model_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(traced, "PARITY_TOLERANCE", -1.0)  # any gap, even none, is too much
    with pytest.raises(CannotTrace, match="audio tower"):
        trace_model(random_model(), tmp_path)
    assert not (tmp_path / traced.META_NAME).exists()


def test_a_model_with_a_python_tokenizer_cannot_be_traced(tmp_path):
    model = random_model()
    model.tokenizer = object()  # no backend_tokenizer: what a slow (Python) tokenizer lacks
    with pytest.raises(CannotTrace, match="not a fast tokenizer"):
        trace_model(model, tmp_path)


def test_load_traced_traces_once_per_model_version(tiny_model, tmp_path, monkeypatch):
    tiny_model.save_pretrained(tmp_path / "m")
    first = load_traced(tmp_path / "m")
    calls = []
    monkeypatch.setattr(traced, "trace_model", lambda *a: calls.append(a))
    again = load_traced(tmp_path / "m")  # traced already: loaded, not traced
    assert calls == []
    assert all(torch.equal(a, b) for a, b in zip(again.audio.state_dict().values(), first.audio.state_dict().values()))
    os.utime(tmp_path / "m" / "model.safetensors", ns=(0, 0))  # the model changed
    with pytest.raises(FileNotFoundError):  # the stub traced nothing: the new key's directory is missing
        load_traced(tmp_path / "m")
    assert len(calls) == 1


def test_load_traced_needs_a_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a VoiceCLAP model directory"):
        load_traced(tmp_path)


def test_cli_one_pair_traced_and_eager_agree(speech_like_clips, tiny_model_dir, capsys):
    args = ["score", "--audio", str(speech_like_clips["c3"]), "--text", "hello world", "--model", str(tiny_model_dir), "--json"]
    records = {}
    for engine in ("traced", "eager"):
        assert cli.main([*args, "--engine", engine, "--audio-precision", "float32"]) == 0
        records[engine] = json.loads(capsys.readouterr().out)
    assert records["traced"]["score"] == pytest.approx(records["eager"]["score"], abs=1e-5)
    assert {k: v for k, v in records["traced"].items() if k != "score"} == {
        k: v for k, v in records["eager"].items() if k != "score"}


def test_cli_falls_back_to_the_model_where_tracing_fails(speech_like_clips, tiny_model_dir, monkeypatch, capsys):
    monkeypatch.setattr(traced, "PARITY_TOLERANCE", -1.0)
    args = ["score", "--audio", str(speech_like_clips["c3"]), "--text", "hi", "--model", str(tiny_model_dir)]
    monkeypatch.setattr(traced, "traced_root", lambda: tiny_model_dir.parent / "fresh-traced")
    assert cli.main(args) == 0  # auto: the model itself
    assert "cannot trace the model" in capsys.readouterr().err
    assert cli.main([*args, "--engine", "traced"]) == 2


def test_engine_traced_refuses_what_it_cannot_do(speech_like_clips, capsys):
    args = ["score", "--audio", str(speech_like_clips["c3"]), "--text", "hi", "--engine", "traced"]
    assert cli.main([*args, "--model", "random:tiny-test"]) == 2
    assert cli.main([*args, "--audio-precision", "bfloat16"]) == 2
    assert "--engine traced needs" in capsys.readouterr().err


def test_a_traced_start_never_imports_transformers(speech_like_clips, tiny_model_dir, tmp_path):
    """The point of tracing: after the first run, a one-pair score loads neither transformers nor the encoders."""
    code = (
        "import sys; from voiceclap import cli; "
        f"code = cli.main(['score', '--audio', {str(speech_like_clips['c3'])!r}, '--text', 'hi', '--model', {str(tiny_model_dir)!r}]); "
        "print('transformers loaded:', 'transformers' in sys.modules); sys.exit(code)"
    )
    env = {**os.environ, "VOICECLAP_CACHE": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False)
            for _ in range(2)]
    assert [run.returncode for run in runs] == [0, 0], runs[0].stderr
    assert "tracing" in runs[0].stderr and "transformers loaded: True" in runs[0].stdout  # the first run traces
    assert "tracing" not in runs[1].stderr and "transformers loaded: False" in runs[1].stdout
    assert runs[0].stdout.splitlines()[0] == runs[1].stdout.splitlines()[0]  # the same cosine


def test_sentencepiece_form_of_e5s_tokenizer_gives_its_ids(tmp_path):
    """XLM-R's Unigram tokenizer (e5's) is traced as a SentencePiece model, which loads in a fraction of
    the time: the same ids as the tokenizers library, truncation and spelled-out special tokens included."""
    from voiceclap.tokenizer import load_tokenizer
    from voiceclap.weights import MissingBaseWeights

    try:
        tokenizer = load_tokenizer("offline:multilingual-e5-small").backend_tokenizer  # what the model uses
    except MissingBaseWeights as error:
        pytest.skip(str(error))
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    specials = traced._write_sentencepiece(tokenizer, tmp_path / "sp.model")
    assert specials is not None and {"<mask>", "<s>"} <= set(specials["spelled"])
    texts = [*traced.TOKENIZER_PROBES, "query: " + LONG_TEXT, "a <mask> b", "Ελληνικά και हिन्दी"]
    for limit in (128, 8):
        reference = traced._tokenizers_encoder(tmp_path / "tokenizer.json", limit)
        fallback_calls = []

        def fallback(reference=reference, calls=fallback_calls):
            calls.append(1)
            return reference

        ours = traced._sentencepiece_encoder(tmp_path / "sp.model", limit, specials, fallback)
        assert [ours([t]) for t in texts] == [reference([t]) for t in texts]
        assert len(fallback_calls) == 1  # only "a <mask> b"


def test_a_byte_level_tokenizer_has_no_sentencepiece_form(tiny_model, tmp_path):
    assert traced._write_sentencepiece(tiny_model.tokenizer.backend_tokenizer, tmp_path / "sp.model") is None
    assert not (tmp_path / "sp.model").exists()
