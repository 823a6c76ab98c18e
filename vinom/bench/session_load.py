"""Load side of the session scenarios: lean vinom clients over plain sockets.

Waits for the UDP helper's sans-I/O `ClientConnection`.
"""

from __future__ import annotations

from typing import Any


def run_echo(options: Any) -> dict[str, Any]:
    """The vinom half of udp-echo; not runnable until vinom.protocol's client exists."""
    raise NotImplementedError("vinom.protocol ClientConnection has not landed yet")
