"""`twistd vinom --auth NAME` and its `--auth-*` options: who the players are.

The authenticator is a plugin (`vinom.accounts.plugins.IAuthenticatorPlugin`,
found in twisted/plugins/ as games are): `--auth` takes the name of one that
is installed, `auth_settings` gathers the options and lets the plugin refuse
them in one line before anything listens, and `authenticator_of` makes it for
the lobby. The default, `guest`, is anonymous play; `twistd vinom` says so at
start (vinom.server.roles.announce).
"""

from __future__ import annotations

from typing import Any

from twisted.python import usage

from vinom.accounts.interfaces import IAccountStore, IAuthenticator
from vinom.accounts.plugins import (
    NAME,
    AuthSettings,
    IAuthenticatorPlugin,
    authenticator_plugins,
)
from vinom.server.checks import (
    existing_file,
    limit,
    param,
    positive_float,
    positive_int,
)

DEFAULT_AUTH = "guest"


def auth_name(name: str, value: str) -> str:
    """`--auth`: the name of an installed authenticator plugin."""
    installed = authenticator_plugins()
    if value not in installed:
        raise usage.UsageError(
            f"--{name} must be one of {', '.join(sorted(installed))} (the authenticators "
            f"installed), not {value!r}"
        )
    return value


def auth_option(value: str) -> tuple[str, str]:
    """`--auth-option KEY=VALUE`."""
    key, sep, text = value.partition("=")
    if not sep or not NAME.match(key.strip()):
        raise usage.UsageError(f"--auth-option must look like key=value, not {value!r}")
    return key.strip(), text


AUTH_PARAMS = (
    param(
        "auth",
        None,
        DEFAULT_AUTH,
        "Who the players are (docs/operations.md, Authentication): 'guest' (anonymous: any "
        "name, a fresh player id each time), 'jwt' (a JWT from the studio's OpenID Connect "
        "provider), 'signed' (a short-lived token the studio's backend signs with a shared "
        "key), 'device' (a device id and secret the client keeps; the account is made on "
        "first use), or another installed authenticator plugin.",
        auth_name,
    ),
    param(
        "auth-jwks-url",
        None,
        None,
        "--auth jwt: the identity provider's JWKS URL (https://; its keys are cached and "
        "fetched again when a token names an unknown key).",
    ),
    param(
        "auth-jwks-ca",
        None,
        None,
        "--auth jwt: CA certificate(s) (PEM) to trust for --auth-jwks-url (default: the "
        "system's trusted roots).",
        existing_file,
    ),
    param(
        "auth-key-file",
        None,
        None,
        "--auth jwt: the provider's public keys in a file instead of --auth-jwks-url (a JWKS "
        "document or one PEM public key).",
        existing_file,
    ),
    param("auth-issuer", None, None, "--auth jwt: the tokens' issuer ('iss'), exactly."),
    param(
        "auth-audience",
        None,
        None,
        "--auth jwt: the tokens' audience ('aud') for this game, exactly; --auth signed: "
        "default 'vinom'.",
    ),
    param(
        "auth-secret-file",
        None,
        None,
        "--auth signed: the key shared with the studio's backend (at least 32 bytes; one "
        "line).",
        existing_file,
    ),
)

# The authenticator's limits and timings: `--limit NAME=VALUE` (vinom.server.options).
AUTH_LIMITS = (
    limit(
        "auth-timeout",
        5.0,
        "Seconds a sign-in may take (the provider's keys fetched, the account found); past "
        "it the player is told auth_failed, reason unavailable.",
        positive_float,
    ),
    limit(
        "auth-refresh-interval",
        5.0,
        "--auth jwt: seconds between two fetches of the JWKS on an unknown key id, at least.",
        positive_float,
    ),
    limit(
        "auth-failure-rate",
        0.2,
        "Refused sign-ins per second per identity and client address after a burst of "
        "auth-failure-burst (and ten times as many per address over every identity); "
        "past it sign-ins are refused (auth_failed, reason rate_limited) unchecked.",
        positive_float,
    ),
    limit(
        "auth-failure-burst",
        10,
        "Refused sign-ins per identity and client address before auth-failure-rate "
        "applies.",
        positive_int,
    ),
    limit(
        "new-accounts-per-hour",
        20,
        "New accounts one client address may make an hour; past it only players with "
        "an account sign in from it (auth_failed, reason account_limit).",
        positive_int,
    ),
)

# The options that mean nothing with --auth guest: given with it, a mistake.
_NOT_FOR_GUESTS = ("auth-jwks-url", "auth-jwks-ca", "auth-key-file", "auth-issuer",
                   "auth-audience", "auth-secret-file")  # fmt: skip


def auth_settings(options: usage.Options) -> tuple[IAuthenticatorPlugin, AuthSettings]:
    """The --auth plugin and its settings, once the plugin has checked them (one line
    of `UsageError` if it cannot work with them)."""
    plugin = authenticator_plugins()[options["auth"]]
    if options["auth"] == DEFAULT_AUTH:
        given = [name for name in _NOT_FOR_GUESTS if options[name] is not None]
        if given:
            raise usage.UsageError(
                f"--{given[0]} is for an authenticator (--auth jwt or signed); players are "
                "anonymous with --auth guest"
            )
    settings = AuthSettings(
        jwks_url=options["auth-jwks-url"],
        jwks_ca=options["auth-jwks-ca"],
        key_file=options["auth-key-file"],
        issuer=options["auth-issuer"],
        audience=options["auth-audience"],
        secret_file=options["auth-secret-file"],
        timeout=options["auth-timeout"],
        refresh_interval=options["auth-refresh-interval"],
        extra=dict(options["auth-option"]),
    )
    try:
        plugin.check(settings)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
    runs_lobby = options["role"] in ("all", "lobby")
    if getattr(plugin, "needs_store", False) and runs_lobby and options["database-url"] is None:
        # Only with --redis and no --database is there no account database.
        raise usage.UsageError(
            f"--auth {options['auth']} keeps its players' accounts in the account database: "
            "with --redis give --database postgresql://... (every lobby shares it)"
        )
    return plugin, settings


def authenticator_of(
    options: usage.Options, reactor: Any, accounts: IAccountStore | None
) -> IAuthenticator:
    """The lobby's authenticator, made by the --auth plugin."""
    plugin: IAuthenticatorPlugin = options["auth-plugin"]
    return plugin.make(options["auth-settings"], reactor, accounts)


def auth_line(options: usage.Options) -> str:
    """The start-up line that says who the players are."""
    plugin: IAuthenticatorPlugin = options["auth-plugin"]
    return str(plugin.summary)
