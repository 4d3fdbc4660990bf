"""Tokenizers for the text tower: any Hugging Face tokenizer, or a file-free byte-level one for tests."""

from __future__ import annotations

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

BYTE_LEVEL = "byte-level"
BYTE_LEVEL_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # XLM-R's order, so pad is 1 as there


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """One token per UTF-8 byte: covers every language, needs no vocabulary file (tiny test models)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(BYTE_LEVEL_SPECIALS + sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def load_tokenizer(source: str) -> PreTrainedTokenizerBase:
    if source == BYTE_LEVEL:
        return byte_level_tokenizer()
    from .weights import resolve_encoder_source

    return AutoTokenizer.from_pretrained(resolve_encoder_source(source))
