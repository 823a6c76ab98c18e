"""The memory and the Redis backends given the same random inputs answer alike.

The match rule is written once (vinom/matchmaking/windows.py) and both
matchmakers run it; the party rule too (vinom/parties/rules.py), run by both
party stores. These tests drive both backends with the same random
sequence of calls (hypothesis draws it and shrinks a failing one; the failure
message lists the calls of the failing example) and assert that both answer
alike at every step:

- `MatchmakerBackendsTests`: `MemoryMatchmaker` (vinom/matchmaking/memory.py)
  against `RedisMatchmaker` (vinom/cluster/matchmaker.py: the rule run on the
  tickets its snapshot reads, matches formed by matchmaker.lua's take) on a
  real redis-server (tests/support/redis_server.py): what differs is the
  storage, the liveness of lobbies, the snapshot and the take. Solo and
  party tickets enter the normal and the ranked queues of games with and
  without teams, with random ratings and random rating windows;
  tickets are requeued at the head and cancelled;
  time passes on the one `Clock` both read, a second at a time (the period
  of both matchmakers' re-evaluation), so windows widen alike on both sides.
  Both must answer each call alike (position or error), form the same
  matches (the same tickets, in the same seats, so the same teams, at the
  same time, in the same order in each queue) and leave the same tickets
  queued, in the same places. Match ids are drawn at random on each side
  and are not part of the rule.
- `PartiesSameRuleTests`: `MemoryPartyStore` (vinom/parties/memory.py)
  against `RedisPartyStore` (vinom/cluster/parties.py: the rule on what it
  read, its step written by checked.lua if nothing read has changed):
  create, join (by code in any case, unknown codes, full and queued
  parties), leave, set_queued with the members on the ticket or stale ones,
  clearing (unqueued or matched). Both must answer each call alike (the
  party, or the same `PartyError` code), tell their listeners the same
  changes and agree on every player's party. Party ids and join codes are
  random on each side; the test maps each side's to the party they name.

Hypothesis runs its examples in a worker thread; every example runs on the
reactor thread (`blockingCallFromThread`), where the Redis connections live.
The memory side is answered at once; the Redis side is waited for.
"""

# slow: starts Redis (tests/support/redis_server.py)

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import txredisapi
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.threads import blockingCallFromThread, deferToThread
from twisted.trial.unittest import TestCase

from tests.store.test_store import redis_client
from tests.support.redis_server import RedisServer, start_redis
from vinom.cluster.client import RedisClient
from vinom.cluster.matchmaker import RedisMatchmaker, RedisMatchmakerSettings
from vinom.cluster.parties import RedisPartySettings, RedisPartyStore
from vinom.games.rules import GameCatalogue
from vinom.match import QUEUES, Match, Ticket
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.matchmaking.windows import RatingWindow
from vinom.parties.interfaces import Party, PartyChange, PartyError, PartyMember
from vinom.parties.memory import MemoryPartyStore

T = TypeVar("T")

# Few examples, each a few dozen calls: the file runs in about ten seconds. A
# failing example is shrunk, listed in the failure message (trial shows none of
# hypothesis's output) and kept in .hypothesis/, where the next run tries it first.
MATCHMAKER_EXAMPLES = 120
PARTY_EXAMPLES = 150


def call_lists(calls: st.SearchStrategy[T]) -> st.SearchStrategy[list[T]]:
    """Lists of calls, mostly long ones (hypothesis draws short lists by default); a
    failing list still shrinks to a short one (one_of shrinks towards its first)."""
    return st.one_of(
        st.lists(calls, min_size=1, max_size=60),
        st.lists(calls, min_size=30, max_size=60),
    )


def on_reactor(run: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on the reactor thread and wait for it (from hypothesis's thread)."""
    result: T = blockingCallFromThread(reactor, lambda: Deferred.fromCoroutine(run()))  # type: ignore[arg-type]
    return result


async def outcome(call: Callable[[], Deferred[Any]]) -> tuple[str, Any]:
    """What a call answered: ("ok", value) or ("error", the exception's type and code)."""
    try:
        return ("ok", await call())
    except PartyError as e:
        return ("error", e.code)
    except Exception as e:
        return ("error", type(e).__name__)


# -- the matchmakers

# duo and six have teams (of two, of three): a party sits within one team.
SIZES = {"duel": 2, "trio": 3, "four": 4, "duo": 4, "six": 6}
TEAMS = {"duo": 2, "six": 3}

# Small round numbers, so that ratings land exactly on a window's edge often.
windows = st.builds(
    RatingWindow,
    base=st.sampled_from([0.0, 10.0, 20.0, 50.0, 100.0]),
    growth=st.sampled_from([0.0, 5.0, 10.0, 20.0, 50.0]),
    max=st.none() | st.sampled_from([0.0, 30.0, 60.0, 100.0]),
)
# Ratings 100 points apart at most, a few unrated (they fit any window).
ratings = st.integers(94, 105).map(lambda r: None if r == 94 else r * 10.0)
# The games with teams twice as often: their matches need the most players, and the
# examples must form enough of them to say something (the check after the run).
games = st.sampled_from(sorted([*SIZES, *TEAMS]))
# A call names one of the example's games (one or two of SIZES: queues fill up).
game_picks = st.integers(0, 1)
# Ranked queues more often: their windows are what differs most between tickets.
queues = st.sampled_from(["ranked", "ranked", "normal"])
# Mostly solo players; parties up to four, some too large for a game or a team.
party_sizes = st.sampled_from([1, 1, 1, 1, 2, 2, 3, 4])
# Mostly a new player (None); else one seen before (if queued still: AlreadyQueued).
who = st.sampled_from([None, None, None, *range(8)])
enqueue = st.tuples(st.just("enqueue"), game_picks, queues, party_sizes, ratings, who)
matchmaker_calls = st.sampled_from(["enqueue"] * 4 + ["requeue", "cancel", "wait", "wait"]).flatmap(
    lambda kind: {
        "enqueue": enqueue,
        # Back at the head of its queue, having waited `age` seconds already.
        "requeue": st.tuples(st.just("requeue"), game_picks, queues, party_sizes, ratings,
                             st.integers(0, 6)),
        "cancel": st.tuples(st.just("cancel"), st.integers(0, 40)),
        "wait": st.tuples(st.just("wait"), st.integers(1, 6)),
    }[kind]
)  # fmt: skip


def party_ticket(
    leader: str, game: str, queue: str, size: int, rating: float | None, queued_at: float
) -> Ticket:
    """A ticket of `size` players: `leader`'s, carrying its members' (a party's, above one)."""
    party_id = None if size == 1 else "P-" + leader
    members = tuple(
        Ticket(f"{leader}.{k}", f"{leader}.{k}", game, rating, queued_at, queue,
               party_id=party_id)
        for k in range(1, size)
    )  # fmt: skip
    return Ticket(leader, leader, game, rating, queued_at, queue, party_id=party_id,
                  members=members)  # fmt: skip


def by_queue(matches: list[Match]) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """The matches of each queue, in the order formed, without their random ids."""
    formed: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for m in matches:
        formed.setdefault((m.game, m.players[0].queue), []).append((m.players, m.formed_at))
    return formed


class MatchmakerBackendsTests(TestCase):
    timeout = 300
    maxDiff = None  # a failure shows the whole difference of the matches

    async def test_both_matchmakers_form_the_same_matches_from_the_same_calls(self) -> None:
        redis = await start_redis(self)
        # One connection: answers come in the order the calls went, so a call
        # made after the clock started a pass is answered after that pass.
        pool = txredisapi.lazyConnectionPool("127.0.0.1", redis.port, poolsize=1,
                                             reconnect=True)  # fmt: skip
        self.addCleanup(pool.disconnect)
        runs = itertools.count()
        formed: dict[str, int] = {}

        @settings(max_examples=MATCHMAKER_EXAMPLES, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
        # First, one example that surely has it all: a party and two solo players
        # in teams, matched once their windows have widened to 30; a normal match;
        # two players whose windows stop at 20, 30 apart; a cancel.
        @example(
            played=["duo", "duel"],
            windows={
                **{g: RatingWindow(0.0, 10.0, None) for g in SIZES},
                "duel": RatingWindow(0.0, 10.0, 20.0),
            },
            calls=[
                ("enqueue", 0, "ranked", 2, 1000.0, None),
                ("enqueue", 0, "ranked", 1, 1020.0, None),
                ("enqueue", 1, "ranked", 1, 1000.0, None),
                ("enqueue", 1, "ranked", 1, 1030.0, None),
                ("enqueue", 1, "normal", 1, None, None),
                ("enqueue", 0, "ranked", 1, 1030.0, None),
                ("enqueue", 1, "normal", 1, None, None),
                ("wait", 4),
                ("cancel", 2),
            ],
        )
        @given(played=st.lists(games, min_size=1, max_size=2, unique=True),
               windows=st.fixed_dictionaries({g: windows for g in SIZES}),
               calls=call_lists(matchmaker_calls))  # fmt: skip
        def same_rule(
            played: list[str], windows: dict[str, RatingWindow], calls: list[tuple[Any, ...]]
        ) -> None:
            run = next(runs)
            on_reactor(lambda: self.compare(redis, pool, run, played, windows, calls, formed))

        await deferToThread(same_rule)
        # The examples said something: matches in ranked and normal queues, with teams too,
        # and ranked matches that waited for their windows to widen.
        self.assertGreater(formed.get("ranked", 0), 10, formed)
        self.assertGreater(formed.get("widened", 0), 0, formed)
        self.assertGreater(formed.get("normal", 0), 10, formed)
        # (Team matches are the rarest kind: 120 examples have drawn as few as 5. More
        # than 2 says random examples made some, beside the explicit one.)
        self.assertGreater(formed.get("teams", 0), 2, formed)

    async def compare(
        self,
        redis: RedisServer,
        pool: Any,
        run: int,
        played: list[str],
        windows: dict[str, RatingWindow],
        calls: list[tuple[Any, ...]],
        formed: dict[str, int],
    ) -> None:
        clock = Clock()
        games = GameCatalogue.sized(SIZES, team_sizes=TEAMS, windows=windows)
        memory = MemoryMatchmaker(games, clock, reevaluate_every=1.0)
        # Calls carry deadlines on Redis's real clock, half call_timeout after the
        # clock's now: long enough that a loaded machine misses none (the test
        # waits for every answer before it moves the clock on).
        settings = RedisMatchmakerSettings(prefix=f"same{run}", lobby_lease=3600.0,
                                           tick_every=1.0, call_timeout=60.0)  # fmt: skip
        shared = RedisMatchmaker(
            pool, TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port), games, clock,
            settings=settings,
        )  # fmt: skip
        heard: dict[str, list[Match]] = {"memory": [], "redis": []}
        memory.add_listener(heard["memory"].append)
        shared.add_listener(heard["redis"].append)
        await shared.start()
        # What a failing example did, for its message (trial does not print hypothesis's).
        transcript = [
            f"{game}: {SIZES[game]} seats, teams of {TEAMS.get(game, '-')}, {windows[game]}"
            for game in played
        ]
        players: list[str] = []
        try:
            for step, call in enumerate(calls):
                before = {side: len(matches) for side, matches in heard.items()}
                kind = call[0]
                if kind in ("enqueue", "requeue"):
                    _, pick, queue, size, rating, extra = call
                    game = played[pick % len(played)]
                    if kind == "enqueue" and extra is not None and players:
                        leader = players[extra % len(players)]
                        at = clock.seconds()
                    else:
                        leader = f"p{step}"
                        players.append(leader)
                        at = clock.seconds() - (extra if kind == "requeue" else 0)
                    t = party_ticket(leader, game, queue, size, rating, at)
                    transcript.append(
                        f"t={clock.seconds():g} {kind} {leader} x{size} {game}/{queue} "
                        f"rating={rating} queued_at={at:g}"
                    )
                    add = memory.enqueue if kind == "enqueue" else memory.requeue
                    add_shared = shared.enqueue if kind == "enqueue" else shared.requeue
                    answers = (
                        await outcome(partial(add, t)),
                        await outcome(partial(add_shared, t)),
                    )
                elif kind == "cancel":
                    who = players[call[1] % len(players)] if players else "nobody"
                    transcript.append(f"t={clock.seconds():g} cancel {who}")
                    answers = (
                        await outcome(partial(memory.cancel, who)),
                        await outcome(partial(shared.cancel, who)),
                    )
                else:
                    transcript.append(f"t={clock.seconds():g} wait {call[1]} s")
                    for _ in range(call[1]):
                        clock.advance(1.0)
                        # The tick's heartbeat is answered before this, then its passes.
                        await shared.position("nobody")
                        await shared.settled()
                    answers = (("ok", None), ("ok", None))
                # Whatever a call started (another pass) is answered before this.
                await shared.position("nobody")
                await shared.settled()
                where = "\n  ".join(["in this example:", *transcript])
                self.assertEqual(answers[1], answers[0], f"answers (Redis, memory) {where}")
                new = {side: matches[before[side] :] for side, matches in heard.items()}
                self.assertEqual(by_queue(new["redis"]), by_queue(new["memory"]),
                                 f"matches (Redis, memory) {where}")  # fmt: skip
                if kind == "wait":
                    # Formed on a tick: windows had widened while the tickets waited.
                    formed["widened"] = formed.get("widened", 0) + len(new["memory"])
                for game in SIZES:
                    for queue in QUEUES:
                        self.assertEqual(shared.queue_length(game, queue),
                                         memory.queue_length(game, queue),
                                         f"{game}/{queue} queue length {where}")  # fmt: skip
            # The same tickets wait, in the same places (a party's place is its leader's).
            where = "\n  ".join(["in this example:", *transcript])
            everyone = [
                p for leader in players for p in (leader, *(f"{leader}.{k}" for k in range(1, 4)))
            ]
            for player in everyone:
                self.assertEqual(await shared.position(player), await memory.position(player),
                                 f"position of {player} {where}")  # fmt: skip
            for match in heard["memory"]:
                queue = match.players[0].queue
                formed[queue] = formed.get(queue, 0) + 1
                if match.game in TEAMS:
                    formed["teams"] = formed.get("teams", 0) + 1
        finally:
            memory.stop()
            await shared.stop()


# -- the party stores

MAX_SIZE = 3
PEOPLE = [f"u{i}" for i in range(7)]
people = st.sampled_from(PEOPLE)
# A party by when it was created, 0 the newest (one that is gone still names it); None: none.
party_refs = st.sampled_from([0, 0, 0, 1, 2, None])
party_calls = st.sampled_from(
    ["create", "join", "join", "join", "leave", "queue", "unqueue"]
).flatmap(
    lambda kind: {
        "create": st.tuples(st.just("create"), people),
        # The code as given, in lower case, or with spaces around.
        "join": st.tuples(st.just("join"), people, party_refs,
                          st.sampled_from(["as is", "lower", "spaced"])),
        "leave": st.tuples(st.just("leave"), people, st.booleans()),
        # The members on the ticket: the party's own, or a stale list (one left out,
        # or reordered).
        "queue": st.tuples(st.just("queue"), party_refs, games, queues,
                           st.sampled_from(["members", "one fewer", "reversed"]),
                           st.none() | st.integers(1, 9)),
        "unqueue": st.tuples(st.just("unqueue"), party_refs, st.booleans()),
    }[kind]
)  # fmt: skip


class _Parties:
    """One side's parties as the test knows them: its ids and codes by creation order."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.codes: list[str] = []
        # Each party as the side last told it (its listeners hear every change).
        self.latest: dict[str, Party] = {}

    def heard(self, change: PartyChange) -> None:
        self.latest[change.party.party_id] = change.party

    def ref(self, party_id: str) -> int | str:
        return self.ids.index(party_id) if party_id in self.ids else "unknown id " + party_id

    def plain(self, party: Party | None) -> tuple[Any, ...] | None:
        """A party without the side's random id and code: which created party it is
        (and whether its code is that party's), its members and its queue."""
        if party is None:
            return None
        ref = self.ref(party.party_id)
        code_ok = isinstance(ref, int) and self.codes[ref] == party.code
        return (ref, code_ok, party.members, party.queued_for, party.queue)

    def change(self, change: PartyChange) -> tuple[Any, ...]:
        return (change.event, change.player_id, change.position, self.plain(change.party))

    def answer(self, answer: tuple[str, Any]) -> tuple[str, Any]:
        kind, value = answer
        return (kind, self.plain(value)) if isinstance(value, Party) else answer


class PartiesSameRuleTests(TestCase):
    timeout = 300
    maxDiff = None

    async def test_both_party_stores_answer_the_same_calls_alike(self) -> None:
        redis = await start_redis(self)
        # Calls carry deadlines half this timeout ahead: a loaded machine refuses none.
        client = await redis_client(self, redis, timeout=20.0)
        runs = itertools.count()
        seen: dict[str, int] = {}

        @settings(max_examples=PARTY_EXAMPLES, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
        # First, one example that surely meets every answer.
        @example(
            calls=[
                ("create", "u0"),
                ("join", "u1", 0, "lower"),
                ("join", "u2", 0, "spaced"),
                ("join", "u3", 0, "as is"),
                ("create", "u1"),
                ("leave", "u2", False),
                ("queue", 0, "duel", "ranked", "one fewer", 1),
                ("queue", 0, "duel", "ranked", "members", 1),
                ("join", "u3", 0, "as is"),
                ("join", "u4", None, "as is"),
                ("leave", "u0", True),
                ("unqueue", 0, True),
                ("leave", "u0", False),
            ],
        )
        @given(calls=call_lists(party_calls))
        def same_rule(calls: list[tuple[Any, ...]]) -> None:
            run = next(runs)
            on_reactor(lambda: self.compare(redis, client, run, calls, seen))

        await deferToThread(same_rule)
        # The examples reached every answer the rule has.
        for answer in (
            "ok",
            "already_in_party",
            "unknown_party",
            "party_full",
            "party_queued",
            "not_in_party",
            "party_changed",
        ):
            self.assertGreater(seen.get(answer, 0), 0, seen)

    async def compare(
        self,
        redis: RedisServer,
        client: RedisClient,
        run: int,
        calls: list[tuple[Any, ...]],
        seen: dict[str, int],
    ) -> None:
        memory = MemoryPartyStore(MAX_SIZE)
        # Its refresh timer on a clock nobody advances: keys outlive the example.
        shared = RedisPartyStore(
            client, TCP4ClientEndpoint(reactor, "127.0.0.1", redis.port), Clock(),
            max_size=MAX_SIZE, settings=RedisPartySettings(prefix=f"same{run}"),
        )  # fmt: skip
        sides = {"memory": memory, "redis": shared}
        known = {side: _Parties() for side in sides}
        heard: dict[str, list[PartyChange]] = {side: [] for side in sides}
        for side, store in sides.items():
            store.add_listener(heard[side].append)
            store.add_listener(known[side].heard)
        await shared.start()
        transcript = [
            f"parties of at most {MAX_SIZE}; a call names a party by how many were created"
            " after it (0: the newest; None: no party)"
        ]
        try:
            for call in calls:
                transcript.append(" ".join(str(part) for part in call))
                where = "\n  ".join(["in this example:", *transcript])
                before = {side: len(changes) for side, changes in heard.items()}
                answers = {}
                for side, store in sides.items():
                    answers[side] = await outcome(self.request(store, known[side], call))
                    if call[0] == "create" and answers[side][0] == "ok":
                        known[side].ids.append(answers[side][1].party_id)
                        known[side].codes.append(answers[side][1].code)
                plain = {side: known[side].answer(answers[side]) for side in sides}
                self.assertEqual(
                    plain["redis"], plain["memory"], f"answers (Redis, memory) {where}"
                )
                told = {side: [known[side].change(c) for c in heard[side][before[side]:]]
                        for side in sides}  # fmt: skip
                self.assertEqual(
                    told["redis"], told["memory"], f"changes told (Redis, memory) {where}"
                )
                result = answers["memory"][1] if answers["memory"][0] == "error" else "ok"
                seen[result] = seen.get(result, 0) + 1
            where = "\n  ".join(["in this example:", *transcript])
            for player in PEOPLE:
                parties = {side: known[side].plain(await store.party_of(player))
                           for side, store in sides.items()}  # fmt: skip
                self.assertEqual(parties["redis"], parties["memory"], f"{player}'s party {where}")
        finally:
            await shared.stop()

    def request(
        self, store: Any, known: _Parties, call: tuple[Any, ...]
    ) -> Callable[[], Deferred[Any]]:
        """The call `call` names, made on one side's store (with that side's ids and codes)."""
        kind = call[0]

        def created(ref: int | None) -> int | None:
            # ref counts back from the newest party (likelier to be there still).
            if ref is None or ref >= len(known.ids):
                return None
            return len(known.ids) - 1 - ref

        def party_id(ref: int | None) -> str:
            index = created(ref)
            return "p-none" if index is None else known.ids[index]

        if kind == "create":
            return lambda: store.create(PartyMember(call[1], call[1].upper()))
        if kind == "join":
            _, player, ref, form = call
            index = created(ref)
            # "000000" is no party's: 0 is not in the codes' alphabet.
            code = "000000" if index is None else known.codes[index]
            code = {"as is": code, "lower": code.lower(), "spaced": f" {code} "}[form]
            return lambda: store.join(code, PartyMember(player, player.upper()))
        if kind == "leave":
            return lambda: store.leave(call[1], refuse_late=call[2])
        if kind == "queue":
            _, ref, game, queue, on_ticket, position = call

            # The members on the ticket: the party's, as this side last told them.
            latest = known.latest.get(party_id(ref))
            members = latest.player_ids if latest is not None else ()
            if on_ticket == "one fewer":
                members = members[:-1]
            elif on_ticket == "reversed":
                members = members[::-1]
            return lambda: store.set_queued(party_id(ref), game, members, position, queue=queue)
        _, ref, matched = call
        return lambda: store.set_queued(party_id(ref), None, matched=matched)
