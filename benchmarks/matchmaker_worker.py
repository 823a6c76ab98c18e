"""One lobby's matchmaker for the matchmaker scenario (a benchmark worker process).

`python -m benchmarks.matchmaker_worker <settings JSON>`: makes a
`RedisMatchmaker` (or, without a Redis port, a `MemoryMatchmaker`), says
`ready`, and on `go` queues its tickets with `in_flight` calls outstanding.
It says `done` once its listener has heard the match of each of its own tickets
(a lobby hears the matches it formed and those holding its players), with the
player ids of each match it heard.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from benchmarks.worker import cpu_seconds, global_reactor, run_guarded, start_control


def main() -> None:
    settings = json.loads(sys.argv[1])
    reactor = global_reactor()
    from twisted.internet.defer import Deferred, DeferredSemaphore, gatherResults

    from vinom.games.rules import GameCatalogue
    from vinom.match import Match, Ticket
    from vinom.matchmaking.memory import MemoryMatchmaker

    game = "duel"
    party = int(settings.get("party_size", 1))
    # A match seats two parties of `party` (two players without parties).
    games = GameCatalogue.sized({game: int(settings["size"]) * party})
    matchmaker: Any
    if settings.get("redis_port"):
        import txredisapi
        from twisted.internet.endpoints import TCP4ClientEndpoint

        from vinom.cluster.matchmaker import RedisMatchmaker

        port = int(settings["redis_port"])
        pool = txredisapi.lazyConnectionPool("127.0.0.1", port, poolsize=4, reconnect=True,
                                             replyTimeout=30)
        matchmaker = RedisMatchmaker(
            pool, TCP4ClientEndpoint(reactor, "127.0.0.1", port), games, reactor
        )
    else:
        matchmaker = MemoryMatchmaker(games, reactor)
    heard: list[tuple[str, ...]] = []
    # Its own tickets (their leaders' ids start with its prefix) heard matched.
    prefix, count = settings["prefix"], int(settings["count"])
    mine: set[str] = set()
    state: dict[str, Any] = {}

    def listener(match: Match) -> None:
        heard.append(match.player_ids)
        mine.update(t.player_id for t in match.players
                    if t.player_id.startswith(prefix) and "." not in t.player_id)  # fmt: skip
        if len(mine) == count and "started" in state and "done" not in state:
            finish()

    matchmaker.add_listener(listener)

    def finish() -> None:
        state["done"] = True
        control.emit(
            "done",
            seconds=time.monotonic() - state["started"],
            cpu_s=cpu_seconds() - state["cpu"],
            matches=heard,
            enqueued=state.get("enqueued", 0),
        )

    def go(command: dict[str, Any]) -> None:
        state["started"] = time.monotonic()
        state["cpu"] = cpu_seconds()
        limit = DeferredSemaphore(int(settings["in_flight"]))
        now = reactor.seconds()
        tickets = []
        for n in range(int(settings["count"])):
            leader = f"{settings['prefix']}{n}"
            members = tuple(
                Ticket(f"{leader}.{k}", leader, game, None, now, party_id=leader)
                for k in range(1, party)
            )
            tickets.append(Ticket(leader, leader, game, None, now,
                                  party_id=leader if members else None, members=members))

        def counted(_: object) -> None:
            state["enqueued"] = state.get("enqueued", 0) + 1

        d = gatherResults(
            [limit.run(matchmaker.enqueue, t).addCallback(counted) for t in tickets]
        )
        d.addErrback(lambda f: control.emit("error", message=f.getErrorMessage()))
        if len(mine) >= count:
            finish()

    def started(_: object) -> None:
        control.emit("ready")

    control = start_control(reactor, {"go": go})
    start = getattr(matchmaker, "start", None)
    ready: Deferred[Any] = start() if start else Deferred.fromCoroutine(_nothing())
    ready.addCallbacks(started, lambda f: control.emit("error", message=f.getErrorMessage()))
    reactor.run()


async def _nothing() -> None:
    return None


if __name__ == "__main__":
    run_guarded(main)
