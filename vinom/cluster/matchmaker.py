"""The Redis matchmaker: queues shared by every lobby process, matches formed atomically.

Each lobby process runs one `RedisMatchmaker` on the same Redis. Tickets live
in Redis, one sorted set per game and queue (`normal` or `ranked`) ordered by
arrival, the ticket itself in a hash. Every change to the queues is one call
of one Lua script (matchmaker.lua beside this module), which Redis runs
atomically. The match rule is not in it: a matching pass reads the queue's
live tickets and version (`snapshot`), runs the rule of
vinom.matchmaking.windows on them here, as the in-memory matchmaker does, and
forms the chosen matches with `take`, refused if the queue changed meanwhile
(but for tickets added at its tail), so however many lobbies race, no ticket
is matched twice and every match is the rule's. A lobby runs a pass after
each enqueue call; the lobby holding a game's lease also every `tick_every`.
Each match is published on the channels of the lobbies holding its players,
which call their listeners.

A lobby owns the tickets of its players. The script matches a ticket only
while its lobby is live: it holds its lease (a key it renews every
`tick_every` seconds, lapsing `lobby_lease` seconds after the last renewal)
and its presence connection is open (a pub/sub connection subscribed to a
channel of its own: Redis hears the connections of a killed process close at
once, and the script counts the channel's subscribers). A lobby that dies is
thus passed over at once, and its tickets are dropped wherever the script
meets them once its lease has lapsed. A lobby whose lease lapsed while it
lived (it stalled, or Redis restarted and lost its data) puts its players'
tickets back in their place on its next heartbeat. No call waits longer than
`call_timeout`: with Redis down the Deferreds fail with
`BackendUnavailable`. docs/matchmaking.md has the keys and the failure
cases.
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from attrs import frozen
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.cluster import txredisapi_adapter
from vinom.cluster.channel import FOLLOWERS_TTL
from vinom.cluster.client import RedisSubscription, Script, milliseconds
from vinom.cluster.clock import RedisClock
from vinom.cluster.inflight import InFlightCalls
from vinom.cluster.outage import Outage
from vinom.cluster.settings import DEFAULT_MATCHMAKER, RedisMatchmakerSettings
from vinom.cluster.watch import guarded
from vinom.errors import BackendUnavailable, UnknownGame
from vinom.games.rules import GameRules
from vinom.match import QUEUES, Match, Ticket, match_from_json, new_match_id, ticket_to_json
from vinom.matchmaking.interfaces import (
    AlreadyQueued,
    IMatchmaker,
    MatchListener,
    UnknownQueue,
)
from vinom.matchmaking.windows import (
    DEFAULT_WINDOW,
    RatingWindow,
    fifo_groups,
    party_too_large,
    ranked_groups,
)

SCRIPT = Script.packaged("matchmaker.lua")


def _script_for(settings: RedisMatchmakerSettings) -> Script:
    """The script behind the watch guard: a lapsed lease proves a death once Redis has
    been watched for a lease and a tick (vinom.cluster.watch)."""
    return guarded(SCRIPT.source, settings.lobby_lease + settings.tick_every)


# Matches a lobby remembers having announced, to announce each once although
# it may hear one in the script's answer, on the channel and in the log.
_REMEMBERED_MATCHES = 50_000


class _Refused(BackendUnavailable):
    """Redis ran the call after its deadline and did nothing: no undoing is due."""


def _ignore(message: str) -> None:
    """The presence channel carries nothing: being subscribed is what counts."""


@frozen
class _Waiting:
    """A live ticket as the leader reads it from Redis: what the rule needs."""

    player_id: str
    rating: float | None
    queued_at: float
    size: int


# A leader's attempts at one matching pass whose take finds the queue changed.
_ATTEMPTS = 8


def _seats_json(ticket: Ticket) -> str:
    """The tickets `ticket` becomes in a match, as JSON objects separated by commas
    (the script writes them into the match as they are)."""
    return ",".join(
        json.dumps(ticket_to_json(seat), separators=(",", ":")) for seat in ticket.seats
    )


@implementer(IMatchmaker)
class RedisMatchmaker:
    """One lobby's view of the shared queues.

    `redis` is a txredisapi connection handler (a pool is best: calls share
    it); `subscriber_endpoint` reaches the same Redis for the matches
    channel, which needs a connection of its own. `games` (each game's
    `GameRules`: match size, team size, ranked window) and `default_window` are
    as for `MemoryMatchmaker`, and must be the same in every lobby. `clock`
    gives `now` and runs the heartbeat. Call `start()` before use and `stop()`
    at shutdown.
    """

    log = Logger()

    def __init__(
        self,
        redis: Any,
        subscriber_endpoint: IStreamClientEndpoint,
        games: Mapping[str, GameRules],
        clock: IReactorTime,
        *,
        lobby_id: str | None = None,
        settings: RedisMatchmakerSettings = DEFAULT_MATCHMAKER,
        default_window: RatingWindow = DEFAULT_WINDOW,
        new_id: Callable[[], str] = new_match_id,
        password: str | None = None,
        redis_clock: RedisClock | None = None,
        username: str | None = None,
    ) -> None:
        self.lobby_id = lobby_id or "l-" + secrets.token_hex(8)
        self._redis = redis
        self._games = dict(games)
        self._clock = clock
        # Redis's clock, which the heartbeat reads (the process's RedisClient's, shared).
        self._redis_clock = redis_clock or RedisClock(clock)
        self._settings = settings
        self._lua = _script_for(settings)
        self._windows = {
            game: rules.rating_window or default_window for game, rules in games.items()
        }
        self._new_id = new_id
        self._listeners: list[MatchListener] = []
        # The tickets of this lobby's players: player id -> (ticket, its score).
        self._owned: dict[str, tuple[Ticket, float]] = {}
        # Players whose enqueue awaits its answer -> whether a match of theirs was
        # announced meanwhile (the channel may deliver it before the answer).
        self._adding: dict[str, bool] = {}
        # The same for players whose cancel awaits its answer.
        self._cancelling: dict[str, bool] = {}
        # The script calls not yet answered or given up on: `stop` waits for them
        # (each within `call_timeout`).
        self._in_flight = InFlightCalls(clock)
        # Enqueue calls, numbered: their tickets carry the number (see "withdraw").
        self._calls = itertools.count()
        # Matches announced -> the id of the lobby whose call formed each, and the
        # lobbies that heard it (the match's `lobbies`).
        self._announced: OrderedDict[str, tuple[str | None, tuple[str, ...]]] = OrderedDict()
        self._last_logged: tuple[tuple[int, ...], str] | None = None
        # This lobby's own channel: the matches that hold its players (a match its own
        # call formed for other lobbies' players is published to them, not here).
        self._channel = f"{settings.prefix}:matches:{self.lobby_id}"
        self._subscription = RedisSubscription(
            subscriber_endpoint, self._channel, self._heard, clock, password,
            catch_up=self._catch_up, username=username,
        )  # fmt: skip
        # Open while this process lives: the script counts its subscribers.
        self._presence = RedisSubscription(
            subscriber_endpoint,
            f"{settings.prefix}:presence:{self.lobby_id}",
            _ignore,
            clock,
            password,
            username=username,
        )
        self._ticking = Outage(self.log, clock, "the matchmaker's tick")
        # A restore after a failover is due until one succeeds (`restore_tickets`).
        self._restore_due = False
        self._restoring = False
        self._ticker = LoopingCall(self._tick)
        self._ticker.clock = clock
        # Queues with a matching pass running, and those due another once it ends.
        self._passes: set[tuple[str, str]] = set()
        self._again: set[tuple[str, str]] = set()
        self._pass_waiters: dict[tuple[str, str], list[Deferred[None]]] = {}
        # Callers of `settled` waiting for the passes to end.
        self._idle: list[Deferred[None]] = []
        # Set by `stop`: no pass starts, and a running one ends at its next step.
        self._stopped = False
        # The games whose matching this lobby leads (holds the lease of), as of
        # its last heartbeat or enqueue answer.
        self._leads: set[str] = set()
        # Tickets waiting for their queue's enqueue call, and the queues with one in flight.
        self._waiting: dict[tuple[str, str], list[tuple[Ticket, bool, Deferred[int]]]] = {}
        self._sending: set[tuple[str, str]] = set()
        self._matched_ms = str(int(settings.matched_memory * 1000))
        self._lease_ms = str(int(settings.lobby_lease * 1000))

    # -- lifecycle

    def start(self) -> Deferred[None]:
        """Take the lease, subscribe to the matches and presence channels, start the timer."""

        async def start() -> None:
            await self._heartbeat()
            self._presence.start()
            self._subscription.start()
            await self._deadline(self._presence.when_subscribed(), "opening the presence channel")
            await self._deadline(self._subscription.when_subscribed(), "subscribing to matches")
            self._ticker.start(self._settings.tick_every, now=False)

        return Deferred.fromCoroutine(start())

    def stop(self) -> Deferred[None]:
        """Stop the timer and the subscriber; take this lobby's queued tickets out of Redis."""
        if self._ticker.running:
            self._ticker.stop()
        self._stopped = True
        players = list(self._owned)
        self._owned.clear()

        async def stop() -> None:
            try:
                await self._script("release", str(len(players)), *players, *self._games)
            except Exception as e:
                # Its tickets lapse with its key, as if it had died.
                self.log.warn("could not release tickets: {error}", error=e)
            # A call still out (a tick's, the withdrawal of an enqueue given up
            # on) settles first: a stopped lobby leaves nothing running.
            await self._in_flight.when_done()
            await self._subscription.stop()
            await self._presence.stop()

        return Deferred.fromCoroutine(stop())

    def restore_tickets(self) -> Deferred[None]:
        """Put back the tickets of this lobby's queued players that Redis does not know,
        in their places, as a heartbeat does when it finds this lobby's key gone. Run
        after a Sentinel failover: replication is asynchronous, so the promoted replica
        may lack the last tickets enqueued on the former master (this lobby's key is
        still there, so the heartbeat would not notice). Due until it succeeds: one
        that fails (Redis still away) is tried again at every tick."""
        self._restore_due = True
        d = self._restore_if_due()
        return d.addErrback(lambda failure: self.log.warn(
            "restoring tickets after a failover failed: {error} (tried again at each tick)",
            error=failure.value))  # fmt: skip

    def _restore_if_due(self) -> Deferred[None]:
        if not self._restore_due or self._restoring:
            return succeed(None)
        if not self._owned:
            self._restore_due = False
            return succeed(None)
        self._restoring = True

        def restored(count: object) -> None:
            self._restore_due = False
            self._restored(count)

        def over(result: object) -> object:
            self._restoring = False
            return result

        d = self._script("restore", *self._restore_arguments(self._owned.values()))
        return d.addCallback(restored).addBoth(over)

    def queue_length(self, game: str, queue: str | None = None) -> int:
        """Tickets of this lobby's players waiting for `game` (in one queue, or in all):
        the queues are shared, and each lobby counts its own, so the figures of all
        lobbies add up to the queue (the operations endpoint's `vinom_queue_depth`)."""
        return sum(
            1 for ticket, _ in self._owned.values()
            if ticket.game == game and (queue is None or ticket.queue == queue)
        )  # fmt: skip

    # -- IMatchmaker

    def enqueue(self, ticket: Ticket) -> Deferred[int]:
        return self._add(ticket, at_head=False)

    def requeue(self, ticket: Ticket) -> Deferred[int]:
        return self._add(ticket, at_head=True)

    def cancel(self, player_id: str, *, refuse_late: bool = False) -> Deferred[bool]:
        # Not owned while the call is out: a restore meanwhile must not put the ticket back.
        owned = self._owned.pop(player_id, None)
        if not refuse_late:
            # A withdrawal: one that Redis only gets after the timeout still happens.
            d = self._script("cancel", player_id, "", self._matched_ms)
            return d.addCallback(lambda removed: removed == 1)
        self._cancelling[player_id] = False

        def answered(removed: object) -> bool:
            if removed == -1:
                raise _Refused("cancel: Redis ran it after its deadline; the ticket stays queued")
            return removed == 1

        def failed(failure: Failure) -> Failure:
            # Nothing was done: the ticket is still this lobby's, unless it was matched.
            matched = self._cancelling.get(player_id, False)
            if failure.check(BackendUnavailable) and owned is not None and not matched:
                self._owned.setdefault(player_id, owned)
                if not failure.check(_Refused):
                    # No answer: Redis may have cancelled before the deadline (this
                    # process, stalled, read the answer too late). Put the ticket
                    # back if it is gone (restore leaves a ticket Redis knows, queued
                    # or matched, alone), whenever Redis runs this: after the cancel.
                    d = self._script("restore", *self._restore_arguments([owned]))
                    d.addErrback(self._warn, "putting back a ticket whose cancel failed")
            return failure

        def over(result: object) -> object:
            self._cancelling.pop(player_id, None)
            return result

        deadline = self._redis_clock.deadline(self._settings.call_timeout)
        d = self._script("cancel", player_id, deadline, self._matched_ms)
        return d.addCallback(answered).addErrback(failed).addBoth(over)

    def position(self, player_id: str) -> Deferred[int | None]:
        return self._script("position", player_id).addCallback(
            lambda rank: int(rank) if rank else None
        )

    def add_listener(self, listener: MatchListener) -> None:
        self._listeners.append(listener)

    def adopt(self, player_id: str) -> Deferred[Match | None]:
        """The match of a player whose ticket was matched and whose match is not placed
        yet (a player reconnecting through this lobby while the match waits for its game
        host): announced here now if it was not, and this lobby joins the lobbies that
        hear its placement. None if the player's ticket is not matched, or their
        match's placement is decided (placed or failed)."""

        def found(text: object) -> Match | None:
            if not text:
                return None
            data = json.loads(text.decode() if isinstance(text, bytes) else str(text))
            match = match_from_json(data)
            lobbies = [*data.get("lobbies", ()), self.lobby_id]
            self._announce(match, data.get("formed_by"), lobbies)
            return match

        ttl = str(milliseconds(FOLLOWERS_TTL))
        return self._script("adopt", player_id, self._settings.placement_prefix, ttl).addCallback(
            found
        )

    # -- queues

    def window(self, game: str) -> RatingWindow:
        """The rating window of `game`'s ranked queue."""
        return self._windows[game]

    def _add(self, ticket: Ticket, *, at_head: bool) -> Deferred[int]:
        if ticket.game not in self._games:
            return fail(UnknownGame(ticket.game))
        if ticket.queue not in QUEUES:
            return fail(UnknownQueue(ticket.queue))
        if ticket.player_id in self._owned:
            return fail(AlreadyQueued(ticket.player_id))
        too_large = party_too_large(ticket.size, ticket.game, ticket.queue,
                                    self._games[ticket.game])
        if too_large is not None:
            return fail(too_large)
        waiting = Deferred[int]()
        key = (ticket.game, ticket.queue)
        self._waiting.setdefault(key, []).append((ticket, at_head, waiting))
        if key not in self._sending:
            self._send_enqueues(key)
        return waiting

    def _send_enqueues(self, key: tuple[str, str]) -> None:
        """One script call for the tickets waiting to enter one queue.

        At most one enqueue call per queue is in flight from a lobby: tickets
        that come meanwhile wait and go together in the next call, so a busy
        lobby makes one call, one reply and one matching pass per batch rather
        than per ticket, and an idle one sends each ticket at once.
        """
        waiting = self._waiting.get(key)
        if not waiting:
            self._waiting.pop(key, None)
            return
        most = self._settings.enqueue_batch
        batch, self._waiting[key] = waiting[:most], waiting[most:]
        self._sending.add(key)
        # Redis refuses the whole call after its deadline: by then its callers
        # have been answered that nothing was done.
        deadline = self._redis_clock.deadline(self._settings.call_timeout)
        call = str(next(self._calls))
        arguments = [deadline, call, str(len(batch))]
        for ticket, at_head, _ in batch:
            arguments += [
                ticket.player_id,
                "1" if at_head else "0",
                "" if ticket.rating is None else repr(float(ticket.rating)),
                repr(float(ticket.queued_at)),
                _seats_json(ticket),
                str(ticket.size),
            ]
        game, queue = key

        def stored(reply: Any) -> Deferred[None] | None:
            try:
                answer = json.loads(reply)
                if answer.get("expired"):
                    failed(Failure(_Refused(
                        "enqueue: Redis ran it after its deadline; nothing was queued"
                    )))  # fmt: skip
                    return None
                answers = answer["tickets"]
                if len(answers) != len(batch):
                    raise ValueError(f"{len(answers)} answers for {len(batch)} tickets")
            except (ValueError, KeyError, TypeError) as e:
                failed(Failure(BackendUnavailable(f"enqueue: unexpected answer ({e})")))
                return None
            # Owned before the matches of this answer are announced (announcing
            # forgets the players matched), unless a match of the player was heard
            # on the channel before this answer: the ticket is gone already, and
            # owning it would keep the player from queueing again and put a
            # matched ticket back after a lapse.
            for (ticket, _, _), entry in zip(batch, answers, strict=True):
                matched_meanwhile = self._adding.pop(ticket.player_id, False)
                if "score" in entry and not matched_meanwhile:
                    self._owned[ticket.player_id] = (ticket, float(entry["score"]))

            def reply_to_callers(_: object) -> None:
                for (ticket, _, waiter), entry in zip(batch, answers, strict=True):
                    if "score" in entry:
                        waiter.callback(int(entry["position"]))
                    else:
                        waiter.errback(AlreadyQueued(ticket.player_id))

            # Answered once the pass has formed what the tickets complete, as the
            # memory matchmaker does.
            return self._pass_soon(game, queue).addCallback(reply_to_callers)

        def failed(failure: Failure) -> None:
            for ticket, _, waiter in batch:
                self._adding.pop(ticket.player_id, None)
                waiter.errback(failure)
            if not failure.check(_Refused):
                # No answer: Redis may have stored the tickets before their
                # deadline (this process, stalled, read the answer too late). The
                # callers are told nothing was done, so what this call stored goes
                # (whenever Redis runs this: after the enqueue, if it ran at all).
                players = [ticket.player_id for ticket, _, _ in batch]
                d = self._script("withdraw", call, *players)
                d.addErrback(self._warn, "withdrawing an enqueue given up on")

        def next_batch(_: object) -> None:
            self._sending.discard(key)
            self._send_enqueues(key)

        for ticket, _, _ in batch:
            self._adding[ticket.player_id] = False
        d = self._script("enqueue", *arguments, game, queue)
        d.addCallbacks(stored, failed).addErrback(self._warn, "enqueue")
        d.addBoth(next_batch)

    def settled(self) -> Deferred[None]:
        """Fires once no matching pass of this lobby is running (at once if none is):
        every match the passes it started could form is formed. For a caller that
        moved the clock (a test) and wants the passes of that tick done."""
        if not self._passes:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle.append(waiter)
        return waiter

    def _pass_soon(self, game: str, queue: str) -> Deferred[None]:
        """Run a matching pass on one queue, or one more after the one running; fires
        (never fails) once a pass that started after this call is over."""
        key = (game, queue)
        if self._stopped:
            return succeed(None)
        over: Deferred[None] = Deferred()
        self._pass_waiters.setdefault(key, []).append(over)
        if key in self._passes:
            self._again.add(key)
            return over
        self._passes.add(key)

        async def run() -> None:
            again = True
            while again and not self._stopped:
                waiters = self._pass_waiters.pop(key, [])
                self._again.discard(key)
                try:
                    await self._run_pass(game, queue)
                except Exception as e:
                    self.log.warn("matching pass failed: {error}", error=e)
                finally:
                    for waiter in waiters:
                        waiter.callback(None)
                again = key in self._again
            self._passes.discard(key)
            for waiter in self._pass_waiters.pop(key, []):
                waiter.callback(None)  # stopped: no pass is coming
            if not self._passes:
                idle, self._idle = self._idle, []
                for waiter in idle:
                    waiter.callback(None)

        Deferred.fromCoroutine(run())
        return over

    async def _run_pass(self, game: str, queue: str) -> None:
        """Form every match one queue allows now, by the rule of
        vinom.matchmaking.windows, on the live tickets read from Redis.

        The take is refused if the queue changed meanwhile (but for tickets
        added at its tail): then the pass reads it again. A pass that formed
        as many matches as it may at once, or read as many tickets as it may,
        runs again.
        """
        rules = self._games[game]
        settings = self._settings
        for _ in range(_ATTEMPTS):
            if self._stopped:
                return
            reply = await self._script(
                "snapshot", game, queue, str(settings.ranked_scan_limit),
                settings.party_prefix,
            )  # fmt: skip
            version, rows = json.loads(reply)
            waiting = [
                _Waiting(str(player), None if rating is False else float(rating),
                         float(queued_at), int(size))
                for player, rating, queued_at, size in rows
            ]  # fmt: skip
            if queue == "ranked":
                groups = ranked_groups(waiting, rules.match_size, self._windows[game],
                                       self._clock.seconds(), rules.team_size)  # fmt: skip
            else:
                groups = fifo_groups(waiting, rules.match_size, rules.team_size)
            if not groups:
                return
            groups = groups[: settings.matches_per_pass]
            arguments = [game, queue, json.dumps(game), str(version), self._matched_ms,
                         settings.party_prefix]  # fmt: skip
            place = {t.player_id: i for i, t in enumerate(waiting)}
            for group in groups:
                # The lobby of the ticket queued last places the match: the one whose
                # enqueue completed it.
                last = max(range(len(group)), key=lambda i: place[group[i].player_id])
                arguments += [self._new_id(), str(last + 1), str(len(group)),
                              *(t.player_id for t in group)]  # fmt: skip
            answer = json.loads(await self._script("take", *arguments))
            if answer.get("stale"):
                continue
            self._formed(answer)
            if len(groups) < settings.matches_per_pass and len(rows) < settings.ranked_scan_limit:
                return
        # Still changing, or more to form: the next pass (or tick) goes on.
        self._again.add((game, queue))

    def _formed(self, answer: Mapping[str, Any]) -> None:
        """Announce the matches of a take's answer that this lobby hears (those with
        a player of its own; each lobby that hears one is told on its channel)."""
        for message in answer.get("matches", ()):
            if self.lobby_id not in message.get("lobbies", ()):
                continue
            # Not _logged: the channel's place in the log only moves with what
            # the channel (or the catch-up) delivered, so a catch-up misses nothing.
            self._announce(match_from_json(message), message.get("formed_by"),
                           message.get("lobbies"))  # fmt: skip

    # -- announcing matches

    def _heard(self, message: object) -> None:
        try:
            text = message.decode() if isinstance(message, bytes) else str(message)
            # The script writes the log id, then the match id, then the rest: a
            # match this lobby formed (and announced from the script's answer)
            # needs no parsing beyond its log id.
            start = text.find('"match_id":"') + len('"match_id":"')
            if text[start : text.find('"', start)] in self._announced:
                data = json.loads(text[: text.find(',"match_id"')] + "}")
                self._logged(data.get("log_id"))
                return
            data = json.loads(text)
            match = match_from_json(data)
        except (ValueError, KeyError, TypeError):
            self.log.warn("not a match on {channel}: {message!r}", channel=self._channel,
                          message=message)
            return
        self._logged(data.get("log_id"))
        self._announce(match, data.get("formed_by"), data.get("lobbies"))

    def formed_by(self, match_id: str) -> str | None:
        """The `lobby_id` of the lobby whose call formed an announced match (its
        enqueue or its matching pass), or None if not known."""
        return self._announced.get(match_id, (None, ()))[0]

    def lobbies_of(self, match_id: str) -> tuple[str, ...]:
        """The ids of the lobbies an announced match was published to: those holding its
        players (empty if not known)."""
        return self._announced.get(match_id, (None, ()))[1]

    def _logged(self, log_id: object) -> None:
        """Remember the newest match-log entry heard (stream ids: 'ms-seq')."""
        if not isinstance(log_id, str):
            return
        try:
            key = tuple(int(part) for part in log_id.split("-"))
        except ValueError:
            return
        if self._last_logged is None or key > self._last_logged[0]:
            self._last_logged = (key, log_id)

    async def _catch_up(self) -> None:
        """After each (re)subscription: note where the match log stands, or read what was missed."""
        log = f"{self._settings.prefix}:match-log"
        if self._last_logged is None:
            # The first connection: matches from now on.
            newest = await self._deadline(
                maybeDeferred(self._redis.execute_command, "XREVRANGE", log, "+", "-",
                              "COUNT", "1"), "reading the match log")  # fmt: skip
            if newest:
                self._logged(str(newest[0][0]))
            else:
                self._last_logged = ((0, 0), "0-0")
            return
        # Reconnected: what was published while the channel was cut off
        # (and Redis kept) is in the log; heard twice is announced once.
        after = "(" + self._last_logged[1]
        missed = await self._deadline(
            maybeDeferred(self._redis.execute_command, "XRANGE", log, after, "+"),
            "reading the match log",
        )
        for entry_id, fields in missed or ():
            values = dict(zip(fields[::2], fields[1::2], strict=False))
            entry = json.loads(values["match"])
            if self.lobby_id not in entry.get("lobbies", (self.lobby_id,)):
                continue  # not published to this lobby: none of its players
            self._heard(json.dumps({"log_id": str(entry_id), **entry}))

    def _announce(self, match: Match, formed_by: object = None, lobbies: object = None) -> None:
        if match.match_id in self._announced:
            # Heard again: in the answer of our own call, on the channel, in
            # the log after a reconnection.
            return
        heard_by = tuple(str(x) for x in lobbies) if isinstance(lobbies, list) else ()
        self._announced[match.match_id] = (formed_by if isinstance(formed_by, str) else None,
                                           heard_by)  # fmt: skip
        while len(self._announced) > _REMEMBERED_MATCHES:
            self._announced.popitem(last=False)
        for player_id in match.player_ids:
            self._owned.pop(player_id, None)
            if player_id in self._adding:
                self._adding[player_id] = True
            if player_id in self._cancelling:
                self._cancelling[player_id] = True
        for listener in list(self._listeners):
            try:
                listener(match)
            except Exception:
                # One failing listener must not keep the match from the others.
                self.log.failure("match listener failed for {match_id}", match_id=match.match_id)

    # -- heartbeat

    def _heartbeat(self) -> Deferred[None]:
        # A heartbeat sent while Redis was down goes out when it is back and
        # may be the one that finds the key gone: its late answer counts too.
        return self._script(
            "heartbeat", self._lease_ms, *self._games, late=self._beaten
        ).addCallback(self._beaten)

    def _beaten(self, answer: object) -> Deferred[None] | None:
        existed = answer
        if isinstance(answer, list) and len(answer) == 4:
            existed = answer[0]
            # Redis's time, just arrived: an estimate of its clock (vinom.cluster.clock).
            self._redis_clock.heard(answer[1], answer[2])
            led = answer[3] if isinstance(answer[3], list) else ()
            self._leads = {g.decode() if isinstance(g, bytes) else str(g) for g in led}
        if existed != 0 or not self._owned:
            return None
        # Our lease had lapsed (we stalled, or Redis lost its data): other lobbies
        # may have dropped our tickets. Put back those Redis has forgotten, in
        # their places.
        d = self._script("restore", *self._restore_arguments(self._owned.values()))
        d.addCallback(self._restored)
        return d

    def _restore_arguments(self, owned: Iterable[tuple[Ticket, float]]) -> list[str]:
        """The restore op's arguments for owned tickets (with their scores)."""
        arguments: list[str] = []
        for ticket, score in owned:
            arguments += [
                ticket.player_id,
                ticket.game,
                ticket.queue,
                "" if ticket.rating is None else repr(float(ticket.rating)),
                repr(float(ticket.queued_at)),
                _seats_json(ticket),
                repr(score),
                str(ticket.size),
            ]
        return arguments

    def _restored(self, count: object) -> None:
        if count:  # (logged: an operator wants to know their lobby lapsed)
            self.log.info("put {count} lapsed tickets back in their queues", count=count)

    def _tick(self) -> Deferred[None]:
        # The heartbeat renews (or takes) the leases of games; the leader's passes:
        # ranked windows widen with time; a normal queue may hold tickets put
        # back or left by a dead lobby.
        def passes(_: object) -> None:
            for game in sorted(self._leads):
                for queue in QUEUES:
                    self._pass_soon(game, queue)

        calls = [self._heartbeat().addCallback(passes), self._restore_if_due()]
        # The timer keeps running whatever fails: the next tick tries again (logged
        # once as ticks fail, once as they work again).
        return gatherResults(calls, consumeErrors=True).addCallbacks(
            lambda _: self._ticking.worked(),
            lambda failure: self._ticking.failed(failure.value.subFailure.value),
        )

    def _warn(self, failure: Failure, doing: str) -> None:
        self.log.warn("{doing} failed: {error}", doing=doing, error=failure.value)

    # -- calls

    def _script(
        self, op: str, *arguments: str, late: Callable[[Any], object] | None = None
    ) -> Deferred[Any]:
        """One call of the script, failing with `BackendUnavailable` after `call_timeout`.

        `late` gets the answer of a call that succeeds after its Deferred
        failed with the timeout (txredisapi keeps a call made while Redis is
        down until it is back).
        """
        header = [
            op,
            self._settings.prefix,
            self.lobby_id,
            repr(float(self._clock.seconds())),
            str(self._settings.match_log_length),
        ]
        # Not RedisClient.run: the call is bounded by `_deadline`, not cancelled.
        call = self._lua.call(self._redis, [self._settings.watch_key], [*header, *arguments])
        return self._deadline(call, op, late)

    def _deadline(
        self, d: Deferred[Any], doing: str, late: Callable[[Any], object] | None = None
    ) -> Deferred[Any]:
        # Not d.addTimeout: the call is left to finish, and an answer that comes
        # after the deadline goes to `late` (a cancelled txredisapi call drops it).
        result: Deferred[Any] = Deferred()
        timeout = self._settings.call_timeout
        self._in_flight.started(result)

        def expire() -> None:
            result.errback(
                BackendUnavailable(f"{doing}: Redis did not answer within {timeout} s")
            )

        timer = self._clock.callLater(timeout, expire)

        def answered(value: object) -> None:
            if timer.active():
                timer.cancel()
            if not result.called:
                if isinstance(value, Failure):
                    if txredisapi_adapter.is_connection_error(value):
                        result.errback(BackendUnavailable(f"{doing}: {value.value}"))
                    else:
                        result.errback(value)
                else:
                    result.callback(value)
            elif late is not None and not isinstance(value, Failure):
                maybeDeferred(late, value).addErrback(self._warn, f"{doing} (late answer)")

        d.addBoth(answered)
        return result
