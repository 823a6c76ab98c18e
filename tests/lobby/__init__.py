"""Tests of vinom.lobby: frames, connections, requests, limits, parties and rooms."""

from __future__ import annotations

from typing import Any

from vinom.lobby.request_types import GAME_PROTOCOL


def said(frame: dict[str, Any]) -> dict[str, Any]:
    """`frame` (a `hello` or `reconnect`) from a client of the server's game protocol:
    without "protocol" it speaks 1, and is refused every connect token by a lobby
    of another (docs/lobby.md, "The game protocol")."""
    return {**frame, "protocol": GAME_PROTOCOL}


def hello(name: str, **fields: Any) -> dict[str, Any]:
    """A `hello` saying the server's game protocol, as every current client's does."""
    return said({"type": "hello", "name": name, **fields})


def reconnect(player_id: str, secret: str, **fields: Any) -> dict[str, Any]:
    """A `reconnect` saying the server's game protocol, as every current client's does."""
    return said({"type": "reconnect", "player_id": player_id, "secret": secret, **fields})
