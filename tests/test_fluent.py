import itertools
import random

import numpy as np
import pytest
from rapidfuzz.distance import Levenshtein

from voiceclap.clips import Candidate
from voiceclap.corpus.minimal_pairs import MAX_PAIR_ERROR_RATE, MAX_WORDS_DIFFER, MinimalPair, minimal_pairs
from voiceclap.fluent import (
    FluentContext,
    draw_near,
    fluent_candidates,
    natural_substitutions,
    near_sentences,
    substitute_words,
)
from voiceclap.metrics import error_rate
from voiceclap.phonemes import espeak_available, espeak_phonemes
from voiceclap.text import units

SUBJECTS = ("I", "You", "We", "They")
VERBS = ("like", "see", "feed")
OBJECTS = ("cats", "dogs", "birds")
# Every subject-verb-object sentence, so each verb and object is attested in every frame.
GRID = [f"{s} {v} {o}." for s, v, o in itertools.product(SUBJECTS, VERBS, OBJECTS)]
# "Tom" fits after "like" but is a name (capitalized mid-sentence); "frogs" is seen once only.
EXTRA = ["I like Tom.", "You like Tom.", "We like Tom.", "They like frogs."]
CORPUS = GRID + EXTRA


@pytest.fixture(scope="module")
def context():
    return FluentContext.build(CORPUS, "en")


def _ngrams(words, n):
    return set(zip(*(words[i:] for i in range(n))))


def _corpus_ngrams(sentences, n):
    found = set()
    for sentence in sentences:
        found |= _ngrams(["<s>", *units(sentence, "en"), "</s>"], n)
    return found


def test_substitutions_are_deterministic_for_a_seed(context):
    runs = [natural_substitutions("I like cats.", context, 4, random.Random(7)) for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(runs[0]) == 4  # see, feed (verb); dogs, birds (object)


def test_substitution_labels_and_normalized_difference(context):
    rng = random.Random(0)
    for sentence in GRID:
        for candidate in natural_substitutions(sentence, context, 4, rng):
            assert candidate.kind == "fluent"
            assert candidate.error_rate == error_rate(sentence, candidate.text, "en")
            assert units(candidate.text, "en") != units(sentence, "en")
            assert candidate.text.endswith(".") and candidate.text[0].isupper()


def test_substitutions_keep_attested_bigrams_and_trigrams(context):
    bigrams, trigrams = _corpus_ngrams(CORPUS, 2), _corpus_ngrams(CORPUS, 3)
    rng = random.Random(1)
    for sentence in GRID:
        for candidate in natural_substitutions(sentence, context, 4, rng):
            words = ["<s>", *units(candidate.text, "en"), "</s>"]
            assert _ngrams(words, 2) <= bigrams
            assert _ngrams(words, 3) <= trigrams


def test_substitutes_are_the_same_kind_and_frequent_enough(context):
    # "Tom" follows "like" three times, but is written as a name; "frogs" was seen once.
    rng = random.Random(2)
    variants = {c.text for _ in range(3) for c in natural_substitutions("We like cats.", context, 5, rng)}
    assert variants == {"We see cats.", "We feed cats.", "We like dogs.", "We like birds."}


def test_two_word_substitution_changes_two_words(context):
    for seed in range(10):
        candidate = substitute_words("They see dogs.", context, random.Random(seed), n_words=2)
        assert candidate is not None
        assert Levenshtein.distance(units("They see dogs.", "en"), units(candidate.text, "en")) == 2
        assert candidate.error_rate == pytest.approx(2 / 3)


def test_no_substitute_when_nothing_fits(context):
    assert substitute_words("Zebras quietly yodel.", context, random.Random(0)) is None


def test_spelling_variants_and_homophones_are_not_substitutes():
    corpus = [f"{s} {v} {o}." for s, v, o in itertools.product(SUBJECTS, ("want", "buy"), ("tea", "café", "cafe", "wine"))]
    sounds = {"tea": "ti:", "wine": "ti:"}  # pretend "wine" sounds like "tea"

    def pronounce(words, language):
        return [sounds.get(w, w) for w in words]

    context = FluentContext.build(corpus, "en", pronounce=pronounce)
    rng = random.Random(0)
    offered = {c.text for _ in range(3) for c in natural_substitutions("I want café.", context, 3, rng)}
    assert "I want cafe." not in offered  # the same word without its accent
    assert "I want tea." in offered
    offered = {c.text for _ in range(3) for c in natural_substitutions("I want tea.", context, 3, rng)}
    assert "I want wine." not in offered  # sounds the same
    assert {"I want café.", "I want cafe."} <= offered


def test_character_languages_are_not_supported():
    with pytest.raises(ValueError, match="space-delimited"):
        FluentContext.build(["我们今天去公园散步吧。"], "zh")


def _random_corpus(n_sentences=400, seed=3):
    # Equal-length made-up words, so two different word sequences never join to the same letters.
    vocabulary = ["bal", "cor", "dun", "fep", "gim", "hox", "jut", "kev", "lor", "mip", "nud", "pag"]
    rng = random.Random(seed)
    sentences = set()
    while len(sentences) < n_sentences:
        words = rng.choices(vocabulary, k=rng.randint(4, 8))
        sentences.add(" ".join(words).capitalize() + ".")
    return sorted(sentences)


def test_near_sentences_match_a_brute_force_scan():
    corpus = _random_corpus()
    context = FluentContext.build(corpus, "en")
    for query in corpus[:25]:
        expected = {s for s in corpus if 0.1 <= error_rate(query, s, "en") <= 0.5 and s != query}
        found = near_sentences(query, context, 0.1, 0.5)
        assert {c.text for c in found} == expected
        assert all(c.error_rate == error_rate(query, c.text, "en") for c in found)
        assert [c.error_rate for c in found] == sorted(c.error_rate for c in found)


def test_near_sentences_find_a_planted_near_duplicate():
    said = "The quick brown fox jumps over the lazy dog."
    planted = "The quick brown fox leaps over the lazy dog."
    context = FluentContext.build([*_random_corpus(), said, planted], "en")
    found = near_sentences(said, context)
    assert [(c.text, c.error_rate) for c in found] == [(planted, pytest.approx(1 / 9))]


def test_near_sentences_skip_contractions_and_the_sentence_itself():
    said = "I am sure that he will come today."
    corpus = [said, "I'm sure that he will come today.", "I am sure that she will come today."]
    found = near_sentences(said, FluentContext.build(corpus, "en"))
    assert [c.text for c in found] == ["I am sure that she will come today."]


def test_draw_near_keeps_a_pair_of_lone_neighbours():
    # Each is the other's only neighbour: keep probability min(1, k/1, k/1) = 1.
    pair = ["The quick brown fox jumps over the lazy dog.", "The quick brown fox leaps over the lazy dog."]
    context = FluentContext.build([*_random_corpus(), *pair], "en")
    for seed in range(5):
        assert [c.text for c in draw_near(pair[0], context, 1, random.Random(seed))] == [pair[1]]


def test_fluent_candidates_mix_both_kinds():
    pair = ["I really like cats.", "I really like dogs a lot."]
    corpus = GRID + EXTRA + pair + [f"{s} really {v} {o}." for s, v, o in itertools.product(SUBJECTS, VERBS, OBJECTS)]
    context = FluentContext.build(corpus, "en")
    candidates = fluent_candidates(pair[0], "en", 4, random.Random(0), context)
    assert all(isinstance(c, Candidate) and c.kind == "fluent" for c in candidates)
    texts = [c.text for c in candidates]
    assert len(texts) == 4 and len(set(texts)) == 4 and pair[0] not in texts
    assert all(c.error_rate == error_rate(pair[0], c.text, "en") for c in candidates)
    assert fluent_candidates(pair[0], "en", 4, random.Random(0), context) == candidates
    with pytest.raises(ValueError, match="context is for"):
        fluent_candidates(pair[0], "de", 4, random.Random(0), context)


def test_save_and_load_round_trip(tmp_path, context):
    path = tmp_path / "en.npz"
    context.save(path)
    loaded = FluentContext.load(path)
    assert loaded.language == "en" and loaded.sentences == context.sentences
    for sentence in GRID[:5]:
        assert natural_substitutions(sentence, loaded, 3, random.Random(4)) == natural_substitutions(
            sentence, context, 3, random.Random(4)
        )
        assert loaded.log_probability(sentence) == context.log_probability(sentence)


def test_model_probabilities_sum_to_one(context):
    every_word = np.arange(len(context.words))
    like, i, start = (context.words.index(w) for w in ("like", "i", "<s>"))
    assert context.probability(every_word, like).sum() == pytest.approx(1.0)  # bigram
    assert context.probability(every_word, like, i).sum() == pytest.approx(1.0)  # trigram
    assert context.probability(every_word, i, start).sum() == pytest.approx(1.0)
    # A corpus sentence beats the same words shuffled.
    assert context.log_probability("I like cats.") > context.log_probability("Cats I like.")


def test_minimal_pairs_differ_in_one_or_two_words():
    sentences = GRID + ["I like cats a lot.", "I like cats, a lot."]  # the second is no new sentence
    pairs = minimal_pairs(sentences, "en", 10, seed=0)
    assert len(pairs) == 10
    seen = set()
    for pair in pairs:
        said, variant = units(pair.said, "en"), units(pair.variant, "en")
        assert 1 <= Levenshtein.distance(said, variant) <= MAX_WORDS_DIFFER
        assert pair.error_rate == error_rate(pair.said, pair.variant, "en")
        assert max(pair.error_rate, error_rate(pair.variant, pair.said, "en")) <= MAX_PAIR_ERROR_RATE + 1e-9
        assert pair.said in sentences
        assert tuple(said) not in seen and tuple(variant) not in seen  # a sentence is in one pair at most
        seen |= {tuple(said), tuple(variant)}
    assert minimal_pairs(sentences, "en", 10, seed=0) == pairs
    assert minimal_pairs(sentences, "en", 10, seed=1) != pairs


def test_minimal_pairs_fall_back_on_substitutions():
    # No sentence of the context is within a word of the said one, but "cats" fits where "birds" is.
    said = "They feed the birds."
    context = FluentContext.build([said, "We feed the cats.", "You feed the cats.", "I see the cats."], "en")
    pairs = minimal_pairs([said], "en", 3, seed=0, context=context)
    assert pairs == [MinimalPair(said, "They feed the cats.", 0.25, "substitution")]
    # An evaluation set excludes the training sentences, as said sentences and as variants.
    assert minimal_pairs([said], "en", 3, seed=0, context=context, exclude=["They feed the cats."]) == []
    assert minimal_pairs([said], "en", 3, seed=0, context=context, exclude=[said]) == []


@pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed (apt-get install espeak-ng)")
def test_espeak_phonemes_tell_homophones():
    there, their, cat, dog = espeak_phonemes(["there", "their", "cat", "dog"], "en")
    assert there == their and cat != dog
    assert espeak_phonemes([], "en") == []
    with pytest.raises(ValueError):
        espeak_phonemes(["two words"], "en")
