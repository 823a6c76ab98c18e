"""Which build of vinom is running: its packet path compiled (mypyc) or pure Python.

`pip install .` compiles the game host's per-packet modules where it can
(docs/operations.md, "Building"); a checkout on `sys.path` (tests, `python -m`
from the checkout) runs the sources instead. The server logs this at start and
every benchmark result carries it.
"""

from __future__ import annotations


def version_line() -> str:
    """What `twistd vinom --version` prints: vinom's version and build, and Twisted's."""
    import twisted
    import vinom

    info = build_info()
    return f"vinom {vinom.__version__} ({info['code']} build), Twisted {twisted.__version__}"


def build_info() -> dict[str, str]:
    """`code`: "compiled" or "pure"; `aead`: the AEAD's implementation ("cryptography")."""
    from vinom.protocol import crypto, server

    compiled = not (server.__file__ or "").endswith(".py")
    return {"code": "compiled" if compiled else "pure", "aead": crypto.AEAD_IMPLEMENTATION}
