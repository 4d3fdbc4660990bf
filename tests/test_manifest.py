"""Manifest reading: formats, relative paths, whole-file errors vs row errors, ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from voiceclap.manifest import ManifestError, read_manifest


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


ROWS = [
    {"audio": "a.wav", "text": 'He said "hello", twice.', "id": "x1", "language": "en", "system": "tts-a"},
    {"audio": "sub/b.flac", "text": "Grüße aus Köln", "id": "x2", "language": "de", "system": "tts-b"},
]


def _csv_text(rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_formats_read_the_same_rows(tmp_path, suffix):
    if suffix == ".tsv":
        text = "audio\ttext\tid\tlanguage\tsystem\n" + "".join("\t".join(r.values()) + "\n" for r in ROWS)
    elif suffix == ".csv":
        text = _csv_text(ROWS)
    else:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS)
    manifest = read_manifest(_write(tmp_path / f"m{suffix}", text))
    assert [r.error for r in manifest.clips] == [None, None]
    assert [r.text for r in manifest.clips] == [r["text"] for r in ROWS]  # TSV keeps quotes verbatim
    assert [(r.id, r.language, r.speaker) for r in manifest.clips] == [("x1", "en", "tts-a"), ("x2", "de", "tts-b")]
    # Relative audio paths are resolved against the manifest's folder, not the working directory.
    assert manifest.clips[1].extra["audio"] == "sub/b.flac"  # as written, for the output
    assert manifest.clips[1].audio == str(tmp_path / "sub" / "b.flac")


def test_absolute_paths_extra_columns_bom_and_crlf(tmp_path):
    text = "\ufeffaudio\ttext\tkind\r\n/abs/a.wav\thello\tmatch\r\n"
    (row,) = read_manifest(_write(tmp_path / "m.tsv", text)).clips
    assert row.audio == "/abs/a.wav" and row.text == "hello" and row.extra == {"kind": "match", "audio": "/abs/a.wav"}


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("m.tsv", "audio\tid\nx.wav\t1\n", "missing required column.*text"),
        ("m.csv", "text,id\nhello,1\n", "missing required column.*audio"),
        ("m.jsonl", '{"audio": "a.wav", "id": 1}\n', "missing required column.*text"),
        ("m.tsv", "", "no header"),
        ("m.tsv", "audio\ttext\ttext\n", "more than once"),
        ("m.txt", "audio\ttext\n", "unknown manifest format"),
        ("m.tsv", b"au\xffdio\ttext\n", "header is not valid UTF-8"),
    ],
)
def test_whole_manifest_problems_raise_before_any_work(tmp_path, name, content, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(_write(tmp_path / name, content))


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.tsv")


def test_row_problems_are_reported_on_the_row_and_never_abort(tmp_path):
    data = (
        "audio\ttext\tid\n"
        "a.wav\tgood\tr1\n"
        + "b.wav\tbad \xff byte\tr2\n".encode("latin-1").decode("utf-8", "surrogateescape")
        + "c.wav\t   \tr3\n"
        "d.wav\ttoo\tmany\tfields\n"
        "\tno audio\tr5\n"
        "f.wav\t\tr6\n"
        "\n"  # blank lines are skipped, not rows
        "g.wav\tgood again\tr7\n"
    ).encode("utf-8", "surrogateescape")
    manifest = read_manifest(_write(tmp_path / "m.tsv", data))
    errors = {r.id: r.error for r in manifest.clips}
    assert errors["r1"] is None and errors["r7"] is None
    assert "invalid UTF-8" in errors["r2"]
    assert manifest.clips[1].text == "bad \ufffd byte"  # printable in the output, not scored
    assert errors["r3"] == errors["r6"] == "empty transcript"
    assert "4 tab-separated fields" in errors["row-4"]
    assert errors["r5"] == "empty audio path"
    assert [r.row for r in manifest.clips] == list(range(7))


def test_jsonl_row_problems(tmp_path):
    text = '{"audio": "a.wav", "text": "ok"}\nnot json\n[1, 2]\n{"audio": "b.wav"}\n{"audio": "c.wav", "text": "\\ud800"}\n'
    rows = read_manifest(_write(tmp_path / "m.jsonl", text)).clips
    assert rows[0].error is None
    assert "not valid JSON" in rows[1].error
    assert "not an object" in rows[2].error
    assert rows[3].error == "empty transcript"
    assert "invalid UTF-8" in rows[4].error  # a lone surrogate escape is no text either


def test_numbers_as_ids_and_empty_jsonl(tmp_path):
    rows = read_manifest(_write(tmp_path / "m.jsonl", '{"audio": "a.wav", "text": "x", "id": 7}\n')).clips
    assert rows[0].id == "7"
    assert read_manifest(_write(tmp_path / "e.jsonl", "")).clips == []


def test_generated_and_duplicate_ids(tmp_path):
    text = "audio\ttext\tid\na.wav\tx\tsame\nb.wav\ty\t\nc.wav\tz\tsame\nd.wav\tw\tother\n"
    manifest = read_manifest(_write(tmp_path / "m.tsv", text))
    assert [r.id for r in manifest.clips] == ["same", "row-2", "same", "other"]
    assert [r.duplicate_id for r in manifest.clips] == [True, False, True, False]
    assert manifest.duplicate_ids == {"same": [0, 2]}
    assert all(r.error is None for r in manifest.clips)  # flagged, not dropped


def test_csv_quoted_fields_hold_commas_and_newlines(tmp_path):
    text = 'audio,text\na.wav,"one, two"\nb.wav,"line one\nline two"\n'
    rows = read_manifest(_write(tmp_path / "m.csv", text)).clips
    assert [r.text for r in rows] == ["one, two", "line one\nline two"]


def test_ids_are_whitespace_normalized(tmp_path):
    rows = read_manifest(_write(tmp_path / "m.jsonl", '{"audio": "a.wav", "text": "x", "id": " a\\n b "}\n')).clips
    assert rows[0].id == "a b"


def test_a_csv_field_over_the_csv_size_limit_fails_only_its_row(tmp_path):
    text = "audio,text\na.wav,fine\nb.wav," + "x" * 200_000 + "\nc.wav,also fine\n"
    rows = read_manifest(_write(tmp_path / "m.csv", text)).clips
    assert [r.error is None for r in rows] == [True, False, True]
    assert "field larger than field limit" in rows[1].error
