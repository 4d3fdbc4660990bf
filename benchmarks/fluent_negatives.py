"""Do fluent negatives fool a text prior, where the card's random corruptions do not?

Per language, the corpus sentences (voiceclap.corpus.sentences.load_sentences) are split in two
halves at random: the text prior is an n-gram model trained on half A only (a bigram and a trigram
reading of :class:`voiceclap.fluent.FluentContext`); the negatives are made from half B with a
context built on B alone, so the prior has seen neither the sentences nor their variants, and its
statistics are independent of the generator's. For held-out sentences of B, the table gives the
fraction of (sentence, negative) pairs in which the prior gives the true sentence the higher
probability (ties count half): 0.5 means reading cannot tell them apart, 1.0 means it always can.

Also printed: the context's build time and file size on the whole corpus, the number of real
minimal pairs, and random examples of each kind for reading.

    python benchmarks/fluent_negatives.py --languages de,en,fr,es,it --test 1000 --out /tmp/fluent
"""

import argparse
import random
import time
from pathlib import Path

from voiceclap.corpus.minimal_pairs import corpus_pairs, minimal_pairs
from voiceclap.corpus.sentences import LANGUAGES, load_sentences
from voiceclap.corruption import build_vocabulary, make_corruptions
from voiceclap.fluent import FluentContext, draw_near, substitute_words
from voiceclap.phonemes import espeak_available, espeak_phonemes
from voiceclap.text import units

EXAMPLES = 15
PAIRS = 200


def prefers_original(prior: FluentContext, original: str, negative: str, order: int, per_word: bool) -> float:
    scores = []
    for text in (original, negative):
        score = prior.log_probability(text, order)
        scores.append(score / (len(units(text, prior.language)) + 1) if per_word else score)
    return 1.0 if scores[0] > scores[1] else 0.5 if scores[0] == scores[1] else 0.0


def negatives(sentence: str, generator: FluentContext, vocabulary, rng: random.Random) -> dict[str, list[str]]:
    language = generator.language
    made = {}
    for name, n_words in (("substitution, 1 word", 1), ("substitution, 2 words", 2)):
        candidate = substitute_words(sentence, generator, rng, n_words)
        made[name] = [candidate.text] if candidate else []
    made["near sentence"] = [c.text for c in draw_near(sentence, generator, 1, rng)]
    n_words = len(units(sentence, language))
    made["corruption, 1 edit"] = [c.text for c in make_corruptions(sentence, language, 1, vocabulary, rng, [1 / n_words])]
    made["corruption, card (K=5)"] = [c.text for c in make_corruptions(sentence, language, 5, vocabulary, rng)]
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--languages", default=",".join(LANGUAGES))
    parser.add_argument("--test", type=int, default=1000, help="held-out sentences per language")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fluent"), help="where the contexts are saved")
    parser.add_argument("--count-real-pairs", action="store_true", help="count every real minimal pair (slow for en)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    pronounce = espeak_phonemes if espeak_available() else None
    languages = args.languages.split(",")
    corpora = load_sentences(languages)
    rows = []
    for language in languages:
        sentences = corpora[language]
        start = time.perf_counter()
        context = FluentContext.build(sentences, language, pronounce)
        built = time.perf_counter() - start
        path = args.out / f"{language}.npz"
        context.save(path)
        start = time.perf_counter()
        FluentContext.load(path)
        loaded = time.perf_counter() - start
        print(
            f"\n## {language}: {len(sentences)} sentences, {len(context.words)} words; context built in "
            f"{built:.1f} s (espeak-ng pronunciations {'included' if pronounce else 'absent'}), "
            f"{path.stat().st_size / 1e6:.1f} MB, loaded in {loaded:.1f} s"
        )

        rng = random.Random(args.seed)
        shuffled = list(sentences)
        rng.shuffle(shuffled)
        half_a, half_b = shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2 :]
        prior = FluentContext.build(half_a, language)
        generator = FluentContext.build(half_b, language, pronounce)
        vocabulary = build_vocabulary(half_b, language)
        made = [(s, negatives(s, generator, vocabulary, rng)) for s in half_b[: args.test]]

        kinds = list(made[0][1])
        for kind in kinds:
            pairs = [(s, negative) for s, by_kind in made for negative in by_kind[kind]]
            if not pairs:
                continue
            fractions = [
                sum(prefers_original(prior, s, neg, order, per_word) for s, neg in pairs) / len(pairs)
                for order in (2, 3)
                for per_word in (False, True)
            ]
            rows.append((language, kind, len(pairs), *fractions))

        pairs_b = minimal_pairs(half_b, language, PAIRS, seed=args.seed, context=generator)
        fractions = [
            sum(prefers_original(prior, p.said, p.variant, order, per_word) for p in pairs_b) / len(pairs_b)
            for order in (2, 3)
            for per_word in (False, True)
        ]
        rows.append((language, "minimal pair (half B)", len(pairs_b), *fractions))

        for kind in ("substitution, 1 word", "substitution, 2 words", "near sentence"):
            print(f"\n{kind}:")
            shown = [(s, by_kind[kind][0]) for s, by_kind in made if by_kind[kind]]
            for original, negative in random.Random(1).sample(shown, min(EXAMPLES, len(shown))):
                print(f"- {original}  ->  {negative}")

        pairs = minimal_pairs(sentences, language, PAIRS, seed=args.seed, context=context)
        sources = {source: sum(p.source == source for p in pairs) for source in ("corpus", "substitution")}
        print(f"\nminimal pairs (whole corpus): {len(pairs)}, by source {sources}")
        if args.count_real_pairs:
            start = time.perf_counter()
            total = sum(1 for _ in corpus_pairs(sentences, context, seed=args.seed))
            print(f"real minimal pairs in the corpus: {total} ({time.perf_counter() - start:.0f} s)")
        for p in random.Random(2).sample(pairs, min(EXAMPLES, len(pairs))):
            print(f"- [{p.source}, WER {p.error_rate:.2f}] {p.said}  |  {p.variant}")

    print("\nFraction of pairs where the text prior (trained on the other half) prefers the true sentence:")
    print("| language | negative | pairs | bigram | bigram per word | trigram | trigram per word |")
    print("|---|---|---|---|---|---|---|")
    for language, kind, n, *fractions in rows:
        print(f"| {language} | {kind} | {n} | " + " | ".join(f"{f:.3f}" for f in fractions) + " |")


if __name__ == "__main__":
    main()
