"""vinom's benchmark harness: `python -m benchmarks <scenario>`, run from a checkout.

Not part of the installed package: it needs its own requirements
(benchmarks/requirements.txt) and measures the vinom that is **installed**,
not the checkout's sources. Python puts the current directory (the
checkout) first on `sys.path` for `python -m`; importing this package takes
the directory that holds it off `sys.path` again, before anything imports
vinom, so that `import vinom` finds the installed build (compiled where it
could be; every result's `build` key says which). Set VINOM_BENCH_SOURCES=1
to measure the sources instead (the test suite's pure-Python run does).
"""

from __future__ import annotations

import os
import sys


def _use_the_installed_vinom() -> None:
    here = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if "vinom" in sys.modules:
        return  # imported already (the test suite): measure that one
    sys.path[:] = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
    try:
        import vinom  # noqa: F401
    except ImportError:
        sys.stderr.write(
            "benchmarks measure the installed vinom, and none is installed here:"
            " run `pip install .` first (or set VINOM_BENCH_SOURCES=1 to measure the sources)\n"
        )
        raise SystemExit(2) from None


if not os.environ.get("VINOM_BENCH_SOURCES"):
    _use_the_installed_vinom()
