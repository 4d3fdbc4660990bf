"""``voiceclap eval``: every set through every scorer (CLAP, ASR-WER, Whisper teacher), each measure
from :mod:`voiceclap.protocol`, one report.

Only the argument parser is imported eagerly, so that building the ``voiceclap`` command line does
not load torch and transformers; the rest loads on first use.
"""

from .cli import add_eval_arguments, eval_from_args

__all__ = ["add_eval_arguments", "eval_from_args"]
