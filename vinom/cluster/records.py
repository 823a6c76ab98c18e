"""Match records in Redis: a game host copies each finished record where every lobby finds it.

With `--redis`, the game hosts still write their records to their own
`--record-dir` (vinom.hosting.records); once a match has ended (its record's
end is on disk before the end is reported), `RedisRecords.upload` copies its
record, found in the host's record files (`RecordIndex`, which reads each file
once as it grows), to `<prefix>record:<match_id>`, a string holding the
record's bytes (one match's gzip stream, docs/protocol.md §18), with a time to live of
`REDIS_HOURS` (a day: a record wanted for longer is on the host's disk for
`--limit record-keep-days`): any lobby, tool or operator reads it
with `GET` from any machine (docs/operations.md, "Match records"). A record
larger than `MAX_RECORD_BYTES` stays on disk only (logged), as does one whose
upload fails (Redis away): the match is not affected either way.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from vinom.cluster.client import RedisClient
from vinom.hosting.records import RecordIndex, RecordSettings

#: Records beyond this many bytes are not copied to Redis (a string holds up to 512 MB,
#: but one this large would stall Redis while it is written).
MAX_RECORD_BYTES = 32 * 1024 * 1024
#: Hours a finished match's record is kept in Redis.
REDIS_HOURS = 24.0
_TTL_MS = round(REDIS_HOURS * 3600 * 1000)


def record_key(redis: RedisClient, match_id: str) -> str:
    """`<prefix>record:<match_id>`."""
    return redis.key("record", match_id)


class RedisRecords:
    """Copies finished match records from `settings.directory` to Redis (module docstring)."""

    log = Logger()

    def __init__(self, redis: RedisClient, settings: RecordSettings) -> None:
        self._redis = redis
        self._settings = settings
        # The records this host writes from now on (not those of earlier runs).
        self._index = RecordIndex(settings.directory, skip_existing=True)
        self.uploaded = 0
        self.failed = 0

    def upload(self, match_id: str) -> Deferred[Any]:
        """Copy the match's record to Redis; never fails (a failure is logged)."""
        data = self._index.take(match_id)
        if data is None:
            return succeed(None)
        if len(data) > MAX_RECORD_BYTES:
            self.log.warn("match {match_id}: its record is {n} bytes, kept on disk only",
                          match_id=match_id, n=len(data))  # fmt: skip
            return succeed(None)
        redis = self._redis
        d = redis.bounded(
            redis.handler.execute_command(
                "SET", record_key(redis, match_id), data, "PX", _TTL_MS
            )
        )

        def done(_: object) -> None:
            self.uploaded += 1

        def failed(failure: Any) -> None:
            self.failed += 1
            self.log.warn("match {match_id}: its record was not copied to Redis: {why}",
                          match_id=match_id, why=failure.getErrorMessage())  # fmt: skip

        return d.addCallbacks(done, failed)
