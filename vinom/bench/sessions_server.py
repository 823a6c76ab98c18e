"""Server side of the session scenarios: vinom game hosts built directly from the pieces.

Waits for the UDP helper's `ServerEndpoint` and `GameHostProtocol`.
"""

from __future__ import annotations

from typing import Any


def start_echo_host(reactor: Any, key: bytes, interface: str, port: int) -> Any:
    """A vinom session echo host; not runnable until vinom.hosting.udp exists."""
    raise NotImplementedError("vinom.hosting.udp.GameHostProtocol has not landed yet")
