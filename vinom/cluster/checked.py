"""Checked writes: a change decided in Python on values read from Redis, written
only if none of them has changed since (optimistic concurrency).

A rule that runs in Python (the party rule, vinom.parties.rules) reads what
it needs through a `Snapshot`, which keeps every value it read, and hands its
writes to `Snapshot.commit`: one call of checked.lua (beside this module),
which Redis runs atomically, makes the writes and publishes the change's
messages (numbered from a counter) only if every value read is still as it
was, and answers `CHANGED` otherwise, for the caller to read again and decide
anew. The reads are plain `GET`s and `HMGET`s; a hash is checked by one
field that every write of it moves (its version), so the rule's writers must
all move it.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

from vinom.cluster.client import RedisClient, Script
from vinom.cluster.watch import guarded

SOURCE: Final = resources.files("vinom.cluster").joinpath("checked.lua").read_text("utf-8")

# What the script answers when it wrote nothing.
CHANGED: Final = "changed"  # a value read has changed: read again
EXPIRED: Final = "expired"  # run after the call's deadline
UNSETTLED: Final = "unsettled"  # judges a death before the watch guard has lasted


def checked_script(settle: float) -> Script:
    """The script behind the watch guard: a change that judges a death is made once
    Redis has been watched for `settle` seconds (vinom.cluster.watch)."""
    return guarded(SOURCE, settle)


class Snapshot:
    """The values one attempt at a change read from Redis, each checked at its commit."""

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        # (key, field or '' for a string, the value read or '' for none)
        self.checks: list[tuple[str, str, str]] = []

    async def get(self, key: str) -> str | None:
        value = await self.redis.bounded(self.redis.handler.get(key))
        self._read(key, "", value)
        return None if value is None else str(value)

    async def fields(self, key: str, names: Sequence[str], version: str) -> dict[str, str | None]:
        """The hash `key`'s fields `names` and `version` (None where missing), read at
        once; the commit checks `version`."""
        values = await self.redis.bounded(
            self.redis.handler.execute_command("HMGET", key, version, *names)
        )
        self._read(key, version, values[0])
        read = [None if v is None else str(v) for v in values]
        return dict(zip((version, *names), read, strict=True))

    def _read(self, key: str, field: str, value: object) -> None:
        self.checks.append((key, field, "" if value is None else "=" + str(value)))

    def commit(
        self,
        script: Script,
        watch_key: str,
        writes: Sequence[Sequence[object]] = (),
        messages: Sequence[str] = (),
        *,
        counter: str,
        channel: str,
        deadline: str = "",
        judged: bool = False,
    ) -> Any:
        """Make `writes` (each a command: SET, DEL, HSET or PEXPIRE, and its words) and
        publish each of `messages` (JSON objects, each given `"seq"` from `counter`) on
        `channel`, if every value read is unchanged. Fires with the messages as
        published, or `CHANGED`, `EXPIRED` (past `deadline`, on Redis's clock) or
        `UNSETTLED` (`judged`: the change judges a death, which waits for the watch)."""
        args: list[object] = [deadline, "1" if judged else "", counter, channel, len(self.checks)]
        for check in self.checks:
            args.extend(check)
        args.append(len(writes))
        for write in writes:
            args.append(len(write))
            args.extend(write)
        args.extend(messages)
        return self.redis.run(script, [watch_key], [str(a) for a in args])
