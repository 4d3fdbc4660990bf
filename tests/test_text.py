import pytest

from voiceclap.text import clean_text, normalize_for_wer, units, uses_characters


def test_clean_text_repairs_mojibake_double_escaped_html_and_whitespace():
    assert clean_text("cafÃ©") == "café"
    assert clean_text("fish &amp;amp; chips") == "fish & chips"
    assert clean_text("  a \n\t b  ") == "a b"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Hello, World!", "hello world"),
        ("hello,world", "hello world"),  # punctuation separates words
        ("Don't stop", "don't stop"),  # apostrophe inside a word is kept
        ("Don’t stop", "don't stop"),  # typographic apostrophe is the same word
        ("'quoted' words'", "quoted words"),  # quote marks are not apostrophes
        ("rock 'n' roll", "rock n roll"),
        ("l'homme", "l'homme"),
        ("Ｆｕｌｌ ＷＩＤＴＨ", "full width"),  # NFKC
        ("STRASSE Straße", "strasse strasse"),  # casefold, not lower
        ("  many   spaces\n", "many spaces"),
        ("«Guillemets» — dash…", "guillemets dash"),
        ("", ""),
        ("?!.", ""),
    ],
)
def test_normalize_for_wer(text, expected):
    assert normalize_for_wer(text, "en") == expected


def test_normalize_removes_cjk_punctuation():
    assert normalize_for_wer("你好，世界。", "zh") == "你好 世界"


@pytest.mark.parametrize("language", ["zh", "ja", "zh-CN", "ja_JP", "ZH-Hant", "yue", "cmn"])
def test_character_languages(language):
    assert uses_characters(language)


@pytest.mark.parametrize("language", ["en", "de", "fr", "ko", "ko-KR"])
def test_word_languages(language):
    assert not uses_characters(language)


def test_units_words():
    assert units("The cat, the HAT.", "en") == ["the", "cat", "the", "hat"]


def test_units_characters_drop_spaces_and_punctuation():
    assert units("我们 今天，去 Ok。", "zh") == ["我", "们", "今", "天", "去", "o", "k"]


def test_units_korean_is_eojeol_level():
    assert units("나는 학교에 갑니다.", "ko") == ["나는", "학교에", "갑니다"]
