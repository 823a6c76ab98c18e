"""The records every layer shares: tickets, matches, how a match ended, and their JSON.

A `Ticket` is one player waiting for one game in one of its queues; a `Match`
is the players the matchmaker (or an open room) put together; `MatchEnded` is
how a hosted match ended. They sit at the bottom of the package (rank 0 in
tests/test_layers.py), so that rooms, the store, hosting, matchmaking and the
lobby all take them from here rather than from one another. Their JSON form
(one per record) is what travels in Redis, on the pipe to game-host workers
and on the placement channel. docs/matchmaking.md describes the queues.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from attrs import evolve, frozen

NORMAL_QUEUE = "normal"
"""First come, first matched; ratings are ignored."""

RANKED_QUEUE = "ranked"
"""Matched within rating windows that widen with waiting time (vinom.matchmaking.windows)."""

QUEUES = (NORMAL_QUEUE, RANKED_QUEUE)

HOST_CRASHED = "host_crashed"
"""The reason of the end of a match whose game host died (a worker process, or a whole
host process): its players are not to blame and keep a place at the head of the queue."""


@frozen
class Ticket:
    """One player waiting in one of a game's queues.

    `queued_at` is when the player first asked (a requeued ticket keeps it, so
    its rating window keeps the width it had grown to); `queue` is `"normal"`
    or `"ranked"`.
    """

    player_id: str
    name: str
    game: str
    rating: float | None
    queued_at: float
    queue: str = NORMAL_QUEUE
    # A seat the game's own bot plays on the game host (a room owner's `add_bot`):
    # nobody connects to it.
    bot: bool = False
    # A party's ticket is its leader's: `party_id` names the party and `members`
    # holds the other members' own tickets, seated right after the leader. The
    # matchmaker matches the party as one unit of `size` seats. In a formed
    # match every player has a ticket of their own (no `members`), each with
    # the party's `party_id`.
    party_id: str | None = None
    members: tuple[Ticket, ...] = ()

    @property
    def size(self) -> int:
        """The seats this ticket takes: 1, or its party's members."""
        return 1 + len(self.members)

    @property
    def seats(self) -> tuple[Ticket, ...]:
        """The tickets this one becomes in a match: its own (without `members`), then
        each member's, in join order."""
        if not self.members:
            return (self,)
        return (evolve(self, members=()), *self.members)

    @property
    def player_ids(self) -> tuple[str, ...]:
        """The players this ticket queues: its own, then its party members'."""
        return tuple(t.player_id for t in self.seats)


@frozen
class Match:
    """Players put together for one game; `players` is in seat order."""

    match_id: str
    game: str
    players: tuple[Ticket, ...]
    formed_at: float
    # Whether anyone may watch it (`spectate`, `/replays/`): False for the match of a
    # private room whose owner let nobody watch. It travels with the match (its
    # placement in the store, its request to a game host, its record's header), so
    # that every lobby and web server decides by it (`watch_refusal`).
    spectators: bool = True

    @property
    def player_ids(self) -> tuple[str, ...]:
        return tuple(t.player_id for t in self.players)

    @property
    def ranked(self) -> bool:
        """Whether its end may be rated: two seats or more, each queued `ranked` by a
        player (no bot, no open room's seat)."""
        return len(self.players) >= 2 and all(
            t.queue == RANKED_QUEUE and not t.bot for t in self.players
        )


def ticket_to_json(ticket: Ticket) -> dict[str, Any]:
    """A ticket as a JSON object (in Redis, and on the pipe to game-host workers)."""
    data: dict[str, Any] = {
        "player_id": ticket.player_id,
        "name": ticket.name,
        "game": ticket.game,
        "rating": ticket.rating,
        "queued_at": ticket.queued_at,
        "queue": ticket.queue,
        "bot": ticket.bot,
    }
    # Only a party's tickets carry these: a solo ticket's JSON is as it always was.
    if ticket.party_id is not None:
        data["party_id"] = ticket.party_id
    if ticket.members:
        data["members"] = [ticket_to_json(m) for m in ticket.members]
    return data


def ticket_from_json(data: Mapping[str, Any]) -> Ticket:
    """The ticket `ticket_to_json` gave (KeyError, TypeError or ValueError if it is not one)."""
    rating = data["rating"]
    return Ticket(
        player_id=str(data["player_id"]),
        name=str(data["name"]),
        game=str(data["game"]),
        rating=None if rating is None else float(rating),
        queued_at=float(data["queued_at"]),
        queue=str(data.get("queue", NORMAL_QUEUE)),
        bot=bool(data.get("bot", False)),
        party_id=None if data.get("party_id") is None else str(data["party_id"]),
        members=tuple(ticket_from_json(m) for m in data.get("members", ())),
    )


def match_to_json(match: Match) -> dict[str, Any]:
    """A match as a JSON object (`spectators` only when nobody may watch it)."""
    data: dict[str, Any] = {
        "match_id": match.match_id,
        "game": match.game,
        "players": [ticket_to_json(t) for t in match.players],
        "formed_at": match.formed_at,
    }
    if not match.spectators:
        data["spectators"] = False
    return data


def match_from_json(data: Mapping[str, Any]) -> Match:
    """The match `match_to_json` gave (KeyError, TypeError or ValueError if it is not one)."""
    return Match(
        match_id=str(data["match_id"]),
        game=str(data["game"]),
        players=tuple(ticket_from_json(t) for t in data["players"]),
        formed_at=float(data["formed_at"]),
        spectators=data.get("spectators", True) is not False,
    )


# Why a match may not be watched (`watch_refusal`).
NO_SPECTATORS = "no_spectators"
"""Its private room's owner let nobody watch it: as if there were no such match."""
STILL_PLAYING = "still_playing"
"""A replay of a match that has not ended (or whose spectators' delay has not passed)."""
ALREADY_ENDED = "ended"
"""Watching live a match that has ended."""


def watch_refusal(
    spectators: bool, *, ended: bool, replay: bool, player: bool = False
) -> str | None:
    """The one rule of who may watch a match, live (`spectate`, `replay` False) or
    replayed from its record (`/replays/`, `replay` True): None if it may be watched,
    else why not (`NO_SPECTATORS`, `STILL_PLAYING`, `ALREADY_ENDED`).

    `spectators` is the match's own policy (`Match.spectators`, or its record's
    header); `ended`: whether the match is over, for a replay only once its
    spectators have had its end too (`--limit spectator-delay` after it). A match is
    either live or replayable, never both: a replay of a running match would show
    its play without the spectators' delay. `player`: the viewer is known to be
    one of the match's players (their player id, which is their account's where
    players sign in, is one of its seats'): their own match is always theirs to
    watch, a private room's that lets nobody else watch included. Only the lobby
    knows its viewers; `/replays/` has no sign-in and never claims one."""
    if not spectators and not player:
        return NO_SPECTATORS
    if replay and not ended:
        return STILL_PLAYING
    if not replay and ended:
        return ALREADY_ENDED
    return None


def new_match_id() -> str:
    """'m-' and 16 random hex digits."""
    return "m-" + secrets.token_hex(8)


@frozen
class MatchEnded:
    """A hosted match ended: `phase` "finished" with the game's `result`,
    or "aborted" with its `reason`. Its room lingers a little longer."""

    match_id: str
    phase: str
    result: Mapping[str, Any] | None
    reason: str | None
    # The players who had connected to the match (joined their seats), in seat order.
    joined: tuple[str, ...] = ()


def outcome_to_json(outcome: MatchEnded) -> dict[str, Any]:
    """How a match ended as a JSON object (on the pipe from game-host workers, and
    on the placement channel between lobbies and remote hosts)."""
    return {
        "match_id": outcome.match_id,
        "phase": outcome.phase,
        "result": None if outcome.result is None else dict(outcome.result),
        "reason": outcome.reason,
        "joined": list(outcome.joined),
    }


def outcome_from_json(data: Mapping[str, Any]) -> MatchEnded:
    """The outcome `outcome_to_json` gave (KeyError, TypeError or ValueError if it is
    not one); a missing `result`, `reason` or `joined` reads as none."""
    return MatchEnded(
        match_id=str(data["match_id"]),
        phase=str(data["phase"]),
        result=data.get("result"),
        reason=None if data.get("reason") is None else str(data["reason"]),
        joined=tuple(str(p) for p in data.get("joined", ())),
    )
