"""vinom's endpoint string parsers (vinom.server.endpoints): `vinom-ssl:`, Twisted's `ssl:`
with TLS session tickets, and `vinom-proxied:`, PROXY headers read from trusted proxies."""

from vinom.server.endpoints import ProxiedServerParser, TLSServerParser

vinom_ssl = TLSServerParser()
vinom_proxied = ProxiedServerParser()
