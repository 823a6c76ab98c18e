"""Players of the chaos scenario: `python -m benchmarks.chaos_players <json settings>`.

One Twisted process plays every player of `benchmarks.chaos` against the
cluster's lobbies, through the vinom client library, and records what each
of them sees. Three kinds of player:

- **steady** players (`steady`, home lobby i % 2) loop: hello, queue for
  `game` in the normal queue, play the match to its end with the game's bot
  (`think` seconds before each move), and again;
- **waiters** (`waiters`, all on lobby 0, the lobby the lobby faults hit)
  queue in the game's ranked queue with ratings 10,000 apart, so that
  nobody is matched with them: players waiting for a fair opponent;
- **probes**, a pair of new players every `probe_every` seconds (one through
  each lobby), queue for `probe_game` in the normal queue and stop once their
  match is past its `waiting` phase (every player connected; then they
  leave): how long a new player takes to be in a game.

Every player recovers as docs/client.md says (`Failover` is the one place
that picks a lobby, so that the client library's own multi-lobby failover
can replace it): a lost lobby connection sends it to the next lobby; it
then says `reconnect` with its id and secret when a match of its was under
way (a lost UDP session, or an abort that keeps it a place at the head of
the queue: players_missing, host_crashed), else `hello` and queues again.
A `reconnect` refused with `bad_secret` or `no_active_match` means start
afresh; other failures are retried every 2 s, ten times.

What is recorded, per player, is when it was not in a normal state (an
interval from the moment it went wrong to the moment it was normal again):
its lobby connection lost until it is queued again, a request unanswered, a
match it was placed in that turned out a ghost (its roster names a player id
none of our players holds any more, or one we never had), a match that was
lost (aborted, or its session closed), and a gap of more than `gap` seconds
between two states of a running match (the host stopped). Normal is a
`queued` reply, or a state of a match that is not a ghost. Each match any of
our players was told of is recorded with its players' outcomes, and each
probe with how long it took.

Commands: `running` answers the game ports of the matches running now (`ports`);
`fault` (`at`: the wall-clock time of the fault; `min_observe`,
`window`, `settle` in seconds) starts the observation; the worker answers
`result` when the cluster has been whole for `settle` seconds (every player
normal, the last probe in time, every match running at the fault ended) and
at least `min_observe` seconds have passed, or at `window`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from typing import Any

from attrs import define, field
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.task import LoopingCall, deferLater

from benchmarks.worker import global_reactor, run_guarded, start_control
from vinom.client.bots import BotDriver, LobbyAddress
from vinom.client.game import GameSession, connect_game
from vinom.client.lobby import (
    LobbyClient,
    LobbyClientProtocol,
    MatchFound,
    Queued,
    client_tls_options,
)
from vinom.client.udp import ConnectFailedError
from vinom.errors import LobbyError
from vinom.games.registry import GameRegistry

# `reconnect` answers that mean "start afresh": retrying changes nothing (docs/client.md).
FINAL_RECONNECT = ("bad_secret", "no_active_match")
# Aborts after which the player keeps a place at the head of its queue (docs/lobby.md).
REQUEUED = ("players_missing", "host_crashed")
RECONNECT_TRIES = 10
RECONNECT_EVERY = 2.0
RANKED_SPACING = 10_000.0


def now() -> float:
    return time.time()


class LobbyLost(Exception):
    """The lobby connection closed, or refused us, or the lobby said it is going away."""


class Unanswered(Exception):
    """A request got no reply within the bound."""


class Failover:
    """Which lobby a player talks to: its home lobby first, the next one after a loss.

    The seam for the client library's multi-lobby failover (issue #25, item 6):
    `connect` opens a lobby connection, trying each lobby once from the current
    one; `lost` moves on after a connection was lost.
    """

    def __init__(self, reactor: Any, lobbies: list[LobbyAddress], home: int, source: str):
        self.reactor = reactor
        self.lobbies = lobbies
        self.index = home % len(lobbies)
        self.source = source

    def lost(self) -> None:
        self.index = (self.index + 1) % len(self.lobbies)

    async def connect(self) -> LobbyClient:
        last: Exception | None = None
        for _ in self.lobbies:
            address = self.lobbies[self.index]
            tls = client_tls_options(address.trust, "localhost")
            endpoint = wrapClientTLS(tls, TCP4ClientEndpoint(
                self.reactor, address.host, address.port, timeout=5,
                bindAddress=(self.source, 0),
            ))  # fmt: skip
            try:
                protocol = await connectProtocol(endpoint, LobbyClientProtocol())
            except (ConnectError, ConnectionClosed, OSError) as e:
                last = e
                self.lost()
                continue
            return LobbyClient(protocol)
        raise LobbyLost(f"no lobby answers: {last}")


@define
class MatchView:
    """One match as our players saw it."""

    game_id: str
    port: int
    found_at: float
    roster: list[str] = field(factory=list)
    ghost: bool = False
    connected: int = 0
    # Our player's name -> its outcome: finished, aborted:<reason>, closed:<reason>,
    # connect_failed:<reason>; absent while it plays.
    outcomes: dict[str, str] = field(factory=dict)
    players: set[str] = field(factory=set)
    ended_at: float | None = None

    def record(self) -> dict[str, Any]:
        return {
            "game_id": self.game_id, "port": self.port, "found_at": self.found_at,
            "roster": self.roster, "ghost": self.ghost, "connected": self.connected,
            "outcomes": self.outcomes, "players": sorted(self.players), "ended_at": self.ended_at,
        }  # fmt: skip


@define
class Tracker:
    """When one player was not in a normal state."""

    intervals: list[tuple[float, float]] = field(factory=list)
    since: float | None = None

    def bad(self, at: float) -> None:
        if self.since is None or at < self.since:
            self.since = at

    def good(self, at: float) -> None:
        if self.since is not None:
            self.intervals.append((self.since, at))
            self.since = None

    def gap(self, start: float, end: float) -> None:
        self.intervals.append((start, end))


class World:
    """Everything the players share: settings, the ids in play, what was recorded."""

    def __init__(self, reactor: Any, settings: dict[str, Any]) -> None:
        self.reactor = reactor
        self.settings = settings
        self.lobbies = [LobbyAddress(a["host"], int(a["port"]), a["trust"])
                        for a in settings["lobbies"]]  # fmt: skip
        registry = GameRegistry.from_plugins()
        self.game = registry.get(settings["game"])
        self.bound = float(settings["answer_bound"])
        self.gap = float(settings["gap"])
        self.rng = random.Random(int(settings["seed"]))
        self.known: set[str] = set()
        self.stale: set[str] = set()
        self.matches: dict[str, MatchView] = {}
        self.requests: Counter[str] = Counter()
        self.unanswered: Counter[str] = Counter()
        self.unanswered_players: set[str] = set()
        self.errors: Counter[str] = Counter()
        self.players: list[Player] = []
        self.probes: list[dict[str, Any]] = []
        self.probes_in_flight: dict[int, float] = {}
        self.stopping = False

    def not_answered(self, who: str, what: str) -> None:
        self.unanswered[what] += 1
        self.unanswered_players.add(who)

    def is_ghost(self, roster: list[str]) -> bool:
        return any(pid in self.stale or pid not in self.known for pid in roster)

    async def request(
        self,
        who: str,
        client: LobbyClient,
        what: str,
        frame: dict[str, Any],
        on_queued: Any = None,
        expect_match: bool = False,
    ) -> tuple[dict[str, Any], Deferred[MatchFound] | None]:
        """Send `frame`; its reply within the bound (else `Unanswered`), and the
        `match_found` Deferred when asked for."""
        protocol = client.protocol
        match = protocol.expect_match(on_queued) if expect_match else None
        self.requests[what] += 1
        reply = protocol.request(frame)
        reply.addTimeout(self.bound, self.reactor)
        try:
            answer = await self._answer(who, client, what, reply)
        except BaseException:
            if match is not None:
                match.addErrback(lambda failure: None)  # nobody will wait for it now
            raise
        return answer, match

    async def _answer(self, who: str, client: LobbyClient, what: str, reply: Deferred[Any]) -> Any:
        try:
            return await reply
        except (TimeoutError, CancelledError) as e:
            self.not_answered(who, what)
            client.close()
            raise Unanswered(what) from e
        except LobbyError as e:
            self.errors[e.code] += 1
            raise
        except ConnectionClosed as e:
            raise LobbyLost(str(e)) from e


class Player:
    """One steady player or waiter (see the module docstring)."""

    def __init__(self, world: World, name: str, home: int, source: str,
                 rating: float | None) -> None:  # fmt: skip
        self.world = world
        self.name = name
        self.failover = Failover(world.reactor, world.lobbies, home, source)
        self.rating = rating
        self.tracker = Tracker()
        self.player_id: str | None = None
        self.secret: str | None = None
        self.last_state: float | None = None
        self.in_match = False
        self.matches_played = 0
        self.session: GameSession | None = None
        self.queued_once: Deferred[None] = Deferred()

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "intervals": self.tracker.intervals,
                "open_since": self.tracker.since, "matches": self.matches_played}  # fmt: skip

    def abnormal_now(self, at: float) -> bool:
        if self.tracker.since is not None:
            return True
        return (
            self.in_match and self.last_state is not None and at - self.last_state > self.world.gap
        )

    def _queued(self, queued: Queued) -> None:
        self.tracker.good(now())
        if not self.queued_once.called:
            self.queued_once.callback(None)

    async def run(self) -> None:
        resume: tuple[GameSession | None, str | None] | None = None
        tries = 0
        world = self.world
        while not world.stopping:
            try:
                client = await self.failover.connect()
            except LobbyLost:
                self.tracker.bad(now())
                await deferLater(world.reactor, 0.5, lambda: None)
                continue
            try:
                if resume is not None:
                    assert self.player_id is not None and self.secret is not None
                    _, match = await world.request(
                        self.name,
                        client, "reconnect",
                        {"type": "reconnect", "player_id": self.player_id, "secret": self.secret},
                        self._queued, expect_match=True,
                    )  # fmt: skip
                else:
                    hello, _ = await world.request(
                        self.name, client, "hello", {"type": "hello", "name": self.name}
                    )
                    if self.player_id is not None:
                        world.stale.add(self.player_id)
                    self.player_id, self.secret = str(hello["player_id"]), str(hello["secret"])
                    world.known.add(self.player_id)
                    frame: dict[str, Any] = {"type": "queue", "game": world.game.name}
                    if self.rating is not None:
                        frame.update(queue="ranked", rating=self.rating)
                    answer, match = await world.request(
                        self.name, client, "queue", frame, self._queued, expect_match=True
                    )
                    self._queued(Queued(world.game.name, answer.get("position"), "searching"))
                assert match is not None
                try:
                    found = await match
                except LobbyError as e:
                    world.errors[e.code] += 1
                    raise LobbyLost(e.code) from e
                except ConnectionClosed as e:
                    raise LobbyLost(str(e)) from e
            except (LobbyLost, Unanswered):
                self.tracker.bad(now())
                self.failover.lost()
                continue
            except LobbyError as e:
                if resume is not None and (e.code in FINAL_RECONNECT or tries >= RECONNECT_TRIES):
                    resume, tries = None, 0
                else:
                    self.tracker.bad(now())
                    tries += 1
                    await deferLater(world.reactor, RECONNECT_EVERY, lambda: None)
                continue
            finally:
                if not client.protocol.closed.called:
                    client.close()
            session = resume[0] if resume is not None and resume[1] == found.game_id else None
            outcome = await self.play(found, session)
            kind, _, reason = outcome.partition(":")
            if kind == "finished":
                resume, tries = None, 0
                self.matches_played += 1
            elif kind == "aborted":
                resume = (None, None) if reason in REQUEUED else None
                tries = 0
            elif kind == "closed":
                resume = (self.session, found.game_id)
            else:  # connect_failed: ask the lobby again, a few times
                tries += 1
                resume = (None, None) if tries < RECONNECT_TRIES else None
                if resume is None:
                    tries = 0
                await deferLater(world.reactor, RECONNECT_EVERY, lambda: None)

    async def play(self, found: MatchFound, session: GameSession | None) -> str:
        world = self.world
        view = world.matches.get(found.game_id)
        if view is None:
            view = world.matches[found.game_id] = MatchView(found.game_id, found.port, now())
        view.players.add(self.name)
        try:
            world.requests["connect"] += 1
            self.session = await connect_game(world.reactor, found, session=session)
        except ConnectFailedError as e:
            if e.reason == "timeout":
                world.not_answered(self.name, "connect")
            self.tracker.bad(now())
            view.outcomes[self.name] = f"connect_failed:{e.reason}"
            return f"connect_failed:{e.reason}"
        session = self.session
        assert self.player_id is not None
        driver = BotDriver(session, world.game.make_bot(self.player_id,
                                                        random.Random(world.rng.random())),
                           float(world.settings["think"]), world.reactor)  # fmt: skip
        driver.attach()
        on_welcome = session.on_welcome

        def welcomed(message: dict[str, Any]) -> None:
            if on_welcome is not None:
                on_welcome(message)
            roster = [str(p.get("id")) for p in message.get("players", [])]
            view.roster = roster
            if message.get("reconnected"):
                return
            view.connected += 1
            if world.is_ghost(roster):
                view.ghost = True
                self.tracker.bad(view.found_at)

        on_state = session.on_state

        def stated(message: dict[str, Any]) -> None:
            at = now()
            if self.last_state is not None and at - self.last_state > world.gap:
                self.tracker.gap(self.last_state, at)
            self.last_state = at
            if not view.ghost:
                self.tracker.good(at)
            if on_state is not None:
                on_state(message)

        session.on_welcome = welcomed
        session.on_state = stated
        self.in_match = True
        self.last_state = None
        ended: Deferred[dict[str, Any]] = Deferred()

        def fire(value: dict[str, Any]) -> dict[str, Any]:
            if not ended.called:
                ended.callback(value)
            return value

        session.finished.addCallback(fire)
        session.on_closed = lambda closed: fire({"p": "closed", "reason": closed["reason"]})
        final = await ended
        self.in_match = False
        driver.cancel()
        at = now()
        phase = str(final["p"])
        if phase == "finished":
            outcome = "finished"
        else:
            outcome = f"{phase}:{final.get('reason')}"
            self.tracker.bad(self.last_state or at)
        view.outcomes[self.name] = outcome
        if phase in ("finished", "aborted"):
            view.ended_at = at
            await session.disconnect()
        return outcome


async def probe(world: World, number: int, home: int, source: str) -> None:
    """One new player: hello, queue for the probe game, connect, the first state, leave."""
    started = now()
    name = f"probe{number}"
    world.probes_in_flight[number] = started
    record: dict[str, Any] = {"started": started, "ok": False}
    failover = Failover(world.reactor, world.lobbies, home, source)
    client: LobbyClient | None = None
    try:
        client = await failover.connect()
        hello, _ = await world.request(name, client, "hello", {"type": "hello", "name": name})
        player_id = str(hello["player_id"])
        world.known.add(player_id)
        _, match = await world.request(
            name,
            client, "queue", {"type": "queue", "game": world.settings["probe_game"]},
            expect_match=True,
        )  # fmt: skip
        assert match is not None
        match.addTimeout(float(world.settings["probe_give_up"]), world.reactor)
        found = await match
        record.update(game_id=found.game_id, port=found.port)
        world.requests["connect"] += 1
        try:
            session = await connect_game(world.reactor, found)
        except ConnectFailedError as e:
            if e.reason == "timeout":
                world.not_answered(name, "connect")
            raise
        # In its game: past `waiting` (every player of the match connected), or ended;
        # a ghost's roster (below) ends the probe at once, it will never begin.
        begun: Deferred[None] = Deferred()

        def check(message: dict[str, Any]) -> None:
            roster = [str(p.get("id")) for p in (session.welcome or {}).get("players", [])]
            ghost = world.is_ghost(roster)
            if (session.phase != "waiting" or ghost) and not begun.called:
                begun.callback(None)

        session.on_state = session.on_phase = session.on_welcome = check
        check({})
        begun.addTimeout(world.bound, world.reactor)
        await begun
        welcome = session.welcome or {}
        roster = [str(p.get("id")) for p in welcome.get("players", [])]
        record.update(ghost=world.is_ghost(roster), roster=roster, phase=session.phase)
        record["ok"] = not record["ghost"] and session.phase != "aborted"
        await session.leave()
        await session.disconnect()
    except Exception as e:  # a probe reports what went wrong
        if isinstance(e, LobbyError):
            world.errors[e.code] += 1
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        if client is not None and not client.protocol.closed.called:
            client.close()
        record["ended"] = now()
        record["took"] = record["ended"] - started
        world.probes.append(record)
        world.probes_in_flight.pop(number, None)


def source_address(block: int, i: int) -> str:
    """Player i's own loopback address: each counts as one client for the per-address limits."""
    return f"127.{block}.{i // 250}.{i % 250 + 1}"


def main() -> None:
    settings = json.loads(sys.argv[1])
    reactor = global_reactor()
    world = World(reactor, settings)
    for i in range(int(settings["steady"])):
        world.players.append(Player(world, f"s{i}", i % 2, source_address(1, i), None))
    waiters = [Player(world, f"w{i}", 0, source_address(2, i), RANKED_SPACING * (i + 1))
               for i in range(int(settings["waiters"]))]  # fmt: skip
    world.players.extend(waiters)
    numbers = iter(range(1 << 30))

    def send_probes() -> None:
        n = next(numbers)
        for side in (0, 1):
            Deferred.fromCoroutine(
                probe(world, 2 * n + side, side, source_address(3, 2 * n + side))
            )

    probes = LoopingCall(send_probes)
    probes.clock = reactor
    observing: dict[str, Any] = {}

    def fault(command: dict[str, Any]) -> Deferred[dict[str, Any]]:
        observing.update(command)
        at = float(command["at"])
        observing["running"] = {
            view.game_id
            for view in world.matches.values()
            if view.connected and view.ended_at is None and len(view.outcomes) < len(view.players)
        }
        done: Deferred[dict[str, Any]] = Deferred()
        last_bad = [at]

        def check() -> None:
            t = now()
            bad = [p for p in world.players if p.abnormal_now(t)]
            late = [n for n, s in world.probes_in_flight.items() if t - s > settings["probe_bound"]]
            failed = [p for p in world.probes if p["ended"] > at
                      and (not p["ok"] or p["took"] > settings["probe_bound"])]  # fmt: skip
            ends = [e for p in world.players for (_, e) in p.tracker.intervals]
            last_bad[0] = max([at, *[e for e in ends if e > at], *[p["ended"] for p in failed]])
            if bad or late:
                last_bad[0] = t
            running = [
                g
                for g in observing["running"]
                if world.matches[g].ended_at is None
                and len(world.matches[g].outcomes) < len(world.matches[g].players)
            ]
            settled = (t - at >= float(command["min_observe"]) and not running
                       and t - last_bad[0] >= float(command["settle"]))  # fmt: skip
            if settled or t - at >= float(command["window"]):
                loop.stop()
                done.callback(result(at, t))

        loop = LoopingCall(check)
        loop.clock = reactor
        loop.start(0.25, now=False)
        return done

    def result(at: float, ended: float) -> dict[str, Any]:
        return {
            "fault_at": at, "ended_at": ended,
            "players": [p.record() for p in world.players],
            "matches": [v.record() for v in world.matches.values()],
            "running_at_fault": sorted(observing["running"]),
            "probes": list(world.probes),
            "probes_open": [{"started": s} for s in world.probes_in_flight.values()],
            "requests": dict(world.requests),
            "players_unanswered": len(world.unanswered_players),
            "unanswered": dict(world.unanswered),
            "errors": dict(world.errors),
        }  # fmt: skip

    def running(command: dict[str, Any]) -> dict[str, Any]:
        return {"ports": [v.port for v in world.matches.values()
                          if v.connected and v.ended_at is None]}  # fmt: skip

    control = start_control(reactor, {"fault": fault, "running": running})

    async def start() -> None:
        for player in world.players:
            # Spread over two seconds: matches that all start together end together.
            reactor.callLater(world.rng.uniform(0, 2),
                              lambda p=player: Deferred.fromCoroutine(p.run()))  # fmt: skip
        # Ready once every waiter is queued and the steady players have played a while.
        for waiter in waiters:
            await waiter.queued_once
        probes.start(float(settings["probe_every"]))
        deadline = now() + 60
        steady = world.players[: int(settings["steady"])]
        while sum(p.matches_played for p in steady) < len(steady):
            if now() > deadline:
                raise RuntimeError("the steady players did not finish their first matches")
            await deferLater(reactor, 0.2, lambda: None)
        await deferLater(reactor, float(settings["warmup"]), lambda: None)
        running = sum(1 for v in world.matches.values() if v.connected and v.ended_at is None)
        control.emit("ready", running=running, matches=len(world.matches))

    def failed(failure: Any) -> None:
        control.emit("error", message=str(failure.value), traceback=failure.getTraceback())

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()).addErrback(failed))
    reactor.run()


if __name__ == "__main__":
    run_guarded(main)
