"""The code examples of the docs, taken from the docs themselves, so a test runs what a
reader copies: the signed-token makers of docs/operations.md, "Authentication", and the
local JWT issuer of docs/getting-started.md, "Turn authentication on"."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def fenced(document: str, language: str, containing: str) -> str:
    """The fenced `language` block of docs/`document` that contains `containing`."""
    text = (DOCS / document).read_text(encoding="utf-8")
    for block in re.findall(rf"```{language}\n(.*?)```", text, flags=re.S):
        if containing in block:
            return str(block)
    raise AssertionError(f"no {language} block with {containing!r} in docs/{document}")


def python_example() -> Callable[[bytes, str], str]:
    """`vinom_token(key, player)` as docs/operations.md writes it."""
    namespace: dict[str, object] = {}
    exec(fenced("operations.md", "python", "def vinom_token"), namespace)
    return namespace["vinom_token"]  # type: ignore[return-value]


def node_example() -> str:
    """`vinomToken(key, player)` as docs/operations.md writes it (JavaScript source)."""
    return fenced("operations.md", "js", "function vinomToken")


def getting_started_issuer() -> dict[str, object]:
    """The namespace of docs/getting-started.md's `issuer.py` (`make_keys`, `token`),
    run as a module is imported (not as `__main__`); it works in the current directory."""
    namespace: dict[str, object] = {"__name__": "issuer"}
    exec(fenced("getting-started.md", "python", "def make_keys"), namespace)
    return namespace
