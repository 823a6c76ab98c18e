"""The errors more than one layer raises or catches, defined once.

`BackendUnavailable`: the matchmaker, party store, player store, host registry
and placement channel each have an in-process implementation and one that
lives in Redis (vinom.cluster). Callers above them (rooms, the lobby) catch
`BackendUnavailable` without knowing which one they hold.

`UnknownGame`: a game name that names no game here, whether a game registry
was asked for it or a matchmaker got a ticket for it.

`LobbyError`: a lobby request answered with an `error` frame: the lobby raises
it to send one (vinom.lobby), the lobby client fails a request with it when one
comes (vinom.client.lobby). Its codes are in vinom.lobby.errors and docs/lobby.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class BackendUnavailable(Exception):
    """A shared backend did not answer in time, or the connection to it is down.

    The call it failed did nothing, unless the backend's documentation says
    otherwise (docs/scaling.md, "A call Redis runs late").
    """


class UnknownGame(KeyError, ValueError):
    """No game of that name is here: a game registry has none installed
    (`GameRegistry.get`, `offered`), or a matchmaker has no queue for a ticket's
    game (`IMatchmaker.enqueue`).

    A `KeyError` for a lookup by name and a `ValueError` for a ticket's bad field,
    so callers catching either still catch it. `known` is the names there are,
    when the one raising it knows them.
    """

    def __init__(self, name: str, known: Iterable[str] | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.known = None if known is None else tuple(known)

    def __str__(self) -> str:
        if self.known is None:
            return f"no game named {self.name!r}"
        known = ", ".join(self.known) or "none"
        return f"no game named {self.name!r} is installed (installed: {known})"


class LobbyError(Exception):
    """A lobby request failed with a stable `code` (an `error` frame's code and message).

    The lobby raises it, or fails a Deferred with it, to answer a request with an
    `error` frame; the lobby client fails a request's Deferred with it when the
    lobby answered with one.

    `counted` (lobby side only) overrides whether the error adds to the
    connection's protocol error count (by default: unless the code is in
    `vinom.lobby.errors.NOT_COUNTED`). A `queue` refused by a limit on the
    client's whole address is `rate_limited` but not counted: another player
    behind the same address may have caused it.

    `fields`: what the error frame carries besides its code and message (an
    `auth_failed`'s `reason`, a `banned`'s `reason` and `until`), on both sides.
    `final` (lobby side only): the connection closes after the error (`banned`).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        counted: bool | None = None,
        fields: Mapping[str, Any] | None = None,
        final: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.counted = counted
        self.fields: Mapping[str, Any] = fields or {}
        self.final = final
