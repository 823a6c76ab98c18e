"""`guest`: no proof at all, as vinom always was; for development and casual play.

Any name is welcome and every `hello` gets a fresh player id: the identity a
guest gets names nobody (a fresh subject each time) and the lobby keeps no
account for it. `twistd vinom` says at start that its players are anonymous.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from vinom.accounts.interfaces import AuthFailed, IAccountStore, IAuthenticator, Identity
from vinom.accounts.plugins import AuthSettings, check_kind
from vinom.identity import new_player_id

GUEST = "guest"


@implementer(IAuthenticator)
class GuestAuthenticator:
    """Takes `{"kind": "guest"}` (or no `auth` at all: the lobby's choice) and vouches
    for nobody: each sign-in is a new guest."""

    name = GUEST

    def authenticate(self, credentials: Mapping[str, Any], peer: str) -> Deferred[Identity]:
        try:
            check_kind(credentials, GUEST)
        except AuthFailed as e:
            return fail(e)
        return succeed(Identity(GUEST, new_player_id()))


def make_guest(
    settings: AuthSettings, reactor: Any, store: IAccountStore | None
) -> GuestAuthenticator:
    return GuestAuthenticator()
