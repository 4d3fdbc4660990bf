"""Fuzzing (hypothesis, bounded): the manifest parser and the audio decoder give a result or their
documented exception (ManifestError, AudioDecodeError) for any input, never anything else."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_audio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voiceclap import audio as A
from voiceclap.manifest import ManifestError, read_manifest
from voiceclap.scoring import serialize

# Bounded: the whole module runs in seconds; hypothesis's database (.hypothesis/) replays failures.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_AUDIO = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HEADERS = [b"audio\ttext\tid\tlanguage\n", b"audio,text,id,system\n", b""]


def _check_manifest(path: Path) -> None:
    try:
        manifest = read_manifest(path)
    except ManifestError as error:
        assert str(error)
        return
    assert [r.row for r in manifest.clips] == list(range(len(manifest.clips)))
    for row in manifest.clips:
        assert row.id and "\n" not in row.id
        assert row.error is not None or (row.text.strip() and row.audio)
        # Whatever the row holds can be written to the output as UTF-8.
        record = {"row": row.row, "id": row.id, "audio": row.extra["audio"], "text": row.text, "error": row.error}
        for fmt in ("jsonl", "csv"):
            serialize([record], fmt, list(record)).encode("utf-8")


@FUZZ
@given(suffix=st.sampled_from([".tsv", ".csv", ".jsonl"]), header=st.sampled_from(HEADERS), body=st.binary(max_size=400))
def test_manifest_parser_on_arbitrary_bytes(tmp_path, suffix, header, body):
    path = tmp_path / f"m{suffix}"
    path.write_bytes(header + body)
    _check_manifest(path)


_field = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20)


@FUZZ
@given(rows=st.lists(st.lists(_field, min_size=0, max_size=5), max_size=8), suffix=st.sampled_from([".tsv", ".csv"]))
def test_manifest_parser_on_arbitrary_text_rows(tmp_path, rows, suffix):
    separator = "\t" if suffix == ".tsv" else ","
    text = "audio" + separator + "text\n" + "".join(separator.join(r) + "\n" for r in rows)
    path = tmp_path / f"m{suffix}"
    path.write_text(text, encoding="utf-8")
    _check_manifest(path)


@FUZZ
@given(objects=st.lists(st.dictionaries(st.sampled_from(["audio", "text", "id", "language", "x"]),
                                        st.one_of(st.none(), st.integers(), _field, st.lists(st.integers(), max_size=2))),
                        max_size=6))
def test_manifest_parser_on_arbitrary_json_objects(tmp_path, objects):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    _check_manifest(path)


def _check_decode(data: bytes) -> None:
    try:
        audio = A.load_audio(io.BytesIO(data))
    except A.AudioDecodeError as error:
        assert str(error)
        return
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) >= A.MIN_SAMPLES and np.isfinite(audio).all()


@FUZZ_AUDIO
@given(data=st.binary(max_size=2000))
def test_decoder_on_arbitrary_bytes(data):
    _check_decode(data)


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("fuzz-audio")
    return {fmt: write_audio(d / f"x.{fmt}", tone(440, 0.5)).read_bytes() for fmt in ("wav", "flac", "mp3", "ogg", "opus")}


@FUZZ_AUDIO
@given(
    fmt=st.sampled_from(["wav", "flac", "mp3", "ogg", "opus"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), max_size=20),
)
def test_decoder_on_damaged_real_files(valid_files, fmt, cut, flips):
    data = bytearray(valid_files[fmt])
    for position, mask in flips:
        data[int(position * len(data))] ^= mask
    _check_decode(bytes(data[: int(cut * len(data))]))
