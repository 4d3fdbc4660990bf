"""``python -m voiceclap.corpus build [options]``: the corpus builder without the voiceclap CLI;
``python -m voiceclap.corpus voices [options]``: the intelligibility check of the TTS voices."""

from __future__ import annotations

import argparse
import sys

from voiceclap.corpus import voice_check
from voiceclap.corpus.build import add_build_arguments, build_from_args

_DESCRIPTION = """\
Build the synthetic training/evaluation corpus: cleaned sentences in de/en/fr/es/it spoken by
offline TTS voices (espeak-ng, MBROLA, SVOX Pico, flite) with random rate, pitch, volume, noise,
reverberation and MP3 round trips, written as WebDataset tar shards in Emilia's layout
(<key>.json + <key>.flac) under OUT/{heldout,gold,train}/, plus OUT/summary.json.

Held-out clips use voices AND sentences never seen in training; gold clips are held-out voices
speaking corrupted held-out sentences, labelled with the true WER. The build is deterministic
in --seed and resumable: re-run the same command to continue an interrupted build.
Install the engines and sentence sources first: scripts/install_corpus_tools.sh
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
        help="synthesize the corpus shards",
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
