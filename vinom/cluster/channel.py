"""The placement channel's shared parts: its keys, its messages' host addresses, and
the one script that records a match's outcome (vinom.cluster.placement has the
steps; `RemoteMatchHosting` there and `HostAgent` in vinom.cluster.agent are
its two ends).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred

from vinom.cluster.client import RedisClient, Script, milliseconds
from vinom.cluster.settings import PlacementSettings
from vinom.protocol.address import HostAddress

# KEYS: the match's outcome key. ARGV: the outcome (JSON), its TTL (ms), the channel.
# Records the outcome unless one is recorded already (the first decides) and, if it
# did, publishes it: one call.
_DECIDE = Script("""
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  redis.call('PUBLISH', ARGV[3], ARGV[1])
  return 1
end
return 0
""")


@frozen
class PlacementKeys:
    """The Redis keys and channel of the placement channel under one prefix."""

    prefix: str

    @property
    def channel(self) -> str:
        return self.prefix + "placements"

    def requests(self, host_id: str) -> str:
        return f"{self.prefix}place:{host_id}"

    def placer(self, match_id: str) -> str:
        return f"{self.prefix}placer:{match_id}"

    def claim(self, match_id: str, attempt: int) -> str:
        return f"{self.prefix}claim:{match_id}:{attempt}"

    def outcome(self, match_id: str) -> str:
        return f"{self.prefix}outcome:{match_id}"


def address_json(address: HostAddress) -> dict[str, Any]:
    """A host address as the channel's messages carry it."""
    data: dict[str, Any] = {"host": address.host, "port": address.port}
    if address.game_url is not None:
        data["game_url"] = address.game_url
    return data


def address_from(data: Mapping[str, Any]) -> HostAddress:
    """The host address of a channel message (`address_json`)."""
    game_url = data.get("game_url")
    return HostAddress(
        str(data["host"]), int(data["port"]), game_url=None if game_url is None else str(game_url)
    )


def decide(redis: RedisClient, keys: PlacementKeys, settings: PlacementSettings,
            outcome: Mapping[str, Any]) -> Deferred[bool]:  # fmt: skip
    """Record a match's outcome (`placed` or `failed`) and publish it, unless an outcome
    is recorded already; whether this one was."""
    text = json.dumps(outcome, separators=(",", ":"))
    d = redis.run(
        _DECIDE, [keys.outcome(str(outcome["match_id"]))],
        [text, milliseconds(settings.key_ttl), keys.channel],
    )  # fmt: skip
    return d.addCallback(lambda recorded: recorded == 1)
