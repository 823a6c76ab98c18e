"""Ratings the server computes: openskill's Plackett-Luce model on vinom's scale.

openskill's defaults (mu 25, sigma 25/3, beta 25/6, tau 25/300) are scaled by 60
so that a new player's mu is 1,500, the scale the ranked queue's rating windows
are written in (docs/matchmaking.md): a default window of 100 wide is a
fifth of a new player's sigma. Scaling every parameter alike changes no
outcome, only the numbers shown. Plackett-Luce rates any number of teams of
any size with places and ties, which covers duels, free-for-alls, draws and
parties playing as one side.
"""

from __future__ import annotations

from collections.abc import Mapping

from openskill.models import PlackettLuce

from vinom.accounts.records import RankedResult, Rating

# openskill's defaults times 60, written out (25 / 3 * 60 is not exactly 500 in floats).
MU = 1500.0  # 25
SIGMA = 500.0  # 25 / 3
BETA = 250.0  # 25 / 6
TAU = 5.0  # 25 / 300

MODEL = PlackettLuce(mu=MU, sigma=SIGMA, beta=BETA, tau=TAU)


def new_rating() -> Rating:
    """A player's rating before their first ranked match in a queue."""
    return Rating(MU, SIGMA, 0)


def rate(result: RankedResult, current: Mapping[str, Rating]) -> dict[str, Rating]:
    """Every player's rating after `result`, from `current` (a player missing from
    it has `new_rating()`)."""
    teams = [
        [MODEL.rating(mu=r.mu, sigma=r.sigma) for r in (current.get(p, new_rating()) for p in team)]
        for team in result.teams
    ]
    rated = MODEL.rate(teams, ranks=[float(place) for place in result.places])
    after: dict[str, Rating] = {}
    for team, new in zip(result.teams, rated, strict=True):
        for player, rating in zip(team, new, strict=True):
            before = current.get(player, new_rating())
            after[player] = Rating(float(rating.mu), float(rating.sigma), before.matches + 1)
    return after
