"""Backends found in DNS: each address of a name is one backend (docs/gateway.md, "Discovery").

A rule set's backend with `discover` (vinom.gateway.rules) names a DNS name and
port, e.g. a Kubernetes headless Service's, whose A records (IPv4) are the ready
pods' addresses (`lobby-pods.vinom.svc.cluster.local:7350`). `BackendDiscovery`
looks every such name up every `refresh` seconds (the smallest of the rule
set's) with Twisted's own resolver (`system_resolver`, as
`twisted.names.client.createResolver` makes it: /etc/hosts first, then the
servers of /etc/resolv.conf, answers cached for their TTL) and hands the
gateway what it found (`Gateway.discovered`): one backend per address, each
health-checked on its own, so that a pool's strategy (least connections,
consistent hash) and health are per pod, not per Service.

A name that does not exist (NXDOMAIN: a headless Service with no ready pod)
has no address: its backends go. A lookup that fails otherwise (a timeout, a
server error) keeps the addresses found last: a DNS hiccup does not empty a
pool. Each change of a name's addresses, and each failure after a success,
is one log line.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.names import dns
from twisted.names.error import DNSNameError, DomainError
from twisted.python.failure import Failure

from vinom.gateway.rules import Backend
from vinom.gateway.service import Gateway


def addresses_of(answers: list[Any]) -> tuple[str, ...]:
    """The IPv4 and IPv6 addresses among DNS answers, sorted, each once."""
    found = set()
    for answer in answers:
        if answer.type == dns.A:
            found.add(socket.inet_ntop(socket.AF_INET, answer.payload.address))
        elif answer.type == dns.AAAA:
            found.add(socket.inet_ntop(socket.AF_INET6, answer.payload.address))
    return tuple(sorted(found))


def system_resolver(reactor: Any, hosts: str = "/etc/hosts",
                    resolv_conf: str = "/etc/resolv.conf") -> Any:  # fmt: skip
    """What `twisted.names.client.createResolver` makes (the hosts file, a cache, the
    servers of resolv.conf), on the given reactor rather than the global one."""
    from twisted.names import cache, client
    from twisted.names import hosts as hosts_file
    from twisted.names.resolve import ResolverChain

    return ResolverChain([
        hosts_file.Resolver(hosts.encode()),
        cache.CacheResolver(reactor=reactor),
        client.Resolver(resolv=resolv_conf, reactor=reactor),
    ])  # fmt: skip


class BackendDiscovery(service.Service):
    """Looks the gateway's discovered backends up while running (module docstring)."""

    log = Logger()

    def __init__(self, gateway: Gateway, reactor: Any,
                 make_resolver: Callable[[], Any] | None = None) -> None:  # fmt: skip
        self.gateway = gateway
        self.reactor = reactor
        self._make_resolver = make_resolver
        self._resolver: Any = None
        self._loop: LoopingCall | None = None
        self._interval: float | None = None
        self._failing: set[str] = set()
        self._running: Deferred[Any] | None = None
        self.lookups = 0

    def discovering(self) -> dict[str, Backend]:
        return {name: b for name, b in self.gateway.rules.backends.items() if b.discover}

    def startService(self) -> None:
        super().startService()
        self.check_interval()

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._running is not None:
            self._running.cancel()

    def check_interval(self) -> None:
        """(Re)start the loop at the smallest `refresh` of the rule set's discovered backends,
        or stop it when there is none; called at start and when a rule set comes in force."""
        wanted = min((b.refresh for b in self.discovering().values()), default=None)
        if wanted == self._interval and (wanted is None or self._loop is not None):
            return
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop, self._interval = None, wanted
        if wanted is not None and self.running:
            self._loop = LoopingCall(self.look_up)
            self._loop.clock = self.reactor
            self._loop.start(wanted, now=True)

    def resolver(self) -> Any:
        if self._resolver is None:
            if self._make_resolver is not None:
                self._resolver = self._make_resolver()
            else:
                self._resolver = system_resolver(self.reactor)
        return self._resolver

    def look_up(self) -> Deferred[Any] | None:
        """Look every discovered name up once; the gateway is told what was found."""
        if self._running is not None:  # the last round is still out
            return None
        backends = self.discovering()
        if not backends:
            return None
        found = dict(self.gateway.found)
        lookups = []
        for name, backend in backends.items():
            d = self.resolver().lookupAddress(backend.host)
            d.addCallbacks(self._answered, self._failed, callbackArgs=(name, backend, found),
                           errbackArgs=(name, backend, found))  # fmt: skip
            lookups.append(d)
        running: Deferred[Any] = DeferredList(lookups, consumeErrors=True)
        self._running = running

        def done(_: object) -> None:
            self._running = None
            self.lookups += 1
            # Names no longer in the rule set are forgotten.
            self.gateway.discovered({n: a for n, a in found.items() if n in backends})

        return running.addBoth(done)

    def _answered(self, result: tuple[list[Any], list[Any], list[Any]], name: str,
                  backend: Backend, found: dict[str, tuple[str, ...]]) -> None:  # fmt: skip
        self._set(name, backend, addresses_of(result[0]), found)

    def _failed(self, failure: Failure, name: str, backend: Backend,
                found: dict[str, tuple[str, ...]]) -> None:  # fmt: skip
        if failure.check(DNSNameError, DomainError):
            self._set(name, backend, (), found)
            return
        if name not in self._failing:
            self._failing.add(name)
            self.log.warn("gateway: backend {name}: looking {host} up failed ({why}); its "
                          "{n} address(es) found last stay", name=name, host=backend.host,
                          why=failure.getErrorMessage() or repr(failure.value),
                          n=len(found.get(name, ())))  # fmt: skip

    def _set(self, name: str, backend: Backend, addresses: tuple[str, ...],
             found: dict[str, tuple[str, ...]]) -> None:  # fmt: skip
        self._failing.discard(name)
        if found.get(name) != addresses:
            self.log.info("gateway: backend {name}: {host} has {n} address(es): {addresses}",
                          name=name, host=backend.host, n=len(addresses),
                          addresses=", ".join(addresses) or "none")  # fmt: skip
        found[name] = addresses
