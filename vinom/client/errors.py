"""Plain-language descriptions of what went wrong talking to a vinom server.

Shared by the command line (`vinom.cli`) and the terminal client
(`vinom.client.tui`), so that neither has to import the other.
"""

from __future__ import annotations

import os

from twisted.internet.error import (
    ConnectError,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.python.failure import Failure

from vinom.client.lobby import LobbyAddress, LobbyError
from vinom.client.udp import ConnectFailedError

# Where `twistd vinom` keeps its dev certificate (its --data-dir), and where the
# command-line clients look for it when no --trust is given.
DEFAULT_TRUST = os.path.join("vinom-data", "dev-cert.pem")


# Why the handshake with a match's game server failed (vinom.client.udp), in words.
_GAME_CONNECT = {
    "timeout": "the match's game server did not answer in time (is UDP to it blocked?)",
    "denied": "the match's game server refused the connection",
    "token_expired": "the connect token expired before the match's game server answered",
}


def describe_failure(failure: Failure | BaseException, lobby: LobbyAddress) -> str:
    """One line saying what went wrong talking to the server."""
    error = failure.value if isinstance(failure, Failure) else failure
    where = f"{lobby.host}:{lobby.port}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot reach the lobby at {where}: connection refused (is the server running?)"
    if isinstance(error, TCPTimedOutError | TimeoutError):
        return f"cannot reach the lobby at {where}: timed out"
    if isinstance(error, DNSLookupError):
        return f"cannot reach the lobby at {where}: no such host"
    if isinstance(error, ConnectError):
        return f"cannot reach the lobby at {where}: {error}"
    if isinstance(error, LobbyError):
        said = f"the lobby at {where} refused: {error.code}: {error.message}"
        # The commands' way to answer it (docs/client.md, "Signing in").
        return said + (" (--auth says how to sign in: see --help)"
                       if error.code == "auth_failed" else "")  # fmt: skip
    if isinstance(error, ConnectFailedError):
        reason = error.reason
        return _GAME_CONNECT.get(reason, f"could not connect to the match's game server: {reason}")
    text = str(error)
    if "certificate verify failed" in text and lobby.trust is None:
        # Most often: the server runs on its dev certificate and this client was
        # started outside the directory holding it, so nothing says to trust it.
        return (
            f"TLS with the lobby at {where} failed: its certificate is not trusted here "
            f"(no --trust given, and no {DEFAULT_TRUST} in this directory); pass the "
            f"server's certificate, e.g. --trust SERVER-DIR/{DEFAULT_TRUST}, the file "
            "the server names when it starts"
        )
    if "certificate" in text.lower() or type(error).__name__ == "Error":
        hint = f" (trusting {lobby.trust})" if lobby.trust else " (no --trust given)"
        return f"TLS with the lobby at {where} failed{hint}: {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
