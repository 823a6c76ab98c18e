"""Rating windows: which ranked tickets may be in one match, and how groups are picked.

A ranked ticket's window is `base + growth * seconds_waited`, capped at `max`
when one is set. Two tickets may play together only if the difference of
their ratings is within both windows; a match needs that for every pair of
its players. A ticket without a rating fits any window. Groups form around
the oldest ticket first: it takes, in queue order, every ticket that fits
everyone taken so far (and the seats left: a party's ticket takes one seat
per member), until the match is full; then the next oldest ticket left over
does the same (`fill_groups`). The Redis matchmaker's Lua script implements the same
rule (vinom/matchmaking/redis.py); docs/matchmaking.md has examples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from attrs import field, frozen

from vinom.matchmaking.interfaces import Ticket


def _not_negative(instance: object, attribute: object, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"a rating window's {getattr(attribute, 'name', '')} must not be negative")


@frozen
class RatingWindow:
    """How far apart two ratings may be: `base` points, `growth` more per second waited."""

    base: float = field(default=100.0, validator=_not_negative)
    growth: float = field(default=20.0, validator=_not_negative)
    max: float | None = field(default=None, validator=_not_negative)

    def width(self, waited: float) -> float:
        """The window after `waited` seconds in the queue."""
        width = self.base + self.growth * max(0.0, waited)
        return width if self.max is None else min(width, self.max)


def fits(a: Ticket, b: Ticket, window: RatingWindow, now: float) -> bool:
    """May `a` and `b` be in one match at `now`? (Within both tickets' windows.)"""
    if a.rating is None or b.rating is None:
        return True
    difference = abs(a.rating - b.rating)
    return difference <= window.width(now - a.queued_at) and difference <= window.width(
        now - b.queued_at
    )


def fill_groups(
    tickets: Sequence[Ticket], seats: int, may_join: Callable[[Sequence[Ticket], Ticket], bool]
) -> list[tuple[Ticket, ...]]:
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
    matchmakers follow this rule (matchmaker.lua for Redis).
    """
    taken: set[int] = set()
    groups: list[tuple[Ticket, ...]] = []
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


def fifo_groups(tickets: Sequence[Ticket], seats: int) -> list[tuple[Ticket, ...]]:
    """The matches of a `normal` queue: `fill_groups` with ratings ignored."""
    return fill_groups(tickets, seats, lambda group, candidate: True)


def ranked_groups(
    tickets: Sequence[Ticket], size: int, window: RatingWindow, now: float
) -> list[tuple[Ticket, ...]]:
    """The matches to form from `tickets` (in queue order, oldest first) at `now`.

    A party's ticket is rated as one: by its `rating` (the lobby's choice of
    the party's rating is in docs/matchmaking.md).
    """
    return fill_groups(
        tickets,
        size,
        lambda group, candidate: all(fits(member, candidate, window, now) for member in group),
    )


DEFAULT_WINDOW = RatingWindow()
