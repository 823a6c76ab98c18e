"""A quiet HTTP client: twisted.web's `Agent` without two log lines per request.

twisted.web's client makes a new protocol factory for each connection it opens,
and a factory logs "Starting factory ..." and "Stopping factory ..." unless it
is not `noisy`. A client that calls a server every few seconds (the gateway's
health checks, a game host's calls to the Agones SDK server) would fill its log
with them. `quiet_agent` is an `Agent` whose endpoints set `noisy = False` on the
factory of each connection before they connect: twisted.web's public endpoint
seam (`Agent.usingEndpointFactory`) and `Factory.noisy`, nothing of its private
classes. Given a TLS policy (`tls`, an `IPolicyForHTTPS`), it also speaks `https`:
the lobby fetches its identity provider's keys (JWKS) that way, trusting the
provider's CA.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Factory
from twisted.web.client import URI, Agent, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

__all__ = ["QuietEndpoints", "quiet_agent"]


@implementer(IStreamClientEndpoint)
@frozen
class _QuietEndpoint:
    """An endpoint whose connections' factories log nothing as they start and stop."""

    endpoint: IStreamClientEndpoint

    def connect(self, factory: IProtocolFactory) -> Any:
        if isinstance(factory, Factory):
            factory.noisy = False
        return self.endpoint.connect(factory)

    def __repr__(self) -> str:  # (twisted.web names a connection's factory after its endpoint)
        return repr(self.endpoint)


@implementer(IAgentEndpointFactory)
@frozen
class QuietEndpoints:
    """The endpoints of `quiet_agent`: TCP to the URI's host and port, for `http` URIs,
    and TLS over it for `https` ones when given a policy (`tls`)."""

    reactor: Any
    connect_timeout: float = 30.0  # (HostnameEndpoint's default)
    tls: IPolicyForHTTPS | None = None

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme != b"http" and (uri.scheme != b"https" or self.tls is None):
            raise SchemeNotSupported(f"unsupported scheme: {uri.scheme.decode(errors='replace')}")
        host = uri.host.decode("ascii")
        endpoint: IStreamClientEndpoint = HostnameEndpoint(
            self.reactor, host, uri.port, timeout=self.connect_timeout
        )
        if uri.scheme == b"https":
            assert self.tls is not None
            endpoint = wrapClientTLS(self.tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return _QuietEndpoint(endpoint)


def quiet_agent(
    reactor: Any, connect_timeout: float = 30.0, tls: IPolicyForHTTPS | None = None
) -> Agent:
    """An `Agent` for `http` URIs (and `https` ones with `tls`) that opens a new
    connection for each request (none is left open after its answer) and logs no
    line for it."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    endpoints = QuietEndpoints(reactor, connect_timeout, tls)
    return Agent.usingEndpointFactory(reactor, endpoints, pool=pool)
