"""``python -m voiceclap.evaluation --help``: the same command as ``voiceclap eval``."""

import sys

from .cli import build_parser, eval_from_args

sys.exit(eval_from_args(build_parser().parse_args()))
