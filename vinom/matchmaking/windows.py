"""Rating windows: which ranked tickets may be in one match, and how groups are picked.

A ranked ticket's window is `base + growth * seconds_waited`, capped at `max`
when one is set. Two tickets may play together only if the difference of
their ratings is within both windows; a match needs that for every pair of
its players. A ticket without a rating fits any window. Groups form around
the oldest ticket first: it takes, in queue order, every ticket that fits
everyone taken so far, until the match is full; then the next oldest ticket
left over does the same. The Redis matchmaker's Lua script implements the same
rule (vinom/matchmaking/redis.py); docs/matchmaking.md has examples.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def ranked_groups(
    tickets: Sequence[Ticket], size: int, window: RatingWindow, now: float
) -> list[tuple[Ticket, ...]]:
    """The matches to form from `tickets` (in queue order, oldest first) at `now`."""
    taken: set[int] = set()
    groups: list[tuple[Ticket, ...]] = []
    for anchor_index in range(len(tickets)):
        if anchor_index in taken:
            continue
        group = [anchor_index]
        for index in range(anchor_index + 1, len(tickets)):
            if len(group) == size:
                break
            if index in taken:
                continue
            candidate = tickets[index]
            if all(fits(tickets[member], candidate, window, now) for member in group):
                group.append(index)
        if len(group) == size:
            taken.update(group)
            groups.append(tuple(tickets[i] for i in group))
    return groups


DEFAULT_WINDOW = RatingWindow()
