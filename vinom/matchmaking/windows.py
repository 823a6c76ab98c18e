"""Rating windows: which ranked tickets may be in one match, and how groups are picked.

A ranked ticket's window is `base + growth * seconds_waited`, capped at `max`
when one is set. Two tickets may play together only if the difference of
their ratings is within both windows; a match needs that for every pair of
its players. A ticket without a rating fits any window. Groups form around
the oldest ticket first: it takes, in queue order, every ticket that fits
everyone taken so far (and the seats left: a party's ticket takes one seat
per member), until the match is full; then the next oldest ticket left over
does the same (`fill_groups`). In a game with teams seats are counted team
by team, a party always within one team, and the match's seats are then
ordered team by team (`seat_teams`). This is the one definition of the rule:
the Redis matchmaker (vinom/cluster/matchmaker.py) runs it too, in the lobby
leading the game, on the tickets it reads from Redis; docs/matchmaking.md has
examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

# RatingWindow is a game's record (games declare one); imported from here as well.
from vinom.games.rules import GameRules, RatingWindow
from vinom.match import RANKED_QUEUE
from vinom.matchmaking.interfaces import PartyTooLarge


class Waiting(Protocol):
    """What the rule reads of a waiting ticket (a `Ticket`, or the Redis matchmaker's
    view of one)."""

    @property
    def rating(self) -> float | None: ...

    @property
    def queued_at(self) -> float: ...

    @property
    def size(self) -> int: ...


W = TypeVar("W", bound=Waiting)


def fits(a: Waiting, b: Waiting, window: RatingWindow, now: float) -> bool:
    """May `a` and `b` be in one match at `now`? (Within both tickets' windows.)"""
    if a.rating is None or b.rating is None:
        return True
    difference = abs(a.rating - b.rating)
    return difference <= window.width(now - a.queued_at) and difference <= window.width(
        now - b.queued_at
    )


def largest_party(rules: GameRules, queue: str) -> int:
    """The most players one ticket of `queue` may hold in this game.

    A party is always seated within one team (all the match's seats without
    teams). A ranked match must never seat one party's members against each
    other, or a party could queue against itself and farm its rating: in a
    `ranked` queue a party may fill at most one team of a game with two or more
    teams, and nothing beyond its leader in a game without teams (every player
    is a side of their own).
    """
    team = rules.team_size
    if queue == RANKED_QUEUE:
        return team if team is not None and team < rules.match_size else 1
    return team if team is not None else rules.match_size


def party_too_large(size: int, game: str, queue: str, rules: GameRules) -> PartyTooLarge | None:
    """The error for a ticket of `size` players that `largest_party` refuses, or None."""
    largest = largest_party(rules, queue)
    if size <= largest:
        return None
    if largest == 1 and queue == RANKED_QUEUE:
        why = (f"{game}'s ranked queue takes no party: a ranked match never seats a "
               "party's members against each other")  # fmt: skip
    elif queue == RANKED_QUEUE or rules.team_size is not None:
        why = f"{game} has teams of {largest}"
    else:
        why = f"{game} seats {largest}"
    return PartyTooLarge(f"{size} players; {why}", largest)


def team_places(sizes: Sequence[int], team_size: int, teams: int) -> list[int] | None:
    """The team of each ticket (by its number of players), or None if they cannot be seated.

    `teams` teams of `team_size` seats; no ticket is split across teams. The
    answer is the first found by trying each ticket, in order, in the lowest
    team with room, backing up when a later ticket fits nowhere (teams with
    the same room left are tried once: they are alike).
    Both matchmakers seat a match this way.
    """
    room = [team_size] * teams
    places: list[int] = []

    def place(index: int) -> bool:
        if index == len(sizes):
            return True
        size = sizes[index]
        tried: set[int] = set()
        for team in range(teams):
            if room[team] >= size and room[team] not in tried:
                tried.add(room[team])
                room[team] -= size
                places.append(team)
                if place(index + 1):
                    return True
                room[team] += size
                places.pop()
        return False

    return places if place(0) else None


def seat_teams(group: Sequence[W], team_size: int, teams: int) -> tuple[W, ...]:
    """`group` in seat order: team by team, each team's tickets in queue order."""
    places = team_places([t.size for t in group], team_size, teams)
    if places is None:
        raise ValueError("the tickets cannot be seated in teams")
    placed = list(zip(places, group, strict=True))
    return tuple(t for team in range(teams) for p, t in placed if p == team)


def fill_groups(
    tickets: Sequence[W],
    seats: int,
    may_join: Callable[[Sequence[W], W], bool],
    team_size: int | None = None,
) -> list[tuple[W, ...]]:
    """The matches of `seats` seats to form from `tickets` (in queue order, oldest first).

    The oldest ticket not yet matched anchors a group. It takes, in queue
    order, each later ticket that fits in the seats left (a party takes one
    seat per member and is never split), that `may_join` the group, and
    after which the tickets behind it can still fill the seats left exactly;
    a ticket it does not take is passed over and keeps its place. So the
    match is the earliest tickets in queue order that fill every seat with
    the anchor (in a ranked queue, as far as seat counts go: ratings are
    checked as tickets are taken). A group that cannot fill its seats leaves
    its tickets to the groups of younger anchors. Both queues of both
    matchmakers follow this rule.

    With a `team_size` (which divides `seats`) the seats are teams, seats
    [0, team_size), [team_size, 2 * team_size), ..., and "fits" and "can
    still fill" mean: with no party split across two teams (`_fill_teams`).
    Each match then comes back in seat order (`seat_teams`).
    """
    if team_size is not None:
        return _fill_teams(tickets, seats // team_size, team_size, may_join)
    taken: set[int] = set()
    groups: list[tuple[W, ...]] = []
    every = (1 << (seats + 1)) - 1
    for anchor_index, anchor in enumerate(tickets):
        if anchor_index in taken or anchor.size > seats:
            continue
        free = [i for i in range(anchor_index + 1, len(tickets)) if i not in taken]
        # fillable[k]: bit n is set if some of the tickets free[k:] take n seats exactly.
        fillable = [1] * (len(free) + 1)
        for k in range(len(free) - 1, -1, -1):
            behind = fillable[k + 1]
            fillable[k] = behind | ((behind << tickets[free[k]].size) & every)
        left = seats - anchor.size
        if not fillable[0] >> left & 1:
            continue
        group = [anchor_index]
        for k, index in enumerate(free):
            if left == 0:
                break
            candidate = tickets[index]
            if (
                candidate.size <= left
                and fillable[k + 1] >> (left - candidate.size) & 1
                and may_join([tickets[member] for member in group], candidate)
            ):
                group.append(index)
                left -= candidate.size
        if left == 0:
            taken.update(group)
            groups.append(tuple(tickets[i] for i in group))
    return groups


# The seats left in each team, most first: the state of a group being filled.
Rooms = tuple[int, ...]


def _seated(rooms: Rooms, size: int) -> set[Rooms]:
    """The rooms after seating a ticket of `size` players in one team, each way it fits."""
    return {
        tuple(sorted((*rooms[:i], room - size, *rooms[i + 1 :]), reverse=True))
        for i, room in enumerate(rooms)
        if room >= size
    }


def _unseated(rooms: Rooms, size: int, team_size: int) -> set[Rooms]:
    """The rooms from which seating a ticket of `size` players can give `rooms`."""
    return {
        tuple(sorted((*rooms[:i], room + size, *rooms[i + 1 :]), reverse=True))
        for i, room in enumerate(rooms)
        if room + size <= team_size
    }


def _fill_teams(
    tickets: Sequence[W],
    teams: int,
    team_size: int,
    may_join: Callable[[Sequence[W], W], bool],
) -> list[tuple[W, ...]]:
    """`fill_groups` in teams: the same rule, with seats counted team by team.

    A group is the set of ways its tickets can be seated (as the rooms left
    per team); a ticket is taken if some way to seat it with the group leaves
    rooms that the tickets behind it can fill exactly, each in one team.
    """
    taken: set[int] = set()
    groups: list[tuple[W, ...]] = []
    full: Rooms = (team_size,) * teams
    done: Rooms = (0,) * teams
    for anchor_index, anchor in enumerate(tickets):
        if anchor_index in taken or anchor.size > team_size:
            continue
        free = [i for i in range(anchor_index + 1, len(tickets)) if i not in taken]
        # fillable[k]: the rooms that some of the tickets free[k:] fill exactly.
        fillable = [{done} for _ in range(len(free) + 1)]
        for k in range(len(free) - 1, -1, -1):
            size = tickets[free[k]].size
            fillable[k] = fillable[k + 1] | {
                rooms
                for behind in fillable[k + 1]
                for rooms in _unseated(behind, size, team_size)
            }
        ways = _seated(full, anchor.size) & fillable[0]
        if not ways:
            continue
        group = [anchor_index]
        for k, index in enumerate(free):
            if done in ways:
                break
            candidate = tickets[index]
            after = {
                rooms for way in ways for rooms in _seated(way, candidate.size)
            } & fillable[k + 1]
            if after and may_join([tickets[member] for member in group], candidate):
                group.append(index)
                ways = after
        if done in ways:
            taken.update(group)
            groups.append(seat_teams([tickets[i] for i in group], team_size, teams))
    return groups


def fifo_groups(
    tickets: Sequence[W], seats: int, team_size: int | None = None
) -> list[tuple[W, ...]]:
    """The matches of a `normal` queue: `fill_groups` with ratings ignored."""
    return fill_groups(tickets, seats, lambda group, candidate: True, team_size)


def ranked_groups(
    tickets: Sequence[W],
    size: int,
    window: RatingWindow,
    now: float,
    team_size: int | None = None,
) -> list[tuple[W, ...]]:
    """The matches to form from `tickets` (in queue order, oldest first) at `now`.

    A party's ticket is rated as one: by its `rating` (the lobby's choice of
    the party's rating is in docs/matchmaking.md).
    """
    return fill_groups(
        tickets,
        size,
        lambda group, candidate: all(fits(member, candidate, window, now) for member in group),
        team_size,
    )


DEFAULT_WINDOW = RatingWindow()
