"""`python -m vinom.cli`: the `vinom` console script (vinom.cli.main)."""

import sys

from vinom.cli import main

if __name__ == "__main__":  # importing the module (the suite walks every one) runs nothing
    sys.exit(main())
