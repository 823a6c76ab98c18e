"""The gateway's rule set in Redis, hot-reloaded (docs/gateway.md, "Rules in Redis").

Keys (under the deployment's key prefix, `vinom:` by default):

- `vinom:gateway:rules`: a string, the rule set's JSON (vinom.gateway.rules);
- `vinom:gateway:realms`: a hash, realm -> pool name; its fields are laid over
  the rule set's `realms` (so that a realm can be moved by one HSET);
- `vinom:gateway:reload`: a pub/sub channel; any message makes every gateway
  read both keys again at once.

Every gateway also reads them every `refresh` seconds, a safety net for a
message it missed while cut off from Redis. A rule set is offered to the
consumer (the gateway) only when it differs from the last one offered, so
that a bad rule set left in Redis is refused once, not at every refresh; a
rules key found empty is said once too (every connection is refused until a
rule set arrives).
`RedisGatewayRules` is the Redis `IRuleSource` (vinom.gateway.sources): it
passes the same test suite as the file and memory sources.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from vinom.cluster.client import RedisClient, RedisSubscription
from vinom.errors import BackendUnavailable
from vinom.gateway.sources import IRuleConsumer, IRuleSource

DEFAULT_REFRESH = 5.0


@implementer(IRuleSource)
class RedisGatewayRules(service.Service):
    """Reads the gateway's rule set from Redis while running (module docstring)."""

    log = Logger()

    def __init__(self, redis: RedisClient, consumer: IRuleConsumer, reactor: Any,
                 refresh: float = DEFAULT_REFRESH) -> None:  # fmt: skip
        self.redis = redis
        self.consumer = consumer
        self.reactor = reactor
        self.refresh = refresh
        self.rules_key = redis.key("gateway", "rules")
        self.realms_key = redis.key("gateway", "realms")
        self.channel = redis.key("gateway", "reload")
        self.origin = f"Redis {self.rules_key}"
        self._last: str | None = None
        self._unreachable = False
        # The rules key was found empty, and said so (`_no_rules`).
        self._missing = False
        self._loop: LoopingCall | None = None
        self._subscription = RedisSubscription(
            redis.endpoint(reactor), self.channel, lambda _message: self.read(), reactor,
            redis.settings.password, catch_up=self.read, username=redis.settings.username,
        )  # fmt: skip

    def startService(self) -> None:
        super().startService()
        self._subscription.start()
        self._loop = LoopingCall(self.read)
        self._loop.clock = self.reactor
        self._loop.start(self.refresh, now=False)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self._subscription.stop()

    def read(self) -> Deferred[None]:
        """Read both keys and offer the rule set if it changed; Redis down: one line, and
        the rule set in force stays."""
        return Deferred.fromCoroutine(self._read()).addErrback(self._failed)

    async def _read(self) -> None:
        handler = self.redis.handler
        text = await self.redis.bounded(handler.get(self.rules_key))
        realms = await self.redis.bounded(handler.hgetall(self.realms_key))
        if self._unreachable:
            self._unreachable = False
            self.log.info("gateway: Redis answers again")
        if not self.running:  # stopped while reading: nothing more offered
            return
        if text is None:
            self._no_rules()
            return
        self._missing = False
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if realms:
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            if isinstance(document, dict):
                laid = {**(document.get("realms") or {}), **_strings(realms)}
                text = json.dumps({**document, "realms": laid}, sort_keys=True)
        if text == self._last:
            return
        self._last = text
        self.consumer.offer(text, self.origin)

    def _no_rules(self) -> None:
        """The key holds no rule set: one line when it is found so (a gateway started
        before the rules were SET, or a key deleted), not at every refresh."""
        if self._missing:
            return
        self._missing = True
        if self._last is None:
            self.log.warn("gateway: no rule set in Redis at {key}: every connection is refused "
                          "(no_route) until one is SET there", key=self.rules_key)  # fmt: skip
        else:
            self.log.warn("gateway: no rule set in Redis at {key} any more; the one in force "
                          "stays", key=self.rules_key)  # fmt: skip

    def _failed(self, failure: Any) -> None:
        failure.trap(BackendUnavailable)
        if self._unreachable:  # said once, not at every refresh
            return
        self._unreachable = True
        self.log.warn("gateway: cannot read the rule set from Redis ({error}); the one in "
                      "force stays", error=failure.getErrorMessage())  # fmt: skip


def _strings(mapping: dict[Any, Any]) -> dict[str, str]:
    def text(value: Any) -> str:
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)

    return {text(k): text(v) for k, v in mapping.items()}
