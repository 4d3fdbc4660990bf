"""Readers of recorded speech from Debian packages (voiceclap.corpus.recorded), on tiny fake package
trees in each package's real layout and formats; one test reads the installed packages when present."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import dominant_frequency, tone

from voiceclap.clips import Clip
from voiceclap.corpus import recorded
from voiceclap.corpus.recorded import (
    FESTVOX_RU_ROOT,
    FILLETS_ROOT,
    SOURCES,
    TUXPAINT_ROOT,
    UQM_ROOT,
    UQM_VOICE_ACTORS,
    SourceReport,
    drop_table,
    fit_duration,
    read_festvox_ru,
    read_fillets,
    read_tuxpaint,
    read_uqm,
    source_table,
    split_of,
    uqm_page_bounds,
)

UQM_RATE = 11025


def speech_seconds(text: str) -> float:
    """A plausible duration for a text: what the readers' duration check expects of real speech."""
    return round(0.3 + 0.06 * len(text), 3)


def ogg_bytes(seconds: float, freq: float = 440.0, sr: int = 22050) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, tone(freq, seconds, sr), sr, format="OGG")
    return out.getvalue()


def write_ogg(path: Path, seconds: float, freq: float = 440.0, sr: int = 22050) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ogg_bytes(seconds, freq, sr))
    return path


def sentence(i: int) -> str:
    # Texts of many lengths, so a speaking rate can be fitted.
    return f"Line {i} says " + "very " * (i % 7) + "little."


# ----- uqm -----

PAGE_FREQS = (300.0, 500.0, 700.0)  # each page of a recording is a tone of its own


def recording(pages: list[str], seconds: list[float] | None = None) -> bytes:
    seconds = seconds or [speech_seconds(p) for p in pages]
    audio = np.concatenate([tone(PAGE_FREQS[i % 3], s, UQM_RATE) for i, s in enumerate(seconds)])
    out = io.BytesIO()
    soundfile.write(out, audio, UQM_RATE, format="OGG")
    return out.getvalue()


def ms(seconds: list[float]) -> str:
    return ",".join(str(round(s * 1000)) for s in seconds)


def make_uqm(root: Path) -> dict:
    """uqm-content and uqm-voice zips under root, as Debian installs them. Returns the expectations."""
    text, timings, voice = [], [], {}
    kept = {}
    for k in range(8):  # 8 recordings x 3 lines: enough for arilou's speaking-rate fit
        pages = [sentence(3 * k + i) for i in range(3)]
        name = f"arilou-{k:03d}"
        text += [f"#(HELLO_{k})\t{name}.ogg", *pages, ""]
        timings.append(f"#(HELLO_{k}) {ms([speech_seconds(p) for p in pages[:2]])}")
        voice[f"3dovoice/arilou/{name}.ogg"] = recording(pages)
        for i, page in enumerate(pages):
            kept[f"uqm/{name}-{i}"] = (page, speech_seconds(page), PAGE_FREQS[i])
    # Markup, a page of punctuation only, an empty line (not a page) and a zero timing (ignored).
    pages = ["Our nook in *time*!", "...", "We didn't `run out' on you.", "-<GO KILL YOURSELF!>-"]
    text += ["#(MARKUP)\tarilou-008.ogg", pages[0], "", pages[1], pages[2], pages[3], ""]
    timings.append(f"#(MARKUP) {ms([speech_seconds(p) for p in pages[:3]])},0")
    voice["3dovoice/arilou/arilou-008.ogg"] = recording(pages)
    kept["uqm/arilou-008-0"] = ("Our nook in time!", speech_seconds(pages[0]), PAGE_FREQS[0])
    kept["uqm/arilou-008-2"] = ("We didn't 'run out' on you.", speech_seconds(pages[2]), PAGE_FREQS[2])
    kept["uqm/arilou-008-3"] = ("GO KILL YOURSELF!", speech_seconds(pages[3]), PAGE_FREQS[0])
    # More timings than pages: the game appends text later; the tail is left out.
    pages = ["Your ship is", "a fine one, Captain"]
    seconds = [speech_seconds(p) for p in pages]
    text += ["#(SHIP_NAME)\tarilou-009.ogg", *pages, ""]
    timings.append(f"#(SHIP_NAME) {ms(seconds)},2500")
    voice["3dovoice/arilou/arilou-009.ogg"] = recording([*pages, "the Vindicator"], [*seconds, 2.5])
    kept["uqm/arilou-009-1"] = (pages[1], seconds[1], PAGE_FREQS[1])
    kept["uqm/arilou-009-0"] = (pages[0], seconds[0], PAGE_FREQS[0])
    # A line the recording says in far too long (6 s for "Hi."): a mismatch.
    text += ["#(TOO_LONG)\tarilou-010.ogg", "Hi.", "That is all there is to say.", ""]
    timings.append("#(TOO_LONG) 6000")
    voice["3dovoice/arilou/arilou-010.ogg"] = recording(["Hi.", "That is all there is to say."], [6.0, 1.98])
    kept["uqm/arilou-010-1"] = ("That is all there is to say.", 1.98, PAGE_FREQS[1])
    text += [
        "#(player_says_hi)",  # the player's lines are never spoken: not clips, not drops
        "Hello there!",
        "",
        "#(OUT_TAKES)\tarilou-099.ogg",  # a recording the voice pack lacks
        "Blah blah.",
        "Blah.",
        "",
        "#(TOO_FEW_TIMINGS)\tarilou-000.ogg",
        "One.",
        "Two.",
        "Three.",
        "",
        "#(AGAIN)\tarilou-000.ogg",  # the same recording under a second key, same text
        *[sentence(i) for i in range(3)],
        "",
        "#(BROKEN)\tarilou-011.ogg",
        "This file is not audio.",
        "",
    ]
    timings += ["#(TOO_FEW_TIMINGS) 400", f"#(AGAIN) {ms([speech_seconds(sentence(i)) for i in range(2)])}"]
    voice["3dovoice/arilou/arilou-011.ogg"] = b"not an ogg file"
    # Thraddash's text lives in the voice pack; 3 lines are too few to fit a speaking rate.
    pages = ["To arms!", "SNORT!", "To arms, I say!"]
    voice["3dovoice/thraddash/thraddash.txt"] = "\n".join(["#(ATTACK)\tthraddash-000.ogg", *pages, ""])
    voice["3dovoice/thraddash/thraddash.ts"] = f"#(ATTACK) {ms([speech_seconds(p) for p in pages[:2]])}\n"
    voice["3dovoice/thraddash/thraddash-000.ogg"] = recording(pages)
    # The probe's machine voice.
    probe_pages = ["WE COME IN PEACE.", "DO NOT FEAR."]
    probe_text = "\n".join(["#(PEACE)\tprobe-000.ogg", *probe_pages, ""])
    voice["3dovoice/probe/probe.ts"] = "#(PEACE) 1500\n"
    voice["3dovoice/probe/probe-000.ogg"] = recording(probe_pages)
    voice["3dovoice/arilou/arilou.ts"] = "\n".join(timings) + "\n"
    voice["3dovoice/3dovoice.rmp"] = "\n".join(
        f"comm.{race}.dialogue = CONVERSATION:{txt}:addons/3dovoice/{race}/:addons/3dovoice/{race}/{race}.ts"
        for race, txt in [
            ("arilou", "base/comm/arilou/arilou.txt"),
            ("thraddash", "addons/3dovoice/thraddash/thraddash.txt"),
            ("probe", "base/comm/probe/probe.txt"),
        ]
    )
    (root / "packages").mkdir(parents=True)
    (root / "addons").mkdir()
    with zipfile.ZipFile(root / "packages" / "uqm-0.8.0-content.uqm", "w") as content:
        content.writestr("base/comm/arilou/arilou.txt", "\n".join(text) + "\n")
        content.writestr("base/comm/probe/probe.txt", probe_text)
    with zipfile.ZipFile(root / "addons" / "uqm-0.8.0-voice.uqm", "w") as pack:
        for member, data in voice.items():
            pack.writestr(member, data)
    return kept


def test_uqm_cuts_recordings_into_lines_and_counts_what_it_drops(tmp_path):
    expected = make_uqm(tmp_path)
    report = SourceReport("uqm")
    clips = {clip.id: clip for clip in read_uqm(tmp_path, report)}

    assert set(clips) == set(expected)
    for clip_id, (text, seconds, freq) in expected.items():
        clip = clips[clip_id]
        assert (clip.text, clip.language, clip.source) == (text, "en", "uqm")
        assert clip.speaker == "uqm:Rich Betz" and clip.extra["character"] == "arilou"
        assert clip.extra["license"] == SOURCES["uqm"].license
        audio, sr = soundfile.read(io.BytesIO(clip.audio))
        assert sr == UQM_RATE
        assert clip.duration == pytest.approx(seconds, abs=1e-3)
        assert len(audio) / sr == pytest.approx(seconds, abs=2e-3)
        # Cut at the right place: the segment is its own page's tone, not a neighbour's.
        assert dominant_frequency(audio, sr) == pytest.approx(freq, abs=5)
    assert report.dropped == Counter(
        {
            ("en", "no_transcript"): 1,  # "..."
            ("en", "duration_mismatch"): 1,  # "Hi." in 6 s
            ("en", "no_audio"): 2,
            ("en", "timing_mismatch"): 3,
            ("en", "duplicate_audio"): 3,
            ("en", "undecodable"): 1,
            ("en", "unchecked"): 3,  # thraddash
            ("en", "synthetic_voice"): 2,
        }
    )
    assert report.clips == Counter({"en": len(expected)})
    assert report.seconds["en"] == pytest.approx(sum(s for _, s, _ in expected.values()), abs=1e-3)
    assert report.speakers == {"uqm:Rich Betz"}


def test_uqm_without_audio_gives_the_same_clips_and_report(tmp_path):
    make_uqm(tmp_path)
    with_audio, without = SourceReport("uqm"), SourceReport("uqm")
    cut = [(c.id, c.text, c.duration) for c in read_uqm(tmp_path, with_audio)]
    listed = list(read_uqm(tmp_path, without, with_audio=False))
    assert [(c.id, c.text, c.duration) for c in listed] == cut
    assert all(c.audio is None for c in listed)
    assert without == with_audio


def test_uqm_page_bounds_follow_the_game():
    assert uqm_page_bounds(3, [1000, 2000], 5.0) == [(0.0, 1.0), (1.0, 3.0), (3.0, 5.0)]
    assert uqm_page_bounds(2, [1000, 2000, 1500], 5.0) == [(0.0, 1.0), (1.0, 3.0)]  # text appended later
    assert uqm_page_bounds(1, [], 2.0) == [(0.0, 2.0)]
    assert uqm_page_bounds(3, [1000], 5.0) is None  # too few timings
    assert uqm_page_bounds(2, [6000], 5.0) is None  # past the end of the clip


def test_missing_packages_name_the_package_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="uqm-voice"):
        next(read_uqm(tmp_path))
    with pytest.raises(FileNotFoundError, match="festvox-ru"):
        next(read_festvox_ru(tmp_path))


# ----- tuxpaint -----


def make_tuxpaint(root: Path) -> None:
    animals = root / "animals"
    animals.mkdir(parents=True)
    for i in range(22):
        en, fr = sentence(i), "Une " + sentence(i + 1).lower()
        (animals / f"beast{i}.txt").write_text(f"{en}\nde.utf8=Ein Tier.\nfr.utf8={fr}\n", encoding="utf-8")
        write_ogg(animals / f"beast{i}_desc.ogg", speech_seconds(en), 300 + i)
        write_ogg(animals / f"beast{i}_desc_fr.ogg", speech_seconds(fr), 600 + i)
    frog = animals / "frogs"
    frog.mkdir()
    (frog / "frog.txt").write_text("A frog.\nfr.utf8=Une grenouille.\npt_BR.utf8=Um sapo.\n", encoding="utf-8")
    write_ogg(frog / "frog_desc_fr.ogg", 1.2, 900)
    write_ogg(frog / "frog_desc_pt_BR.ogg", 0.9, 910)
    # A second stamp with the very same recording and text: a copy.
    (frog / "frog-1.txt").write_text("A green frog.\nfr.utf8=Une grenouille.\n", encoding="utf-8")
    (frog / "frog-1_desc_fr.ogg").write_bytes((frog / "frog_desc_fr.ogg").read_bytes())
    # One recording under two different texts: at most one can be right.
    (frog / "toad.txt").write_text("A toad.\nfr.utf8=Un crapaud.\n", encoding="utf-8")
    (frog / "newt.txt").write_text("A newt.\nfr.utf8=Un triton.\n", encoding="utf-8")
    write_ogg(frog / "toad_desc_fr.ogg", 1.0, 920)
    (frog / "newt_desc_fr.ogg").write_bytes((frog / "toad_desc_fr.ogg").read_bytes())
    # A text since extended with the piece's rules, over a recording of its name only.
    rules = "Un pion. Il avance d'une case, ou de deux au premier coup, et prend en diagonale."
    (frog / "pawn.txt").write_text(f"A pawn.\nfr.utf8={rules}\n", encoding="utf-8")
    write_ogg(frog / "pawn_desc_fr.ogg", 0.7, 930)
    write_ogg(frog / "ghost_desc_fr.ogg", 1.0, 940)  # no ghost.txt
    (frog / "bat.txt").write_text("A bat.\nfr.utf8=Une chauve-souris.\n", encoding="utf-8")
    write_ogg(frog / "bat_desc_es.ogg", 1.0, 950)  # no Spanish text
    write_ogg(frog / "bat_desc_da.ogg.ogg", 1.0, 960)  # a name that names no language


def test_tuxpaint_reads_descriptions_per_language(tmp_path):
    make_tuxpaint(tmp_path)
    report = SourceReport("tuxpaint")
    clips = {clip.id: clip for clip in read_tuxpaint(tmp_path, report)}

    assert len(clips) == 22 + 22 + 1  # en and fr of beast0..21, one of the two French frogs
    frog = clips["tuxpaint/fr/animals/frogs/frog-1"]  # the first of the copies, by file name
    assert (frog.text, frog.language, frog.speaker, frog.source) == ("Une grenouille.", "fr", "tuxpaint:fr", "tuxpaint")
    assert frog.extra["concept"] == "A green frog." and frog.audio == str(tmp_path / "animals/frogs/frog-1_desc_fr.ogg")
    assert frog.duration == pytest.approx(1.2, abs=0.01)
    assert clips["tuxpaint/en/animals/beast3"].text == sentence(3)
    assert report.dropped == Counter(
        {
            ("fr", "duplicate_audio"): 1,  # frog-1
            ("fr", "ambiguous_audio"): 2,  # toad, newt
            ("fr", "duration_mismatch"): 1,  # pawn
            ("fr", "no_transcript"): 1,  # ghost
            ("es", "no_transcript"): 1,  # bat
            ("?", "no_transcript"): 1,  # bat_desc_da.ogg.ogg
            ("pt", "unchecked"): 1,  # one Brazilian Portuguese clip: no speaking rate to check against
        }
    )
    assert report.speakers == {"tuxpaint:en", "tuxpaint:fr"}


# ----- fillets -----


def make_fillets(root: Path) -> None:
    level = root / "script" / "airplane"
    level.mkdir(parents=True)
    lines = []
    for i in range(24):
        fish, font = ("m", "font_small") if i % 2 else ("v", "font_big")
        line_id = f"let-{fish}-{i}"
        dutch = "Zeg " + sentence(i)
        lines += [f'dialogId("{line_id}", "{font}", "Say {sentence(i)}")', f'dialogStr("{dutch}")', ""]
        write_ogg(root / "sound" / "airplane" / "nl" / f"{line_id}.ogg", speech_seconds(dutch))
    lines += [
        'dialogId("let-m-quote", "font_small", "He said \\"hi\\".")',
        'dialogStr("Hij zei \\"hoi\\".")',
        'dialogId("let-v-untranslated", "font_big", "No Dutch for this one.")',
        'dialogId("let-p-parrot", "font_parrot", "Polly!")',
        'dialogStr("Lorre!")',
        'dialogId("let-m-short", "font_small", "Oh.")',
        'dialogStr("O.")',
    ]
    (level / "dialogs_nl.lua").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sounds = root / "sound" / "airplane" / "nl"
    write_ogg(sounds / "let-m-quote.ogg", speech_seconds('Hij zei "hoi".'))
    write_ogg(sounds / "let-v-untranslated.ogg", 1.0)
    write_ogg(sounds / "let-p-parrot.ogg", 1.0)
    write_ogg(sounds / "let-m-short.ogg", 0.05)
    write_ogg(sounds / "let-v-nowhere.ogg", 1.0)  # no dialog line at all
    # Jokes shared by every level: script/share/*dialogs_nl.lua, sound/share/<set>/nl.
    share = []
    for i in range(20):
        fish, font = ("m", "font_small") if i % 2 else ("v", "font_big")
        share += [f'dialogId("smrt-{fish}-{i}", "{font}", "Oops.")', f'dialogStr("Oeps {sentence(i)}")']
        write_ogg(
            root / "sound" / "share" / "blackjokes" / "nl" / f"smrt-{fish}-{i}.ogg",
            speech_seconds(f"Oeps {sentence(i)}"),
        )
    (root / "script" / "share").mkdir()
    (root / "script" / "share" / "black_dialogs_nl.lua").write_text("\n".join(share) + "\n", encoding="utf-8")


def test_fillets_speaker_is_the_fish_that_speaks_and_level_is_kept(tmp_path):
    make_fillets(tmp_path)
    report = SourceReport("fillets")
    clips = {clip.id: clip for clip in read_fillets(tmp_path, report)}

    assert len(clips) == 24 + 1 + 20
    quote = clips["fillets/airplane/let-m-quote"]
    assert (quote.text, quote.language, quote.speaker) == ('Hij zei "hoi".', "nl", "fillets:small fish")
    assert quote.extra["level"] == "airplane"
    assert clips["fillets/airplane/let-v-0"].speaker == "fillets:big fish"
    joke = clips["fillets/share/blackjokes/smrt-v-0"]
    assert joke.text == "Oeps " + sentence(0) and joke.extra["level"] == "share/blackjokes"
    assert report.dropped == Counter({("nl", "no_transcript"): 2, ("nl", "unknown_speaker"): 1, ("nl", "too_short"): 1})


# ----- festvox-ru -----


def test_festvox_ru_strips_stress_marks_and_counts_missing_files(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "wav").mkdir()
    prompts = []
    for i in range(1, 23):
        text = f"Предложение номер {i} " + "очень " * (i % 5) + "короткое."
        prompts.append(f'( ru_{i:04d} "{text}" )')
        if i != 22:  # the last prompt was never recorded
            wav = tone(200 + 10 * i, speech_seconds(text), 16000)  # distinct files: copies are dropped
            soundfile.write(tmp_path / "wav" / f"ru_{i:04d}.wav", wav, 16000)
    prompts.insert(0, '( ru_0000 "Он+а завел+а прядь вол+ос." )')
    soundfile.write(
        tmp_path / "wav" / "ru_0000.wav", tone(200, speech_seconds("Она завела прядь волос."), 16000), 16000
    )
    soundfile.write(tmp_path / "wav" / "ru_0999.wav", tone(190, 1.0, 16000), 16000)  # no prompt
    (tmp_path / "etc" / "txt.done.data").write_text("\n".join(prompts) + "\n", encoding="utf-8")

    report = SourceReport("festvox-ru")
    clips = {clip.id: clip for clip in read_festvox_ru(tmp_path, report)}
    assert len(clips) == 22
    first = clips["festvox-ru/ru_0000"]
    assert (first.text, first.language, first.speaker) == ("Она завела прядь волос.", "ru", "festvox-ru:msu_ru_nsh")
    assert first.audio == str(tmp_path / "wav" / "ru_0000.wav")
    assert report.dropped == Counter({("ru", "no_audio"): 1, ("ru", "no_transcript"): 1})


# ----- the duration check -----


def test_fit_duration_ignores_a_third_of_clips_that_say_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 80, 300).astype(float)
    seconds = 0.4 + 0.07 * lengths + rng.normal(0, 0.05, 300)
    seconds[:100] = 0.6  # long texts over one-word recordings
    intercept, slope = fit_duration(lengths, seconds)
    assert slope == pytest.approx(0.07, abs=0.01) and intercept == pytest.approx(0.4, abs=0.2)


# ----- splits -----


def uqm_clip(character: str, index: int = 0) -> Clip:
    return Clip(
        id=f"uqm/{character}-000-{index}",
        text="Hello.",
        language="en",
        speaker=f"uqm:{UQM_VOICE_ACTORS[character]}",
        source="uqm",
        extra={"character": character},
    )


def test_uqm_split_holds_out_whole_voice_actors():
    actors_in: dict[str, set[str]] = {split: set() for split in recorded.SPLITS}
    for character in UQM_VOICE_ACTORS:
        clip = uqm_clip(character)
        actors_in[split_of(clip)].update(clip.speaker.removeprefix("uqm:").split(" & "))
    assert actors_in["dev"] and actors_in["test"] and actors_in["train"]
    for a, b in [("train", "dev"), ("train", "test"), ("dev", "test")]:
        assert not actors_in[a] & actors_in[b], (a, b)
    # Zoq-Fot-Pik shares Madeleine Wild with the Syreen and the VUX: one split for all three.
    assert split_of(uqm_clip("zoqfotpik")) == split_of(uqm_clip("syreen")) == split_of(uqm_clip("vux"))


def test_hashed_splits_are_deterministic_and_keep_groups_whole():
    def fillets(level: str, line: str, fish: str) -> Clip:
        return Clip(
            id=f"fillets/{level}/{line}",
            text="Hoi.",
            language="nl",
            speaker=f"fillets:{fish}",
            source="fillets",
            extra={"level": level},
        )

    def tuxpaint(language: str, concept: str) -> Clip:
        return Clip(
            id=f"tuxpaint/{language}/x",
            text="x",
            language=language,
            speaker=f"tuxpaint:{language}",
            source="tuxpaint",
            extra={"stamp": "x", "concept": concept},
        )

    levels = [f"level{i}" for i in range(400)]
    splits = Counter(split_of(fillets(level, "a", "big fish")) for level in levels)
    assert 0.08 < (splits["dev"] + splits["test"]) / len(levels) < 0.24 and splits["dev"] and splits["test"]
    for level in levels[:50]:  # the same rule every time, for every line and fish of a level
        assert len({split_of(fillets(level, line, fish)) for line in "abc" for fish in ("big fish", "small fish")}) == 1
    for concept in [f"A stamp number {i}." for i in range(50)]:  # one stamp, one split in every language
        assert len({split_of(tuxpaint(language, concept)) for language in ("fr", "es", "ru")}) == 1
    sentences = Counter(
        split_of(Clip(id=f"festvox-ru/ru_{i:04d}", text="x", language="ru", source="festvox-ru")) for i in range(400)
    )
    assert sentences["dev"] and sentences["test"] and sentences["train"] > 300
    with pytest.raises(ValueError, match="no split rule"):
        split_of(Clip(id="x", text="x", source="emilia"))


# ----- tables -----


def test_tables_show_kept_and_dropped_per_source():
    report = SourceReport("tuxpaint")
    report.keep(Clip(id="a", text="Un chat.", language="fr", duration=3600.0, speaker="tuxpaint:fr"))
    report.drop("duration_mismatch", "fr", 2)
    report.drop("no_transcript", "lt", 88)
    with pytest.raises(ValueError, match="unknown drop reason"):
        report.drop("bad vibes", "fr")
    assert "| tuxpaint | 1 | 1.00 | 1 | fr | GPL-2+" in source_table([report])
    table = drop_table([report])
    assert "| source | language | kept | no_transcript | duration_mismatch |" in table
    assert "| tuxpaint | fr | 1 | 0 | 2 |" in table and "| tuxpaint | lt | 0 | 88 | 0 |" in table


# ----- the installed packages -----


@pytest.mark.skipif(
    not all(p.exists() for p in (UQM_ROOT, TUXPAINT_ROOT, FILLETS_ROOT, FESTVOX_RU_ROOT)),
    reason="recorded speech packages missing: scripts/install_corpus_tools.sh --recorded",
)
def test_installed_packages_give_the_measured_corpus():
    # Ranges around what the packages gave when the readers were written (Debian 12).
    expected = {  # source: (clips, hours, speakers, languages)
        "uqm": ((8300, 8700), (10.8, 11.5), 13, {"en"}),
        "tuxpaint": ((5800, 6500), (2.3, 2.8), 11, {"be", "bg", "ca", "da", "el", "en", "es", "fr", "nl", "ro", "ru"}),
        "fillets": ((1580, 1616), (1.5, 1.7), 2, {"nl"}),
        "festvox-ru": ((610, 620), (1.6, 1.7), 1, {"ru"}),
    }
    readers = {
        "uqm": lambda r: read_uqm(report=r, with_audio=False),
        "tuxpaint": lambda r: read_tuxpaint(report=r),
        "fillets": lambda r: read_fillets(report=r),
        "festvox-ru": lambda r: read_festvox_ru(report=r),
    }
    for source, ((lo, hi), (h_lo, h_hi), speakers, languages) in expected.items():
        report = SourceReport(source)
        held_out, speakers_in = Counter(), {split: set() for split in recorded.SPLITS}
        for clip in readers[source](report):
            split = split_of(clip)
            held_out[split] += clip.duration
            speakers_in[split].add(clip.speaker)
        assert lo <= sum(report.clips.values()) <= hi, source
        assert h_lo <= report.hours <= h_hi, source
        assert len(report.speakers) == speakers and set(report.clips) == languages, source
        share = (held_out["dev"] + held_out["test"]) / sum(held_out.values())
        assert 0.14 <= share <= 0.22 and held_out["dev"] and held_out["test"], (source, share)
        if source == "uqm":
            assert not (speakers_in["train"] & (speakers_in["dev"] | speakers_in["test"]))
