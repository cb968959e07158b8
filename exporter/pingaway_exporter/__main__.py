"""Lets ``python -m pingaway_exporter`` behave exactly like the console script."""

import sys

from .cli import main

sys.exit(main())
