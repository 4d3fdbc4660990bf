"""`voiceclap corpus build`: a multilingual synthetic speech corpus from offline TTS engines.

Sentences (:mod:`.sentences`) are spoken by offline TTS voices (:mod:`.tts`; espeak-ng, MBROLA,
SVOX Pico, flite, RHVoice, Festival, Open JTalk, Piper, hibari under :mod:`.engines`, checked for
intelligibility by :mod:`.voice_check`) with seeded prosody and acoustic variation (:mod:`.augment`)
and written as WebDataset shards in Emilia's layout with train / held-out / gold splits (:mod:`.build`).
Install the engines and sources with ``scripts/install_corpus_tools.sh`` (the neural voices:
``pip install -e ".[voices]"``).

Not imported by the library: only the CLI and ``python -m voiceclap.corpus`` use it.
"""

from voiceclap.corpus.build import (
    BuildConfig,
    add_build_arguments,
    build_corpus,
    build_from_args,
)

__all__ = ["BuildConfig", "add_build_arguments", "build_corpus", "build_from_args"]
