"""vinom's fleet as a Twisted plugin providing `vinom.server.fleet.IFleet`: lobbies and game
hosts on one Redis, the gateway, the UDP relay and Agones (vinom.fleet.plugin, named here
and imported on the first call, so that finding plugins imports nothing of the fleet)."""

from vinom.server.fleet import FleetPlugin

fleet = FleetPlugin("redis", "vinom.fleet.plugin")

__all__ = ["fleet"]
