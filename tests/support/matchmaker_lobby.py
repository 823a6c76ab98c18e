"""Test helper: a lobby's Redis matchmaker alone, in a child process, to be killed.

`python -m tests.support.matchmaker_lobby <redis port> <settings JSON>` starts a
`RedisMatchmaker`, queues the tickets the JSON lists, prints "ready" and its
lobby id, and runs until it is killed, heartbeating as a lobby does. Killing
it is a lobby dying with its players' tickets queued.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import txredisapi
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint

from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings
from vinom.games.rules import GameCatalogue
from vinom.match import Ticket
from vinom.matchmaking.windows import RatingWindow


async def main(port: int, config: dict[str, Any]) -> None:
    pool = txredisapi.lazyConnectionPool("127.0.0.1", port, poolsize=2, reconnect=True)
    matchmaker = RedisMatchmaker(
        pool, TCP4ClientEndpoint(reactor, "127.0.0.1", port),
        GameCatalogue.sized(config["sizes"], windows={
            game: RatingWindow(**w) for game, w in config.get("windows", {}).items()
        }), reactor,
        settings=RedisMatchmakerSettings(**config["settings"]),
    )  # fmt: skip
    await matchmaker.start()
    await gatherResults([matchmaker.enqueue(Ticket(**t)) for t in config["tickets"]])
    print("ready", matchmaker.lobby_id, flush=True)


def run() -> None:
    port, config = int(sys.argv[1]), json.loads(sys.argv[2])

    def failed(failure: Any) -> None:
        print("failed", failure.getErrorMessage(), flush=True)
        reactor.stop()

    reactor.callWhenRunning(
        lambda: Deferred.fromCoroutine(main(port, config)).addErrback(failed)
    )
    reactor.run()


if __name__ == "__main__":
    run()
