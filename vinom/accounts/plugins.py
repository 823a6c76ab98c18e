"""Authenticators as Twisted plugins: how `--auth NAME` finds the scheme and builds it.

An authenticator needs its settings (a key file, an issuer, a shared secret)
and sometimes the account store, so the plugin is a maker:
`IAuthenticatorPlugin` has the `name` operators choose (`--auth NAME`, the
`auth.kind` clients send), a `summary` for the start-up line, `check`, which
refuses unusable settings in one line before anything listens, and `make`,
which builds the `IAuthenticator`. `AuthenticatorPlugin` is the one class the
built-in plugins (twisted/plugins/vinom_auth.py) and a studio's own are made
of. `AuthSettings` holds every `--auth-*` option, a plugin's own ones in
`extra` (`--auth-option KEY=VALUE`).

The helpers at the bottom are what every authenticator checks the same way:
the `kind` of the credentials and a string field of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from attrs import field, frozen
from twisted.plugin import IPlugin, getPlugins
from twisted.python.failure import Failure
from twisted.python.reflect import namedAny
from zope.interface import Attribute, Interface, implementer

from vinom.accounts.interfaces import AuthFailed, IAccountStore, IAuthenticator
from vinom.accounts.tokens import LEEWAY

# `auth.kind` and `--auth NAME`: the same rule as a game's name.
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A credential string (a token, a secret) longer than this is refused as `too_large`
# before any work is done on it (the lobby bounds the whole `auth` object as well).
MAX_CREDENTIAL_LENGTH = 3072


@frozen
class AuthSettings:
    """The `--auth-*` options: each authenticator reads those it needs (`check` says
    which are missing) and ignores the rest."""

    jwks_url: str | None = None
    # CA certificate(s) (PEM) to trust for an https JWKS URL (None: the system's).
    jwks_ca: str | None = None
    key_file: str | None = None
    issuer: str | None = None
    audience: str | None = None
    secret_file: str | None = None
    # Seconds of clock difference allowed on `exp`, `nbf` and `iat`.
    leeway: float = LEEWAY
    # Seconds a key fetch may take (the lobby also bounds a whole sign-in by it).
    timeout: float = 5.0
    # Seconds between two fetches of the JWKS on an unknown `kid`, at least.
    refresh_interval: float = 5.0
    # A plugin's own options (`--auth-option KEY=VALUE`).
    extra: Mapping[str, str] = field(factory=dict)


class IAuthenticatorPlugin(Interface):
    """A Twisted plugin that makes an `IAuthenticator` (`--auth NAME`)."""

    name = Attribute("The word operators choose it by and clients send as `auth.kind`.")
    summary = Attribute("One line for the start-up announcement: who the players are.")
    needs_store = Attribute("Whether it needs the account store (device authentication).")

    def check(settings: AuthSettings) -> None:
        """Raise `ValueError` with one line for the operator if `settings` cannot work
        (a missing option, an unreadable key file); nothing listens yet."""

    def make(
        settings: AuthSettings, reactor: Any, store: IAccountStore | None
    ) -> IAuthenticator:
        """The authenticator, its timers and fetches on `reactor`."""


def _no_check(settings: AuthSettings) -> None:
    return None


@implementer(IPlugin, IAuthenticatorPlugin)
@frozen
class AuthenticatorPlugin:
    """An authenticator plugin: its name, its line, how to check and to make it.

    `factory` and `checker` are callables or, as Twisted's `ServiceMaker` names its
    module, their dotted names ("vinom.accounts.oidc.make_jwt"), imported on first use:
    plugin discovery imports every plugin file in every process that looks for games
    (a game-host worker too), which then imports no authenticator's own modules."""

    name: str
    summary: str
    factory: Callable[[AuthSettings, Any, IAccountStore | None], IAuthenticator] | str
    checker: Callable[[AuthSettings], None] | str = _no_check
    needs_store: bool = False

    def check(self, settings: AuthSettings) -> None:
        checker = namedAny(self.checker) if isinstance(self.checker, str) else self.checker
        checker(settings)

    def make(
        self, settings: AuthSettings, reactor: Any, store: IAccountStore | None
    ) -> IAuthenticator:
        factory = namedAny(self.factory) if isinstance(self.factory, str) else self.factory
        made: IAuthenticator = factory(settings, reactor, store)
        return made


def authenticator_plugins(package: Any = None) -> dict[str, IAuthenticatorPlugin]:
    """The authenticator plugins installed, by name (the first of a name wins)."""
    if package is None:
        import twisted.plugins as package
    found: dict[str, IAuthenticatorPlugin] = {}
    for plugin in getPlugins(IAuthenticatorPlugin, package):
        name = getattr(plugin, "name", None)
        if isinstance(name, str) and NAME.match(name):
            found.setdefault(name, plugin)
    return found


def check_kind(credentials: Mapping[str, Any], kind: str) -> None:
    """Raise `AuthFailed` unless the credentials are of `kind`."""
    given = credentials.get("kind")
    if given != kind:
        raise AuthFailed("wrong_kind", f"this server takes auth of kind {kind!r}")


def credential(credentials: Mapping[str, Any], key: str) -> str:
    """The string field `key` of the credentials: `malformed` if it is absent or not a
    non-empty string, `too_large` past `MAX_CREDENTIAL_LENGTH`."""
    value = credentials.get(key)
    if not isinstance(value, str) or not value:
        raise AuthFailed("malformed", f"auth needs a {key!r}: a non-empty string")
    if len(value) > MAX_CREDENTIAL_LENGTH:
        raise AuthFailed("too_large", f"auth's {key!r} is longer than {MAX_CREDENTIAL_LENGTH}")
    return value


def as_auth_failure(failure: Failure) -> Failure:
    """An errback for authenticators: anything but `AuthFailed` (a bug, a library's
    surprise) becomes `AuthFailed("invalid")`, so that `authenticate` fails with
    nothing else."""
    if failure.check(AuthFailed):
        return failure
    error = failure.value
    return Failure(AuthFailed("invalid", f"{type(error).__name__}: {failure.getErrorMessage()}"))
