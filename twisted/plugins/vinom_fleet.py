"""vinom's fleet as a Twisted plugin providing `vinom.server.fleet.IFleet`: lobbies and game
hosts on one Redis, the gateway, the UDP relay and Agones (vinom.fleet.plugin)."""

from vinom.fleet.plugin import fleet

__all__ = ["fleet"]
