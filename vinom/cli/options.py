"""What every `vinom` command's options share: `CommandOptions` (vinom's `--version`,
options after the arguments), `SignInOptions` (`--auth` and its tokens or device key,
docs/client.md, "Signing in"), `ClientOptions` (`--lobby` and `--trust` too, for the
commands that talk to a lobby), `--queue`, and `CommandError`, a failure the command
line reports in one line. The commands themselves are in vinom.cli and its modules.
"""

from __future__ import annotations

import getopt
import os
import sys
from collections.abc import Sequence

from twisted.python import usage

from vinom import __version__
from vinom.client.errors import DEFAULT_TRUST
from vinom.client.lobby import (
    Auth,
    DeviceFileError,
    LobbyAddress,
    default_device_file,
    device_auth,
    device_key,
)
from vinom.match import NORMAL_QUEUE, QUEUES

DEFAULT_LOBBY = "localhost:7350"
DEFAULT_PORT = 7350
# `--auth`'s kinds that take no tokens (any other is the kind of the tokens given).
GUEST_KIND, DEVICE_KIND = "guest", "device"


class CommandError(Exception):
    """A failure worth one clear line to the user (and exit status 1), not a traceback."""


def parse_lobby(text: str) -> tuple[str, int]:
    """'HOST:PORT', 'HOST' (port 7350) or '[IPv6]:PORT' -> (host, port)."""
    text = text.strip()
    if not text:
        raise usage.UsageError("--lobby must be HOST:PORT, e.g. localhost:7350")
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise usage.UsageError(f"--lobby {text!r}: write an IPv6 address as [ADDRESS]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    elif ":" in text:
        raise usage.UsageError(f"--lobby {text!r}: write an IPv6 address as [ADDRESS]:PORT")
    else:
        host, port_text = text, ""
    if not host:
        raise usage.UsageError(f"--lobby {text!r} names no host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise usage.UsageError(f"--lobby {text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


class CommandOptions(usage.Options):
    """Every vinom (sub)command: `--version` is vinom's, options may follow arguments."""

    def opt_version(self) -> None:
        """Print the version and exit."""
        print(f"vinom {__version__}")
        sys.exit(0)

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        # Twisted's parser stops at the first argument ('play maze --lobby X' would
        # leave --lobby unparsed); move every option in front of the arguments first.
        argv = list(sys.argv[1:] if options is None else options)
        if not getattr(self, "subCommands", None):
            try:
                opts, args = getopt.gnu_getopt(argv, self.shortOpt, self.longOpt)
            except getopt.error as e:
                raise usage.UsageError(str(e)) from None
            argv = [part for opt, value in opts for part in self._option_parts(opt, value)]
            argv += ["--", *args]
        super().parseOptions(argv)

    def _option_parts(self, opt: str, value: str) -> list[str]:
        if opt.startswith("--"):
            return [f"{opt}={value}"] if f"{opt[2:]}=" in self.longOpt else [opt]
        return [opt, value] if f"{opt[1:]}:" in self.shortOpt else [opt]


def parse_lobbies(values: Sequence[str]) -> list[tuple[str, int]]:
    """Every --lobby given (each may list several, comma-separated) -> [(host, port)]."""
    addresses = []
    for value in values:
        parts = value.split(",")
        if len(parts) > 1 and not all(part.strip() for part in parts):
            raise usage.UsageError(f"--lobby {value!r}: an empty address between commas")
        addresses += [parse_lobby(part) for part in parts]
    return addresses


class SignInOptions(usage.Options):
    """How players sign in (docs/client.md, "Signing in"): the options of every client that
    says hello, here once. `check_sign_in()` (from postOptions) reads the token file and
    the device key; `credentials` gives each player's `auth`."""

    optParameters = [
        ["auth", None, GUEST_KIND, "How to sign in, as the server's --auth: guest, device "
         "(a key kept in --device-file), or the kind of the tokens given (jwt, signed, a "
         "plugin's)."],
        ["auth-token-file", None, None, "A file of tokens, one a line (instead of, or after, "
         "--auth-token)."],
        ["device-file", None, None, "--auth device: the file keeping your device key, made "
         "0600 on first use (default: $XDG_CONFIG_HOME or ~/.config, then vinom/device.json)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["auth-token"] = []

    def opt_auth_token(self, value: str) -> None:
        """A token to sign in with (repeatable: bots take one each, in order)."""
        self["auth-token"].append(value.strip())

    def check_sign_in(self) -> None:
        kind = self["auth"] = self["auth"].strip()
        tokens = self["auth-token"]
        if self["auth-token-file"] is not None:
            try:
                with open(self["auth-token-file"], encoding="utf-8") as f:
                    tokens += [line.strip() for line in f if line.strip()]
            except (OSError, UnicodeDecodeError) as e:
                reason = getattr(e, "strerror", None) or e
                raise usage.UsageError(f"--auth-token-file {self['auth-token-file']}: cannot "
                                       f"read it: {reason}") from None  # fmt: skip
        if kind in (GUEST_KIND, DEVICE_KIND) and tokens:
            raise usage.UsageError(f"tokens are for --auth jwt, signed or a plugin's kind, "
                                   f"not --auth {kind}")  # fmt: skip
        if kind not in (GUEST_KIND, DEVICE_KIND) and not tokens:
            raise usage.UsageError(f"--auth {kind} signs in with tokens: give "
                                   "--auth-token or --auth-token-file")  # fmt: skip
        if kind != DEVICE_KIND and self["device-file"] is not None:
            raise usage.UsageError("--device-file is for --auth device")
        self["device-key"] = None
        if kind == DEVICE_KIND:
            path = self["device-file"] = self["device-file"] or default_device_file()
            try:
                self["device-key"] = device_key(path)
            except DeviceFileError as e:
                raise usage.UsageError(f"--device-file {e}") from None

    def credentials(self, players: Sequence[str], host: str) -> list[Auth | None]:
        """The `auth` of each of `players` ("": the user; else a bot's or a spectator's
        own name) at the server `host`: None (a guest), the i-th token, or the device its
        name derives from the key (vinom.client.lobby.device_auth)."""
        kind = self["auth"]
        if kind == GUEST_KIND:
            return [None] * len(players)
        if kind == DEVICE_KIND:
            return [device_auth(self["device-key"], host, who) for who in players]
        tokens = self["auth-token"]
        if len(tokens) < len(players):
            raise usage.UsageError(f"--auth {kind}: {len(players)} bots need a token each, "
                                   f"not {len(tokens)}")  # fmt: skip
        return [{"kind": kind, "token": token} for token in tokens[: len(players)]]


class ClientOptions(CommandOptions, SignInOptions):
    """Options shared by the commands that talk to a lobby: where it is, and how to sign in
    (`signed_in` gives each player's `auth` at the first lobby)."""

    def __init__(self) -> None:
        super().__init__()
        self["lobby"] = []
        self["trust"] = []

    # Twisted's --help prints an option method's docstring as it is: one line each.
    def opt_lobby(self, value: str) -> None:
        self["lobby"].append(value)

    opt_lobby.__doc__ = (
        f"The lobby to connect to, HOST:PORT (default {DEFAULT_LOBBY}). Several, repeated "
        "or comma-separated: a bot moves to the next when its lobby is lost."
    )
    opt_l = opt_lobby

    def opt_trust(self, value: str) -> None:
        self["trust"].append(value)

    opt_trust.__doc__ = (
        f"Certificate (PEM) to trust for the lobby's TLS; default {DEFAULT_TRUST} when it "
        "exists, else the platform's certificate authorities. Once for every lobby, or "
        "once per lobby in their order."
    )
    opt_t = opt_trust

    def postOptions(self) -> None:
        lobbies = parse_lobbies(self["lobby"] or [DEFAULT_LOBBY])
        trusts: list[str | None] = list(self["trust"])
        for trust in trusts:
            if trust is not None and not os.path.isfile(trust):
                raise usage.UsageError(f"--trust {trust!r}: no such file")
        if not trusts:
            trusts = [DEFAULT_TRUST if os.path.isfile(DEFAULT_TRUST) else None]
        if len(trusts) == 1:
            trusts = trusts * len(lobbies)
        elif len(trusts) != len(lobbies):
            raise usage.UsageError(
                f"--trust given {len(trusts)} times for {len(lobbies)} lobbies: give it once "
                "for all of them, or once per lobby in their order"
            )
        self["addresses"] = tuple(
            LobbyAddress(host, port, trust) for (host, port), trust in zip(lobbies, trusts,
                                                                             strict=True)
        )  # fmt: skip
        self["address"] = self["addresses"][0]
        self.check_sign_in()

    def signed_in(self, players: Sequence[str]) -> list[Auth | None]:
        # Each player's devices are the first lobby's: failover keeps the account.
        return self.credentials(players, self["address"].host)


# `--queue` of the commands that queue (play, bots).
QUEUE_OPTION = ["queue", None, NORMAL_QUEUE, f"The queue: {' or '.join(QUEUES)} (rated, on a "
                "server with authentication)."]


def check_queue(options: usage.Options) -> None:
    """--queue (QUEUE_OPTION) is a queue of the lobby's."""
    if options["queue"] not in QUEUES:
        raise usage.UsageError(f"--queue must be {' or '.join(QUEUES)}, not {options['queue']!r}")
