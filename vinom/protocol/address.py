"""Where a game host listens, as connect tokens name it and clients reach it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

    def to_json(self) -> dict[str, Any]:
        """The address as vinom's JSON records carry it (placements, placement events)."""
        data: dict[str, Any] = {"host": self.host, "port": self.port}
        if self.game_url is not None:
            data["game_url"] = self.game_url
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HostAddress:
        """The address `to_json` gave (KeyError, TypeError or ValueError if not one)."""
        game_url = data.get("game_url")
        return cls(str(data["host"]), int(data["port"]),
                   game_url=None if game_url is None else str(game_url))  # fmt: skip
