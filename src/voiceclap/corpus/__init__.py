"""`voiceclap corpus build`: a multilingual synthetic speech corpus from offline TTS engines.

Sentences (:mod:`.sentences`) are spoken by espeak-ng, MBROLA, SVOX Pico and flite voices
(:mod:`.tts`) with seeded prosody and acoustic variation (:mod:`.augment`) and written as
WebDataset shards in Emilia's layout with train / held-out / gold splits (:mod:`.build`).
Install the engines and sources with ``scripts/install_corpus_tools.sh``.

Not imported by the library: only the CLI and ``python -m voiceclap.corpus`` use it.
"""

from voiceclap.corpus.build import (
    BuildConfig,
    add_build_arguments,
    build_corpus,
    build_from_args,
)

__all__ = ["BuildConfig", "add_build_arguments", "build_corpus", "build_from_args"]
