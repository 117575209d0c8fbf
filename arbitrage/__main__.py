"""`python -m arbitrage` runs the command line."""

import sys

from arbitrage.cli import main

sys.exit(main())
