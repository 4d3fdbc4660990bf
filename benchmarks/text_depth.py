"""How much of a transcript's surface form each layer of the text encoder keeps.

For held-out sentences and their edit-corrupted versions, Spearman rho between the corruption's WER and
cos(pooled(original), pooled(corrupted)) at every layer. A layer whose similarity falls steadily with WER
is one a projection can turn into a WER-graded score. Text only: no audio, no training.

    python benchmarks/text_depth.py --shards 'data/corpus/synthetic/heldout/shard-*.tar' --sentences 300
"""

import argparse
import random

import numpy as np
import torch
from scipy.stats import spearmanr

from voiceclap.clips import read_clips
from voiceclap.corruption import build_vocabulary, make_corruptions
from voiceclap.heads import masked_mean
from voiceclap.model import VoiceCLAP


def heldout_sentences(pattern: str, limit: int) -> list[tuple[str, str]]:
    clips = read_clips(pattern, with_audio=False)  # the .json members only
    rows = [(clip.text.strip(), clip.language) for clip in clips]
    random.Random(0).shuffle(rows)
    return rows[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", required=True)
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--config", default="whisper-base-e5small")
    args = parser.parse_args()

    rows = heldout_sentences(args.shards, args.sentences)
    vocab = {lang: build_vocabulary([t for t, l in rows if l == lang], lang) for lang in {l for _, l in rows}}
    rng = random.Random(1)
    model = VoiceCLAP.from_config(args.config).eval()
    per_layer: dict[int, list[tuple[float, float]]] = {}
    for text, lang in rows:
        corruptions = make_corruptions(text, lang, 5, vocab[lang], rng)
        candidates = [text] + [c.text for c in corruptions]
        wers = [c.error_rate for c in corruptions]
        batch = model.tokenize(candidates)
        with torch.inference_mode():
            out = model.text.encoder(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
        for layer, hidden in enumerate(out.hidden_states):
            pooled = torch.nn.functional.normalize(masked_mean(hidden, batch.attention_mask), dim=-1)
            cos = (pooled[1:] @ pooled[0]).tolist()
            per_layer.setdefault(layer, []).extend(zip(cos, wers))
    print("| layer | rho(cos(orig, corrupted), WER) |\n|---|---|")
    for layer, pairs in per_layer.items():
        cos, wer = np.array(pairs).T
        print(f"| {layer} | {spearmanr(cos, wer).statistic:.3f} |")


if __name__ == "__main__":
    main()
