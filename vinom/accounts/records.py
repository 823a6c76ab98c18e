"""The account store's values beyond the seam's: ratings and their changes, a
ranked match's result as the store rates it, leaderboard and history rows, and
the store's errors.

Every value is frozen; each error has a `code`, a short word a caller (the
lobby, `vinom accounts`) can pass on as it is.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from attrs import frozen

from vinom.accounts.names import normalize_name

# A metadata bag is a JSON object of at most this many bytes (compact UTF-8 JSON).
MAX_METADATA_BYTES = 4096
# Identities: what a provider and a subject may be (a subject is an OIDC `sub`, a
# device id, a studio's user id: 255 characters is the OIDC limit).
MAX_PROVIDER_LENGTH = 32
MAX_SUBJECT_LENGTH = 255
# Ban reasons are shown to the banned player and to operators.
MAX_REASON_LENGTH = 200
# A new player's shown rating (Rating.shown): their conservative value is 0.
SHOWN_BASE = 1000.0


def new_account_id() -> str:
    """'a-' and 16 random hex digits: the form of a player id (vinom.identity), with
    a prefix of its own so that an account's player id is told from an anonymous one."""
    return "a-" + secrets.token_hex(8)


class AccountError(Exception):
    """A request the store refuses; `code` says why in one word."""

    code = "account_error"


class UnknownAccount(AccountError):
    code = "unknown_account"


class IdentityTaken(AccountError):
    """The identity is linked to another account."""

    code = "identity_taken"


class NotLinked(AccountError):
    """The identity is not linked to this account."""

    code = "not_linked"


class LastIdentity(AccountError):
    """Unlinking it would leave the account with no way to sign in."""

    code = "last_identity"


class InvalidValue(AccountError):
    """A name, identity, reason or metadata bag the store does not keep."""

    code = "invalid"


class SchemaTooNew(Exception):
    """The database was migrated by a newer vinom than this one."""


def checked_name(raw: str) -> str:
    """The display name as kept (vinom.accounts.names), or InvalidValue."""
    name = normalize_name(raw) if isinstance(raw, str) else None
    if name is None:
        raise InvalidValue(f"not a valid name: {raw!r}")
    return name


def checked_identity(provider: str, subject: str) -> tuple[str, str]:
    """A (provider, subject) the store links, or InvalidValue."""
    if not isinstance(provider, str) or not 1 <= len(provider) <= MAX_PROVIDER_LENGTH:
        raise InvalidValue(f"a provider is 1 to {MAX_PROVIDER_LENGTH} characters")
    if not isinstance(subject, str) or not 1 <= len(subject) <= MAX_SUBJECT_LENGTH:
        raise InvalidValue(f"a subject is 1 to {MAX_SUBJECT_LENGTH} characters")
    if not provider.isprintable() or not subject.isprintable():
        raise InvalidValue("a provider and a subject are printable text")
    return provider, subject


def checked_reason(reason: str) -> str:
    if not isinstance(reason, str) or not 1 <= len(reason.strip()) <= MAX_REASON_LENGTH:
        raise InvalidValue(f"a ban's reason is 1 to {MAX_REASON_LENGTH} characters")
    if not reason.isprintable():
        raise InvalidValue("a ban's reason is printable text")
    return reason.strip()


def encode_metadata(metadata: Mapping[str, Any]) -> str:
    """The metadata bag as the store keeps it (compact JSON), or InvalidValue when it is
    not a JSON object or longer than MAX_METADATA_BYTES."""
    if not isinstance(metadata, Mapping):
        raise InvalidValue("metadata is a JSON object")
    try:
        text = json.dumps(dict(metadata), separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, sort_keys=True)  # fmt: skip
    except (TypeError, ValueError) as e:
        raise InvalidValue(f"metadata is not JSON: {e}") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_METADATA_BYTES:
        raise InvalidValue(f"metadata is at most {MAX_METADATA_BYTES} bytes of JSON")
    return text


@frozen
class Rating:
    """A player's skill in one game's queue: openskill's `mu` and `sigma` (on vinom's
    scale, vinom.accounts.ratings) and the ranked matches it counts."""

    mu: float
    sigma: float
    matches: int = 0

    @property
    def conservative(self) -> float:
        """mu - 3 sigma: what leaderboards rank by (openskill's ordinal); a new player's
        is 0 and it grows as their matches make sigma smaller."""
        return self.mu - 3 * self.sigma

    @property
    def shown(self) -> float:
        """The rating players are shown (docs/accounts.md, "Ratings"): the conservative
        value plus SHOWN_BASE, and never below 0, so that a new player starts at a round
        positive number and a first loss does not read as a debt."""
        return max(0.0, SHOWN_BASE + self.conservative)


@frozen
class RatingChange:
    """One player's rating before and after one ranked match."""

    account_id: str
    before: Rating
    after: Rating

    @property
    def change(self) -> float:
        """How far the shown rating moved (what a player is told)."""
        return self.after.shown - self.before.shown


@frozen
class RankedResult:
    """A ranked match's result as the store rates it: the teams (account ids; a
    player on their own is a team of one) and each team's place (1 is first; equal
    places are a draw between those teams)."""

    match_id: str
    game: str
    queue: str
    teams: tuple[tuple[str, ...], ...]
    places: tuple[int, ...]

    def __attrs_post_init__(self) -> None:
        players = [p for team in self.teams for p in team]
        if len(self.teams) < 2 or len(self.places) != len(self.teams):
            raise InvalidValue("a ranked result has two teams or more, one place each")
        if not all(self.teams) or len(set(players)) != len(players):
            raise InvalidValue("every team has players and no player is in two")
        if any(not isinstance(p, int) or p < 1 for p in self.places):
            raise InvalidValue("places are whole numbers from 1")
        for text in (self.match_id, self.game, self.queue):
            if not isinstance(text, str) or not 1 <= len(text) <= 128:
                raise InvalidValue("a match id, game and queue are 1 to 128 characters")

    @property
    def players(self) -> tuple[str, ...]:
        return tuple(p for team in self.teams for p in team)

    def outcome_of(self, team: int) -> str:
        """'draw' when every team shares one place, 'win' for a first place, else 'loss'."""
        if len(set(self.places)) == 1:
            return "draw"
        return "win" if self.places[team] == min(self.places) else "loss"

    @classmethod
    def from_game_result(
        cls,
        match_id: str,
        game: str,
        queue: str,
        players: Sequence[str],
        result: Mapping[str, Any],
        teams: Sequence[Sequence[str]] | None = None,
    ) -> RankedResult:
        """The rated form of a game's `result` (docs/games.md) for `players`, grouped
        into `teams` (default: each player alone; a party playing as a side is a team).

        A result's `placements` ({player: place}) ranks the teams by their best
        player's place; otherwise a team with one of the `winners` is first and the
        others share second; no winners at all is a draw.
        """
        grouped = [tuple(team) for team in teams] if teams else [(p,) for p in players]
        placements = result.get("placements")
        winners = set(result.get("winners") or ())
        if isinstance(placements, Mapping) and placements:
            worst = max(int(v) for v in placements.values()) + 1
            places = [min(int(placements.get(p, worst)) for p in team) for team in grouped]
        elif winners:
            places = [1 if winners.intersection(team) else 2 for team in grouped]
        else:
            places = [1] * len(grouped)
        return cls(match_id, game, queue, tuple(grouped), tuple(places))


@frozen
class LeaderboardEntry:
    """One row of a leaderboard: `rank` counts from 1 by conservative value."""

    rank: int
    account_id: str
    display_name: str
    rating: Rating


@frozen
class Opponent:
    account_id: str
    display_name: str


@frozen
class HistoryEntry:
    """One ranked match of a player, newest first in a history: `match_id` opens its
    replay (docs/operations.md, Match records)."""

    match_id: str
    game: str
    queue: str
    ended: float
    outcome: str
    place: int
    opponents: tuple[Opponent, ...]
    change: RatingChange


@frozen
class Standing:
    """An account's rating in one game's queue, and how its rated matches there ended
    (what `vinom accounts show` prints)."""

    game: str
    queue: str
    rating: Rating
    wins: int
    losses: int
    draws: int
