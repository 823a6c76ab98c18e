"""`python -m vinom.cli`: the `vinom` console script (vinom.cli.main)."""

import sys

from vinom.cli import main

sys.exit(main())
