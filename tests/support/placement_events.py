"""`hear_placements`: what a lobby's stream of placement events (vinom.cluster.channel)
receives from now on, as a test reads it beside the real parts (a game host's agent,
the registry's scripts) on a real Redis."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from vinom.cluster.client import RedisClient


async def hear_placements(case: TestCase, redis: RedisClient, lobby_id: str,
                          prefix: str = "vinom:") -> list[Any]:  # fmt: skip
    """The events added to lobby `lobby_id`'s stream from now on, decoded, in order,
    read as they come (`XREAD ... BLOCK`) until the test ends."""
    key = f"{prefix}placements:{lobby_id}"
    newest = await redis.handler.execute_command("XREVRANGE", key, "+", "-", "COUNT", 1)
    last = [str(newest[0][0]) if newest else "0-0"]
    heard: list[Any] = []
    reading = [True]

    async def read() -> None:
        while reading[0]:
            reply = await redis.handler.execute_command(
                "XREAD", "COUNT", 100, "BLOCK", 100, "STREAMS", key, last[0]
            )
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last[0] = str(entry_id)
                    event = dict(zip(fields[::2], fields[1::2], strict=True))["m"]
                    heard.append(json.loads(event))

    reader = Deferred.fromCoroutine(read())

    def stop() -> Deferred[None]:
        reading[0] = False
        return reader

    case.addCleanup(stop)
    return heard
