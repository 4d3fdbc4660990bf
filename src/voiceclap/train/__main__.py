import sys

from voiceclap.train.main import main

sys.exit(main())
