"""Who a web connection comes from: Origin checks, forwarded addresses and peer hosts.

Shared by the two WebSocket servers (the lobby's `/lobby`, vinom.lobby.websocket,
and the game host's `/game`, vinom.hosting.websocket): `OriginPolicy` says
which web pages may open them (docs/web.md, "Origins"); `page_origins` the
origins of pages this server serves itself; `forwarded_client_address` the
address a connection counts as behind trusted reverse proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from attrs import frozen
from twisted.internet.interfaces import ITransport

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"https": 443, "http": 80}


def parse_origin(text: str) -> Origin:
    """An Origin header or option value as (scheme, host, port); ValueError if it is not one.

    Case and default ports do not matter: `HTTPS://Example.com` is
    `https://example.com:443`. An origin has no path, query or user.
    """
    parts = urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"an origin is http:// or https:// and a host, not {text!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"an origin is only a scheme, a host and a port, not {text!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in the origin {text!r}")
    port = parts.port  # raises ValueError for a port out of range
    return scheme, host.lower(), _DEFAULT_PORTS[scheme] if port is None else port


def page_origins(hosts: Iterable[str], port: int) -> tuple[str, ...]:
    """The origins of pages served over https by this server on `port`, under each host name."""
    origins = []
    for host in hosts:
        try:
            shown = f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
        except ValueError:
            shown = host
        origin = f"https://{shown}" if port == 443 else f"https://{shown}:{port}"
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def forwarded_client_address(
    peer_host: str, headers: Mapping[str, str], trusted_proxies: int
) -> str:
    """The address a WebSocket connection counts as: its peer's, or, behind
    `trusted_proxies` reverse proxies, the one the outermost of them saw (from
    X-Forwarded-For).

    Each proxy appends the address it received the request from, so the
    N-th address from the end is the one the first trusted proxy saw;
    those before it are the client's to invent. Without enough entries (a
    request that did not come through the proxies) the peer's own counts.
    """
    if not trusted_proxies:
        return peer_host
    forwarded = [a.strip() for a in headers.get("x-forwarded-for", "").split(",")]
    if len(forwarded) < trusted_proxies:
        return peer_host
    claimed = forwarded[-trusted_proxies]
    try:
        return str(ipaddress.ip_address(claimed))
    except ValueError:
        return peer_host


def peer_host_of(transport: ITransport) -> str:
    """The peer's host (an address) of a connection's transport, as a string."""
    peer = transport.getPeer()
    host = getattr(peer, "host", None)
    return host if isinstance(host, str) else str(peer)


@frozen
class OriginPolicy:
    """Which web pages may open the WebSocket lobby: `*` (any), or a list of origins."""

    origins: tuple[str, ...]

    @classmethod
    def from_list(cls, origins: Iterable[str]) -> OriginPolicy:
        """Checked origins (ValueError for one that is not an origin), or `*` for any."""
        kept = tuple(origin.strip() for origin in origins if origin.strip())
        for origin in kept:
            if origin != "*":
                parse_origin(origin)
        return cls(kept)

    def allows(self, origin: str) -> bool:
        """Whether a page of `origin` (the header's value) may connect."""
        if "*" in self.origins:
            return True
        try:
            wanted = parse_origin(origin)
        except ValueError:
            # Also "null": a sandboxed page, a file:// page, a redirect across origins.
            return False
        return any(parse_origin(allowed) == wanted for allowed in self.origins)
