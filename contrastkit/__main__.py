"""`python -m contrastkit` runs the command line."""

import sys

from contrastkit.cli import main

sys.exit(main())
