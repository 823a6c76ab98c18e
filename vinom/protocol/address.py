"""Where a game host listens, as connect tokens name it and clients reach it."""

from __future__ import annotations

from attrs import field, frozen


@frozen
class HostAddress:
    """Where clients send their UDP packets, and where browsers play the same match.

    `game_url` is the `wss://` URL of the `/game` WebSocket of the process that
    hosts the match (docs/web.md), when that process serves one and its public
    URL is known; it is not part of the address tokens name, so it takes no
    part in comparisons.
    """

    host: str
    port: int
    game_url: str | None = field(default=None, eq=False, kw_only=True)
