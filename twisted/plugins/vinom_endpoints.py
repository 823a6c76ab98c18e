"""vinom's endpoint string parsers (vinom.server.endpoints): `vinom-ssl:`, Twisted's `ssl:`
with TLS session tickets, and `vinom-proxied:`, PROXY headers read from trusted proxies.

Each names its parser class, imported when a description of its kind is parsed (as
Twisted's `ServiceMaker` names its module): plugin discovery imports this file in every
process that looks for games, a game-host worker too, which listens on neither."""

from typing import Any

from twisted.internet.interfaces import IStreamServerEndpoint, IStreamServerEndpointStringParser
from twisted.plugin import IPlugin
from twisted.python.reflect import namedAny
from zope.interface import implementer


@implementer(IPlugin, IStreamServerEndpointStringParser)
class NamedParser:
    """The endpoint parser `parser` (a dotted name) for descriptions `prefix:...`."""

    def __init__(self, prefix: str, parser: str) -> None:
        self.prefix = prefix
        self.parser = parser

    def parseStreamServer(self, reactor: Any, *args: object, **kwargs: object
                          ) -> IStreamServerEndpoint:  # fmt: skip
        made: IStreamServerEndpoint = namedAny(self.parser)().parseStreamServer(
            reactor, *args, **kwargs
        )
        return made


vinom_ssl = NamedParser("vinom-ssl", "vinom.server.endpoints.TLSServerParser")
vinom_proxied = NamedParser("vinom-proxied", "vinom.server.endpoints.ProxiedServerParser")
