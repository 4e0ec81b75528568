"""``python -m quanta``: the command line (:mod:`quanta.cli`)."""

import sys

from .cli import main

sys.exit(main())
