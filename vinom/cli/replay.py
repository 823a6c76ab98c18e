"""`vinom replay`: its options, and checking a record or reading one from a deployment's
Redis (`--redis`, through the server's fleet seam, vinom.server.fleet). Watching a record
is vinom.client.replay's; `main` (vinom.cli) runs these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO, cast

from twisted.internet.defer import Deferred
from twisted.python import usage
from twisted.python.failure import Failure

from vinom.cli.options import CommandError, CommandOptions
from vinom.games.registry import GameRegistry


class ReplayOptions(CommandOptions):
    synopsis = "<file> [--match ID] [--check] | --redis URL <match id> [--check] [--save FILE]"
    longdesc = (
        "Watch a match record (a game host appends its matches' records to record files, "
        "DATA_DIR/records/*.vrec; --match picks one, and without it a file of many lists "
        "them) in this terminal at the match's pace: space pauses, + and - change the speed, the "
        "arrow keys seek, q quits. Every state hash in the record is checked; a difference "
        "stops the replay and says at which tick. With --redis, the argument is a match id "
        "and its record is read from that Redis, where the game hosts of a server run with "
        "--redis copy each finished match's record (kept there a day). See "
        "docs/client.md and docs/operations.md."
    )
    optFlags = [
        ["check", None, "Replay the whole record at once, print one line and exit: 0 if it "
         "replays exactly, 1 if not (or if it cannot be read)."],
    ]
    optParameters = [
        ["match", "m", None, "The match to replay of a record file holding many (without "
         "it, their list; with --check, every one is checked)."],
        ["redis", None, None, "Read the record of the match id given from this Redis "
         "(redis://, rediss:// or redis+sentinel://, as twistd vinom's --redis) at "
         "<prefix>record:<match id>."],
        ["redis-password-file", None, None, "With --redis: the file holding its password "
         "(default: $VINOM_REDIS_PASSWORD, else the URL's)."],
        ["redis-user", None, None, "With --redis: the Redis ACL user whose password that is "
         "(default: Redis's `default` user)."],
        ["redis-sentinel-password-file", None, None, "With a redis+sentinel:// --redis: the "
         "file holding the sentinels' password (default: $VINOM_REDIS_SENTINEL_PASSWORD)."],
        ["redis-ca-file", None, None, "With a rediss:// --redis: the CA certificate(s) that "
         "issued Redis's certificate (default: the system's)."],
        ["save", None, None, "With --redis: also write the record to this file (Redis keeps "
         "it a day only)."],
    ]

    def parseArgs(self, path: str | None = None) -> None:
        if path is None:
            raise usage.UsageError(
                "name the match, e.g. 'vinom replay --redis redis://10.0.0.5 m-8f3a0c2d'"
                if self["redis"] is not None else
                "name the record file, e.g. 'vinom replay vinom-data/records/X.vrec'"
            )  # fmt: skip
        self["path"] = path

    def postOptions(self) -> None:
        self["redis-settings"] = None
        if self["redis"] is not None and self["match"] is not None:
            raise usage.UsageError("--match is for a record file; with --redis, the argument "
                                   "is the match id")
        if self["redis"] is None:
            for name in ("redis-password-file", "redis-user", "redis-sentinel-password-file",
                         "redis-ca-file", "save"):  # fmt: skip
                if self[name] is not None:
                    raise usage.UsageError(f"--{name} is for --redis, which is not given")
            return
        self["redis-settings"] = record_fleet().record_settings(self)



def replay_check_command(
    path: str, out: TextIO, err: TextIO, registry: GameRegistry | None = None,
    match_id: str | None = None,
) -> int:  # fmt: skip
    """`vinom replay --check FILE [--match ID]`: 0 if the record replays exactly (one
    line on `out`; one per match of a file of many when none is named)."""
    from vinom.client.replay import check_record

    games = registry if registry is not None else GameRegistry.from_plugins()
    return check_record(path, games.get, out, err, match_id)


def record_fleet() -> Any:
    """The installed fleet, which keeps the records `vinom replay --redis` reads
    (vinom.server.fleet); a usage error without one."""
    from vinom.server.fleet import find_fleet

    fleet = find_fleet()
    if fleet is None:
        raise usage.UsageError("--redis needs vinom's fleet, which is not installed "
                               "($VINOM_FLEET is none)")
    return fleet


def fetch_from_redis(reactor: Any, options: ReplayOptions, err: TextIO) -> Deferred[bytes]:
    """The record of `vinom replay --redis URL MATCH_ID`, written to --save's file too."""
    async def fetch() -> bytes:
        data = await record_fleet().fetch_record(reactor, options["redis-settings"],
                                                 options["path"])
        if options["save"] is not None:
            try:
                Path(options["save"]).write_bytes(data)
            except OSError as e:
                raise CommandError(f"--save {options['save']}: {e.strerror or e}") from None
            err.write(f"vinom: match {options['path']}: record saved to {options['save']} "
                      f"({len(data):,} bytes)\n")  # fmt: skip
        return data

    return Deferred.fromCoroutine(fetch())


def replay_redis_command(
    reactor: Any, options: ReplayOptions, out: TextIO, err: TextIO,
    registry: GameRegistry | None = None,
) -> int:
    """`vinom replay --redis URL MATCH_ID [--check]`: the record read from Redis, then
    watched (a terminal) or checked as a file's would be."""
    from vinom.client.replay import (
        ReplayError,
        check_loaded,
        error_line,
        parse_record,
        run_replay,
    )

    games = registry if registry is not None else GameRegistry.from_plugins()
    label = f"match {options['path']} (Redis)"
    if not options["check"]:
        return run_replay(reactor, label, games.get,
                          fetch=lambda: fetch_from_redis(reactor, options, err))  # fmt: skip
    status: list[int] = []

    def check(data: bytes) -> None:
        try:
            record, game = parse_record(label, data, games.get)
        except ReplayError as e:
            err.write(f"vinom: {e}\n")
            status.append(1)
            return
        status.append(check_loaded(label, record, game, out, err))

    def failed(failure: Failure) -> None:
        err.write(f"vinom: {error_line(cast(BaseException, failure.value))}\n")
        status.append(1)

    def run() -> None:
        d = fetch_from_redis(reactor, options, err)
        # `failed` hears a fault in the check as well as in the fetch: one line, status 1.
        d.addCallback(check)
        d.addErrback(failed)
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(run)
    reactor.run()
    return status[0] if status else 1
