"""``python -m voiceclap.corpus build [options]``: the corpus builder without the voiceclap CLI;
``python -m voiceclap.corpus voices [options]``: the intelligibility check of the TTS voices."""

from __future__ import annotations

import argparse
import sys

from voiceclap.corpus import voice_check
from voiceclap.corpus.build import add_build_arguments, build_from_args

_DESCRIPTION = """\
Build the training/evaluation corpus in parts, each resumable on its own, as WebDataset tar shards in
Emilia's layout (<key>.json + <key>.flac) under OUT/<part>/<split>/, plus OUT/summary.json and
OUT/SOURCES.md (every source with its license):

  synthetic  robotic TTS voices speaking the sentences: heldout, gold (corrupted sentences with the
             true WER), train; held-out clips use voices AND sentences never seen in training
  recorded   recorded human speech from Debian packages: train, dev, test
  voices     the better TTS voices: heldout, train
  spoken     spoken negatives: a training sentence and its corruption, said alike
  pairs      the fluent minimal-pair evaluation set, spoken by held-out voices: dev, test
  annotate   fluent text candidates added to every training shard

The build is deterministic in --seed and resumable: re-run the same command to continue it.
Install the engines, sentence sources and recorded speech first:
scripts/install_corpus_tools.sh --recorded
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voiceclap.corpus",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build",
        help="build the corpus shards",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_build_arguments(build)
    voices = commands.add_parser(
        "voices",
        help="measure each voice's whisper-base error rate and real-time factor",
        description=voice_check.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    voice_check.add_voices_arguments(voices)
    args = parser.parse_args(argv)
    if args.command == "voices":
        return voice_check.voices_from_args(args)
    return build_from_args(args)


if __name__ == "__main__":
    sys.exit(main())
