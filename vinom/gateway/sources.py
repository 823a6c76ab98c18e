"""Where the gateway's rule set comes from: the `IRuleSource` seam and its local sources.

A rule source is a service that hands the rule set's JSON text to an
`IRuleConsumer` (the gateway: vinom.gateway.service.Gateway), when it starts
and whenever the rule set changes; the consumer checks it whole, puts a good
one in force and refuses a bad one (one log line, a count), keeping the one in
force. Sources that are not plain files nor memory live with their backend:
Redis's is vinom.cluster.gateway_rules.RedisGatewayRules. Every source passes
one test suite (tests/gateway/test_rule_sources.py).

- `FileRuleSource`: a JSON file (`--gateway-rules`), read at start and again
  at each `read()` (the server wiring calls it on SIGHUP);
- `MemoryRuleSource`: text held in memory, for tests and for embedding the
  gateway in a program that makes its rules itself; `put(text)` is a change.
"""

from __future__ import annotations

from pathlib import Path

from twisted.application import service
from twisted.application.service import IService
from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer


class IRuleConsumer(Interface):
    """What a rule source hands rule sets to (the gateway)."""

    def offer(text: str | bytes, origin: str) -> bool:
        """Check the rule set in `text` whole: put a good one in force (True), refuse a bad
        one with one log line naming `origin` and count it (False)."""

    def refuse(error: str, origin: str) -> None:
        """A rule set that could not even be read (an unreadable file): one log line, counted
        as refused; the rule set in force stays."""


class IRuleSource(IService):
    """A source of the gateway's rule set (module docstring). Started (`startService`), it
    offers the rule set it holds and then every change; stopped, it offers nothing more."""

    consumer = Attribute("The IRuleConsumer that rule sets are offered to.")
    origin = Attribute("Where the rules come from, as log lines name it (a path, a key).")

    def read() -> Deferred[None]:
        """Read the source now and offer its rule set (a file: at every call, as SIGHUP asks;
        a source that is told of changes: only when it differs from the last one offered)."""


@implementer(IRuleSource)
class FileRuleSource(service.Service):
    """The rule set in a JSON file (module docstring)."""

    log = Logger()

    def __init__(self, path: str, consumer: IRuleConsumer) -> None:
        self.path = path
        self.consumer = consumer
        self.origin = path

    def startService(self) -> None:
        super().startService()
        self.read()

    def read(self) -> Deferred[None]:
        if not self.running:
            return succeed(None)
        try:
            text = Path(self.path).read_bytes()
        except OSError as e:
            self.consumer.refuse(f"cannot read it: {e.strerror or e}", self.origin)
        else:
            self.consumer.offer(text, self.origin)
        return succeed(None)


@implementer(IRuleSource)
class MemoryRuleSource(service.Service):
    """A rule set held in memory (module docstring)."""

    def __init__(self, consumer: IRuleConsumer, text: str | None = None,
                 origin: str = "memory") -> None:  # fmt: skip
        self.consumer = consumer
        self.origin = origin
        self._text = text
        self._last: str | None = None

    def startService(self) -> None:
        super().startService()
        self.read()

    def put(self, text: str) -> None:
        """A new rule set: offered at once while running."""
        self._text = text
        self.read()

    def read(self) -> Deferred[None]:
        if self.running and self._text is not None and self._text != self._last:
            self._last = self._text
            self.consumer.offer(self._text, self.origin)
        return succeed(None)
