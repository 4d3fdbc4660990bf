import random

import pytest

from voiceclap.corruption import Vocabulary, build_vocabulary, corrupt_transcript, make_corruptions
from voiceclap.metrics import error_rate
from voiceclap.text import units

TEN = "One two three four five six seven eight nine ten."
# Disjoint from TEN, so a substitution or insertion can never recreate an original word.
VOCAB = ["apple", "banana", "cherry", "grape", "lemon", "mango", "olive", "peach"]
ZH = "我们今天去公园散步吧。"  # 10 characters + a full stop
ZH_VOCAB = list("山水火木金土日月")


def _corrupt(text=TEN, language="en", fraction=0.3, vocabulary=VOCAB, seed=0, **kw):
    return corrupt_transcript(text, language, fraction, vocabulary, random.Random(seed), **kw)


def test_ten_words_at_0_3_is_three_edits():
    for seed in range(20):
        c = _corrupt(seed=seed)
        assert len(c.ops) == 3
        assert c.edit_fraction == pytest.approx(0.3)
        assert c.error_rate == error_rate(TEN, c.text, "en")  # measured, not assumed


@pytest.mark.parametrize(
    "op, wer, n_words",
    [("delete", 0.3, 7), ("substitute", 0.3, 10), ("insert", 0.3, 13)],
)
def test_single_operation_wers_are_exact(op, wer, n_words):
    for seed in range(10):
        c = _corrupt(seed=seed, operations=(op,))
        assert c.ops == (op,) * 3
        assert c.error_rate == pytest.approx(wer)
        assert len(units(c.text, "en")) == n_words


def test_a_swap_costs_two_word_errors():
    c = _corrupt(fraction=0.1, operations=("swap",))
    assert c.ops == ("swap",)
    assert sorted(units(c.text, "en")) == sorted(units(TEN, "en"))
    assert c.error_rate == pytest.approx(0.2)


def test_character_level_for_zh():
    c = _corrupt(ZH, "zh", 0.3, ZH_VOCAB, operations=("delete",))
    assert c.ops == ("delete",) * 3
    assert c.error_rate == pytest.approx(0.3)  # CER
    assert len(c.text) == 8 and c.text.endswith("。")  # punctuation is neither a unit nor edited
    s = _corrupt(ZH, "zh", 0.5, ZH_VOCAB, operations=("substitute",))
    assert s.error_rate == pytest.approx(0.5)
    assert sum(a != b for a, b in zip(s.text, ZH)) == 5


def test_mixed_zh_corruptions_measure_cer():
    for seed in range(10):
        c = _corrupt(ZH, "zh", 0.4, ZH_VOCAB, seed=seed)
        assert len(c.ops) == 4
        assert c.error_rate == error_rate(ZH, c.text, "zh")


def test_edit_count_rounds_half_up_and_is_at_least_one():
    assert len(_corrupt(fraction=0.25).ops) == 3
    assert len(_corrupt(fraction=0.35).ops) == 4
    assert len(_corrupt(fraction=0.01).ops) == 1
    assert len(_corrupt(fraction=1.0).ops) == 10


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.01])
def test_fraction_must_be_in_unit_interval(fraction):
    with pytest.raises(ValueError):
        _corrupt(fraction=fraction)


def test_substitution_never_keeps_the_same_word():
    # Vocabulary = the sentence's own two words: every substitution must flip the word.
    c = _corrupt("a b a b a b", fraction=1.0, vocabulary=["a", "b"], operations=("substitute",))
    assert c.text == "b a b a b a"
    # Six substitutions, yet the result is the original shifted by one word: 2 edits away. This is
    # why the label is measured with jiwer rather than taken from the edit count.
    assert c.edit_fraction == 1.0
    assert c.error_rate == pytest.approx(2 / 6)


def test_delete_only_cannot_empty_the_transcript():
    with pytest.raises(ValueError, match="cannot make"):
        _corrupt(fraction=1.0, operations=("delete",))


def test_unknown_operation_rejected():
    with pytest.raises(ValueError):
        _corrupt(operations=("shuffle",))


def test_presentation_is_preserved():
    # Initial capital and final punctuation survive whatever the edits do to the first/last word.
    for seed in range(30):
        text = _corrupt('"The cat sat on the mat, quietly."', fraction=0.6, seed=seed).text
        assert text.startswith('"') and text[1].isupper() and text.endswith('."')
        assert ",." not in text


def test_swap_moves_words_not_punctuation():
    c = _corrupt("Hello, world.", fraction=0.5, operations=("swap",))
    assert c.text == "World, hello."


def test_deterministic_given_seed():
    a = make_corruptions(TEN, "en", 5, VOCAB, random.Random(42))
    b = make_corruptions(TEN, "en", 5, VOCAB, random.Random(42))
    c = make_corruptions(TEN, "en", 5, VOCAB, random.Random(43))
    assert a == b
    assert a != c


def test_make_corruptions_stratified_and_distinct():
    for seed in range(10):
        out = make_corruptions(TEN, "en", 5, VOCAB, random.Random(seed))
        assert len(out) == 5
        fractions = [c.edit_fraction for c in out]
        assert fractions == sorted(fractions)  # one draw per bin, bins in order
        assert fractions[0] <= 0.2 and fractions[-1] >= 0.8  # round(10 * f) for f in (0.8, 1]
        keys = {tuple(units(c.text, "en")) for c in out}
        assert len(keys) == 5 and tuple(units(TEN, "en")) not in keys
        assert all(c.error_rate > 0 for c in out)


def test_make_corruptions_explicit_fractions():
    out = make_corruptions(TEN, "en", 2, VOCAB, random.Random(0), fractions=[0.1, 0.5])
    assert [len(c.ops) for c in out] == [1, 5]
    with pytest.raises(ValueError):
        make_corruptions(TEN, "en", 3, VOCAB, random.Random(0), fractions=[0.1, 0.5])


def test_build_vocabulary_ranks_by_frequency():
    vocab = build_vocabulary(["The cat.", "the dog, the CAT", "a bird"], "en", max_size=3)
    assert list(vocab) == ["the", "cat", "dog"]
    assert "bird" not in vocab and len(vocab) == 3
    zh = build_vocabulary(["山水山", "水火"], "zh")
    assert list(zh) == ["山", "水", "火"]


def test_vocabulary_validation():
    assert list(Vocabulary(["Apple", "apple", "Pear!"], "en")) == ["apple", "pear"]
    with pytest.raises(TypeError):
        Vocabulary({"apple", "pear"}, "en")  # unordered: would break seeded determinism
    with pytest.raises(ValueError):
        Vocabulary(["two words", "pear"], "en")
    with pytest.raises(ValueError):
        Vocabulary(["山水", "火"], "zh")  # char-level entries are single characters
    with pytest.raises(ValueError):
        Vocabulary(["apple", "APPLE"], "en")  # fewer than 2 distinct units
    with pytest.raises(ValueError):
        corrupt_transcript(TEN, "en", 0.3, Vocabulary(ZH_VOCAB, "zh"), random.Random(0))


def test_vocabulary_sample_excludes():
    vocab = Vocabulary(["a", "b", "c"], "en")
    rng = random.Random(0)
    draws = {vocab.sample(rng, exclude="b") for _ in range(200)}
    assert draws == {"a", "c"}
