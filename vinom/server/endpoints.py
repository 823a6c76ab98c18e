"""Listener descriptions: vinom's two endpoint parser plugins, and the one place where
the options' short forms become strports descriptions.

Every TCP listener of vinom (`--lobby`, `--websocket`, `--gateway`, `--ops-port`,
`twistd vinom relay --ops-port`) listens on `serverFromString(reactor,
description)` (vinom.server.startup.Listener), so each takes any description
Twisted can parse: `tcp:`, `ssl:`, `unix:`, `systemd:`, `haproxy:` and those of
installed plugins. Two are vinom's, Twisted parser plugins
(twisted/plugins/vinom_endpoints.py) on the model of Twisted's own `haproxy:`:

- `vinom-ssl:PORT[:interface=ADDR][:backlog=N]:privateKey=KEY[:certKey=CERT]
  [:extraCertChain=CHAIN][:dhParameters=DH][:sslmethod=METHOD]`: the fields of
  Twisted's `ssl:` on the standard library's TLS, with TLS session tickets and a
  server's ALPN answer (vinom.server.tls);
- `vinom-proxied:trusted=NET[,NET...]:DESCRIPTION`: the endpoint of DESCRIPTION,
  reading a PROXY protocol header first on the connections from the trusted
  addresses or CIDR networks (vinom.server.proxied). Over `vinom-ssl:` the header
  comes before TLS, as a gateway sends it (an `ssl:` DESCRIPTION is read as
  `vinom-ssl:`, the same fields, for that). Twisted's `haproxy:` does not fit
  there: it wants a header on every connection, reads it inside TLS, and starts
  the server's protocol before it is read.

The short forms (`description_of`, when the options are read; docs/operations.md):
a bare port is `vinom-ssl:PORT` for `--lobby` and `--websocket`, `tcp:PORT` for
`--gateway`, `tcp:PORT:interface=127.0.0.1` for `--ops-port`; `ssl:` on `--lobby`
and `--websocket` is read as `vinom-ssl:` (the same fields); `none` turns off
`--websocket` and `--ops-port`. What only the running server knows is added by
`listening_description`: the certificate of a `vinom-ssl:` that names none,
a listen backlog of `DEFAULT_BACKLOG` for the listeners players reach, and
`--trusted-proxy` as a `vinom-proxied:` around the lobby's and the web server's.
"""

from __future__ import annotations

from collections.abc import Collection
from ipaddress import ip_network
from typing import Any

from attrs import frozen
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.interfaces import IStreamServerEndpoint, IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

from vinom.server.proxied import Network, ProxiedEndpoint
from vinom.server.tls import TLSServerEndpoint, tls_server_endpoint

TLS_KIND = "vinom-ssl"
PROXIED_KIND = "vinom-proxied"
# The kinds that wrap a description, and the named fields that are their own.
WRAPPERS = {PROXIED_KIND: ("trusted",), "haproxy": ()}

# Twisted's listen backlog is 50: when hundreds of players connect at once the
# kernel drops SYNs and they retry a second later. Linux caps it at somaxconn.
DEFAULT_BACKLOG = 1024


@frozen
class ListenerOption:
    """What an option's short forms mean (module docstring)."""

    bare: str  # a bare port N is bare.format(N)
    can_be_none: bool  # 'none': no listener
    tls: bool  # ssl: read as vinom-ssl:, and the server's certificate filled in
    players: bool  # reached by players: a listen backlog of DEFAULT_BACKLOG
    proxied: bool  # behind --trusted-proxy's gateways


LISTENER_OPTIONS = {
    "lobby": ListenerOption(f"{TLS_KIND}:{{}}", can_be_none=False, tls=True, players=True,
                            proxied=True),
    "websocket": ListenerOption(f"{TLS_KIND}:{{}}", can_be_none=True, tls=True, players=True,
                                proxied=True),
    "gateway": ListenerOption("tcp:{}", can_be_none=False, tls=False, players=True,
                              proxied=False),
    "ops-port": ListenerOption("tcp:{}:interface=127.0.0.1", can_be_none=True, tls=False,
                               players=False, proxied=False),
}  # fmt: skip


def description_of(option: str, value: str) -> str | None:
    """The description option `option` (a key of LISTENER_OPTIONS) listens on for the
    text `value` (None for 'none'), checked by building its endpoint without listening;
    a UsageError says in one line what is wrong."""
    kind = LISTENER_OPTIONS[option]
    text = value.strip()
    forms = ("a port, a strports description or 'none'" if kind.can_be_none
             else "a port or a strports description")  # fmt: skip
    if kind.can_be_none and text.lower() == "none":
        return None
    if not text:
        raise usage.UsageError(f"--{option} must be {forms}")
    description = kind.bare.format(text) if text.isdigit() else text
    head, colon, rest = description.partition(":")
    if kind.tls and head.lower() == "ssl":
        description = f"{TLS_KIND}{colon}{rest}"
    try:
        check_description(description)
    except ValueError as e:
        raise usage.UsageError(f"--{option} must be {forms}, not {value!r}: {e}") from None
    return description


def check_description(description: str) -> None:
    """Builds the endpoint of `description` on a reactor that listens nowhere; a
    ValueError says why it cannot be built."""
    from twisted.internet.testing import MemoryReactor

    try:
        serverFromString(MemoryReactor(), description)
    except ValueError:
        raise
    except Exception as e:  # a parser's own word (TypeError for a field it lacks, ...)
        raise ValueError(str(e) or type(e).__name__) from None
    # Twisted's tcp: takes any number and fails only when it listens.
    port = endpoint_port(description)
    if port is not None and port > 65535:
        raise ValueError(f"the port must be from 0 to 65535, not {port}")


def listening_description(
    option: str,
    description: str,
    certificate: tuple[str, str] | None = None,
    trusted: Collection[Network] | None = None,
) -> str:
    """The description the server listens on for option `option`'s `description`
    (module docstring): `certificate` (its certificate and key files) filled in
    where it names none, the players' backlog, and `trusted` as `vinom-proxied:`."""
    kind = LISTENER_OPTIONS[option]
    positional, named = listening_fields(description)
    inner = positional[0].lower()
    if kind.tls and certificate is not None and inner in (TLS_KIND, "ssl") and (
        "privateKey" not in named
    ):
        cert, key = certificate
        description += f":privateKey={quoteStringArgument(key)}"
        description += f":certKey={quoteStringArgument(cert)}"
    if kind.players and inner in ("tcp", "tcp6", "ssl", TLS_KIND) and "backlog" not in named:
        description += f":backlog={DEFAULT_BACKLOG}"
    if kind.proxied and trusted:
        networks = ",".join(sorted(str(network) for network in trusted))
        description = f"{PROXIED_KIND}:trusted={quoteStringArgument(networks)}:{description}"
    return description


def strports_fields(description: str) -> tuple[list[str], dict[str, str]]:
    """The positional and named fields of a strports description, kind first, read
    by Twisted's quoting rules: ':' separates fields, the first '=' of a field names
    it, and a backslash makes the next character plain (`interface=\\:\\:1` is ::1)."""
    positional: list[str] = []
    named: dict[str, str] = {}
    current: list[str] = []
    name: str | None = None
    chars = iter(description)
    for char in chars:
        if char == "\\":
            current.append(next(chars, ""))
        elif char == ":":
            _add_field(positional, named, name, "".join(current))
            current, name = [], None
        elif char == "=" and name is None:
            name, current = "".join(current), []
        else:
            current.append(char)
    _add_field(positional, named, name, "".join(current))
    return positional, named


def _add_field(positional: list[str], named: dict[str, str], name: str | None, value: str) -> None:
    if name is None:
        positional.append(value)
    else:
        named[name] = value


def listening_fields(description: str) -> tuple[list[str], dict[str, str]]:
    """The fields of the description that listens, inside any wrappers (`WRAPPERS`):
    a wrapper passes its positional fields and the named ones not its own on."""
    positional, named = strports_fields(description)
    while len(positional) > 1 and positional[0].lower() in WRAPPERS:
        own = WRAPPERS[positional[0].lower()]
        positional = positional[1:]
        named = {name: value for name, value in named.items() if name not in own}
    return positional, named


def listen_interface(description: str) -> str | None:
    """The address a tcp/ssl description binds ('' for every interface), or None for
    other kinds (unix sockets and the like, which stay on this machine)."""
    positional, named = listening_fields(description)
    if positional[0].lower() not in ("tcp", "tcp6", "ssl", TLS_KIND):
        return None
    return named.get("interface", "")


def endpoint_port(description: str) -> int | None:
    """The port a tcp/ssl description listens on (None if it names none, e.g. unix:)."""
    positional, named = listening_fields(description)
    if positional[0].lower() not in ("tcp", "tcp6", "ssl", TLS_KIND):
        return None
    port = named.get("port", positional[1] if len(positional) > 1 else "")
    return int(port) if port.isdigit() else None


def is_tls(description: str) -> bool:
    """Whether a description listens with TLS (`vinom-ssl:` or `ssl:`)."""
    return listening_fields(description)[0][0].lower() in (TLS_KIND, "ssl")


def _unparse(positional: tuple[str, ...], named: dict[str, str]) -> str:
    """A description of these fields (a wrapper's inner one, as Twisted's `haproxy:`
    makes it: the named fields after the positional ones)."""
    # A positional field's '=' escaped too, or it would read as a named one.
    fields = [quoteStringArgument(field).replace("=", "\\=") for field in positional]
    fields += [f"{quoteStringArgument(k)}={quoteStringArgument(v)}" for k, v in named.items()]
    return ":".join(fields)


def _strings(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> tuple[tuple[str, ...], dict[str, str]]:
    # A parser is handed the description's fields, strings all (typed `object`).
    return tuple(map(str, args)), {name: str(value) for name, value in kwargs.items()}


@implementer(IPlugin, IStreamServerEndpointStringParser)
class TLSServerParser:
    """`vinom-ssl:` (module docstring; vinom.server.tls)."""

    prefix = TLS_KIND

    def parseStreamServer(self, reactor: Any, *args: object, **kwargs: object) -> TLSServerEndpoint:
        return tls_server_endpoint(reactor, *_strings(args, kwargs))


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ProxiedServerParser:
    """`vinom-proxied:` (module docstring; vinom.server.proxied)."""

    prefix = PROXIED_KIND

    def parseStreamServer(
        self, reactor: Any, *fields: object, **named_fields: object
    ) -> IStreamServerEndpoint:
        args, kwargs = _strings(fields, named_fields)
        trusted = kwargs.pop("trusted", "")
        if not trusted.strip():
            raise ValueError(f"{PROXIED_KIND} needs trusted=ADDR[,ADDR...] (addresses or "
                             "CIDR networks of the proxies)")  # fmt: skip
        try:
            networks = tuple(ip_network(part.strip()) for part in trusted.split(","))
        except ValueError as e:
            raise ValueError(f"{PROXIED_KIND}'s trusted: {e}") from None
        if not args:
            raise ValueError(f"{PROXIED_KIND} needs the description it wraps "
                             f"({PROXIED_KIND}:trusted=10.0.0.5:tcp:7350)")  # fmt: skip
        if args[0].lower() == "ssl":  # read as vinom-ssl: Twisted's would put TLS first
            args = (TLS_KIND, *args[1:])
        inner = serverFromString(reactor, _unparse(args, kwargs))
        if isinstance(inner, TLSServerEndpoint):
            # The header first, then TLS: the TLS endpoint over the header's reading.
            return inner.over(ProxiedEndpoint(inner.plain, networks))
        return ProxiedEndpoint(inner, networks)
