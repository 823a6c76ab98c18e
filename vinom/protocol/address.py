"""Where a game host listens, as connect tokens name it and clients reach it."""

from __future__ import annotations

from attrs import frozen


@frozen
class HostAddress:
    """Where clients send their UDP packets."""

    host: str
    port: int
