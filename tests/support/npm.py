"""Test helper: Node.js and npm as the web client's tests run them.

They are Debian's `nodejs` and `npm` (scripts/test installs them when missing):
a missing one fails the test with the command that installs it, never skips.
npm runs with the user's npm cache (so that a package fetched once is not
fetched again) and any proxy or npm setting of the user's, nothing else of the
test's environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# Where Debian puts node and npm: the PATH of the processes started with them.
PATH = "/usr/bin:/bin"


def tool(name: str) -> str:
    """The path of `node` or `npm`, or a failure that says how to install it."""
    found = shutil.which(name, path=PATH)
    if found is None:
        package = "nodejs" if name == "node" else name
        raise AssertionError(
            f"this test needs {name}: run scripts/test, or `apt-get install -y {package}`"
        )
    return found


def npm_env(**extra: str) -> dict[str, str]:
    """The environment of a node or npm process: PATH, HOME (npm's cache), the proxy
    and `npm_config_*` settings of the user's, and `extra`."""
    return {
        "PATH": PATH,
        "HOME": str(Path.home()),
        **{
            name: value
            for name, value in os.environ.items()
            if name.lower().endswith("_proxy") or name.lower().startswith("npm_config_")
        },
        **extra,
    }
