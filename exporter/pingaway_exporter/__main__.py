"""Lets ``python -m pingaway_exporter`` behave exactly like the console script."""

import sys

from pingaway_exporter.cli import main

sys.exit(main())
