"""``python -m mailout`` runs the command line."""

import sys

from mailout.cli import main

sys.exit(main())
