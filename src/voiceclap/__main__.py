"""`python -m voiceclap` runs the `voiceclap` command (also what `torchrun -m voiceclap` starts)."""

import sys

from voiceclap.cli import main

sys.exit(main())
