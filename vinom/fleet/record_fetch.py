"""Reading a match record out of a deployment's Redis: `vinom replay --redis URL MATCH_ID`.

With `--redis`, a game host copies each finished match's record to
`<prefix>record:<match id>` for a day (vinom.cluster.records' `REDIS_HOURS`);
`fetch_record` reads it back with one `GET`, through the same client (and the
same URL, password and CA options: vinom.fleet.redis.redis_settings) as a server, so that a
tool on any machine of the deployment replays a match without reaching the
disk of the host that ran it. The `vinom` command reaches it through the
installed fleet (vinom.server.fleet: `IFleet.fetch_record`), never importing it.
"""

from __future__ import annotations

from typing import Any

from vinom.cluster.client import RedisClient, RedisSettings
from vinom.cluster.records import record_key
from vinom.errors import BackendUnavailable


class RecordNotFound(Exception):
    """No record of that match in Redis (never copied, or expired)."""


async def fetch_record(reactor: Any, settings: RedisSettings, match_id: str) -> bytes:
    """The bytes of `match_id`'s record in the Redis of `settings`.

    Raises `RecordNotFound` when there is none, `BackendUnavailable` when Redis
    does not answer within its timeout (`settings.timeout`)."""
    client = RedisClient.open(settings, reactor)
    key = record_key(client, match_id)
    try:
        data = await client.bounded(client.handler.get(key))
    finally:
        # Hanging up is the tool's last act: its own failure must stand in
        # neither for the answer nor for the error that came instead of one.
        await client.disconnect().addErrback(lambda _: None)
    if data is None:
        raise RecordNotFound(
            f"no record of match {match_id!r} in Redis at {settings.url} (key {key!r}): a "
            "record is there for a day once its match has ended, if its server runs with "
            "--redis and records the game"
        )
    if isinstance(data, str):
        # txredisapi gives a reply that happens to be UTF-8 as text; the record's bytes.
        data = data.encode("utf-8")
    if not isinstance(data, bytes):
        raise BackendUnavailable(f"Redis at {settings.url} answered {type(data).__name__}")
    return data
