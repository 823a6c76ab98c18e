"""The game hosting service: gives each match a port and a game host, and takes them back.

For a match it acquires a port from the `PortAllocator` (waiting, first come
first served, when all are taken), starts an `IGameHost` on it through an
`IGameHostFactory`, adds the match, and when the host reports idle it parks
the host with its factory (an `IParkingHostFactory`: the next match on that
port reuses it, still listening; vinom.hosting.inline, "Reuse") or else stops
it, and releases the port, which wakes the oldest waiting match. Stopping
the service stops the hosts running and parked.
"""

from __future__ import annotations

from collections.abc import Callable

from attrs import evolve, frozen
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from vinom.errors import BackendUnavailable
from vinom.hosting.interfaces import (
    HostingStopped,
    IGameHost,
    IGameHostFactory,
    IMatchHosting,
    IParkingHostFactory,
)
from vinom.hosting.ports import PortAllocator
from vinom.match import Match, MatchEnded
from vinom.protocol.address import HostAddress
from vinom.store.interfaces import IPlayerStore, MatchPlacement

WaitingCallback = Callable[[int], object]
# Called with how the match ended (None if its host could not say: it failed).
EndedCallback = Callable[[MatchEnded | None], object]


@frozen
class _Running:
    host: IGameHost
    port: int
    on_ended: EndedCallback | None


@implementer(IMatchHosting)
class GameHostingService(Service):
    """Runs each match on a game host on a port from the allocator (one match a port)."""

    log = Logger()

    def __init__(
        self,
        allocator: PortAllocator,
        host_factory: IGameHostFactory,
        *,
        game_url: str | None = None,
        store: IPlayerStore | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        """`store` (with `clock`, the placements' time): where each match's placement is
        saved as it is hosted and removed as it ends, for `reconnect` (the lobby's
        player store, with the lobby in this process; None on a game host of a
        cluster, whose agent records them on Redis)."""
        if store is not None and clock is None:
            raise ValueError("a store of placements needs a clock")
        self._store, self._clock = store, clock
        self.allocator = allocator
        self.host_factory = host_factory
        # Where the hosts of ended matches wait for the next match on their port
        # (None: the factory's hosts serve one match each, and are stopped).
        self._parking: IParkingHostFactory | None = IParkingHostFactory(host_factory, None)
        # The public URL of this process's `/game` WebSocket, put into the address of
        # every match hosted here (None: browsers cannot play here, or it is unknown).
        self.game_url = game_url
        self._running: dict[str, _Running] = {}
        self._waiting: set[Deferred[int]] = set()
        # The `host_match` Deferred of each match waiting for a port (`withdraw`).
        self._withdrawable: dict[str, Deferred[HostAddress]] = {}
        self._stopping = False
        # Matches from host_match until their port is back (or they failed), and
        # who waits for there to be none (a drain).
        self._matches: set[str] = set()
        self._all_ended: list[Deferred[None]] = []
        #: Called with each match's outcome as it ends, before its room is gone and its
        #: port back (a cluster's host agent marks its placement ended on Redis).
        self.on_match_over: Callable[[MatchEnded], object] | None = None

    @property
    def running_games(self) -> int:
        """Matches with a game host right now."""
        return len(self._running)

    @property
    def free_ports(self) -> int:
        """Game ports free now."""
        return self.allocator.available

    @property
    def matches(self) -> int:
        """Matches placed or waiting for a port whose port is not back yet."""
        return len(self._matches)

    def when_all_ended(self) -> Deferred[None]:
        """Fires once no match is running or waiting for a port (at once if none is)."""
        if not self._matches:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._all_ended.append(d)
        return d

    def confirm_running(self, match_id: str) -> Deferred[bool]:
        # Its hosts are this process's (or its workers', whose deaths end their
        # matches at once): a match still placed has a live host.
        return succeed(True)

    def remove_player(self, match_id: str, player_id: str) -> Deferred[bool]:
        host = self.host_of(match_id)
        if host is None:
            return succeed(False)
        return host.remove_player(match_id, player_id)

    def _match_gone(self, match_id: str) -> None:
        self._matches.discard(match_id)
        if not self._matches and self._all_ended:
            waiters, self._all_ended = self._all_ended, []
            for waiter in waiters:
                waiter.callback(None)

    def host_of(self, match_id: str) -> IGameHost | None:
        """The game host running `match_id`, if any."""
        running = self._running.get(match_id)
        return None if running is None else running.host

    def host_match(
        self,
        match: Match,
        on_waiting: WaitingCallback | None = None,
        on_ended: EndedCallback | None = None,
    ) -> Deferred[HostAddress]:
        """Host `match`; fires with the address its players connect to.

        `on_waiting(position)` is called if no port is free, with the 1-based
        position among the matches waiting for one. `on_ended(outcome)` is called
        once the match's host has stopped and its port is back in the pool.
        Cancelling the Deferred while it waits for a port withdraws the match.
        """
        if self._stopping:
            return fail(HostingStopped("the game hosting service is stopping"))
        acquired = self.allocator.acquire()
        self._matches.add(match.match_id)
        hosted = Deferred.fromCoroutine(self._host(match, acquired, on_ended))
        if not acquired.called:
            self._waiting.add(acquired)

            def forget(result: object) -> object:
                self._waiting.discard(acquired)
                self._withdrawable.pop(match.match_id, None)
                return result

            acquired.addBoth(forget)
            # (Before `on_waiting`, which may withdraw it at once: nobody is left.)
            self._withdrawable[match.match_id] = hosted
            if on_waiting is not None:
                try:
                    on_waiting(self.allocator.waiting)
                except Exception:
                    self.log.failure(
                        "on_waiting callback failed for {match_id}", match_id=match.match_id
                    )

        def failed(failure: Failure) -> Failure:
            self._match_gone(match.match_id)
            return failure

        return hosted.addErrback(failed)

    def withdraw(self, match_id: str) -> Deferred[bool]:
        """A player of a match waiting for a port has left (this process's lobby holds
        them all): it is withdrawn, its Deferred failing with CancelledError. A match
        with a port already (its host starting) goes on."""
        hosted = self._withdrawable.pop(match_id, None)
        if hosted is None:
            return succeed(False)
        hosted.cancel()
        return succeed(True)

    async def _host(
        self, match: Match, acquired: Deferred[int], on_ended: EndedCallback | None
    ) -> HostAddress:
        port = await acquired
        host, port = await self._start_host(match, port)
        try:
            if self._stopping:
                raise HostingStopped("the game hosting service is stopping")
            await host.add_match(match)
        except BaseException:
            await self._stop_quietly(host, match.match_id)
            self.allocator.release(port)
            raise
        self._running[match.match_id] = _Running(host, port, on_ended)
        host.on_match_ended = self._over
        self.log.info(
            "match {match_id} ({game}) hosted on port {port}",
            match_id=match.match_id,
            game=match.game,
            port=port,
        )
        host.when_idle().addBoth(self._idle, match.match_id)
        address = host.address if self.game_url is None else evolve(host.address,
                                                                     game_url=self.game_url)
        if self._store is not None and self._clock is not None:
            # A failure (a bug) is no reason to fail a match its game host runs: only the
            # players' `reconnect` to it is lost.
            placement = MatchPlacement(match, address, self._clock.seconds())
            maybeDeferred(self._store.save_placement, placement).addErrback(
                self._store_failed, "saving", match.match_id)
        return address

    def _over(self, outcome: MatchEnded) -> None:
        """A match ended (its room lingers): its placement says so (`spectate` answers
        `match_ended`), before the port is back."""
        match_id = outcome.match_id
        if match_id not in self._running:
            return
        if self._store is not None:
            maybeDeferred(self._store.placement_ended, match_id).addErrback(
                self._store_failed, "ending", match_id)
        if self.on_match_over is not None:
            try:
                self.on_match_over(outcome)
            except Exception:
                self.log.failure("on_match_over failed for {match_id}", match_id=match_id)

    def _store_failed(self, failure: Failure, doing: str, match_id: str) -> None:
        if failure.check(BackendUnavailable):
            self.log.warn("{doing} the placement of {match_id} failed: {error}", doing=doing,
                          match_id=match_id, error=failure.value)  # fmt: skip
        else:
            self.log.failure("{doing} the placement of {match_id} failed", failure,
                             doing=doing, match_id=match_id)  # fmt: skip

    async def _start_host(self, match: Match, port: int) -> tuple[IGameHost, int]:
        """A game host on `port` and its port, else on the next free port of the range while
        another process holds the one tried (another service on a port of the
        range: one line each, not a failed match), until every free port was
        tried; then the last CannotListenError (the match fails: its players are
        told, rather than queued again at once into the same failure)."""
        tried: set[int] = set()
        while True:
            try:
                return await self.host_factory.start_host(port), port
            except CannotListenError as e:
                self.allocator.release(port)
                tried.add(port)
                # The free ports go round in order (a released one goes last): the
                # first tried one again means every free one was tried.
                if self.allocator.available:
                    port = await self.allocator.acquire()
                    if port not in tried:
                        self.log.warn(
                            "UDP port {port} of the game port range is in use by another "
                            "process; match {match_id} takes another",
                            port=e.port, match_id=match.match_id,
                        )  # fmt: skip
                        continue
                    self.allocator.release(port)
                raise
            except BaseException:
                self.allocator.release(port)
                raise

    def _idle(self, result: object, match_id: str) -> Deferred[None] | None:
        if isinstance(result, Failure):
            self.log.failure("game host of {match_id} failed", result, match_id=match_id)
            return self._retire(match_id, park=False)
        return self._retire(match_id)

    def _retire(self, match_id: str, park: bool = True) -> Deferred[None] | None:
        running = self._running.pop(match_id, None)
        if running is None:
            # Retired already (by stopService); when_idle may still fire afterwards.
            return None
        host = running.host
        if park and not self._stopping and self._parking is not None:
            # Read before the host is parked: parking forgets it, and the port, once
            # released, may take the next match at once.
            outcome = host.outcome(match_id)
            if self._parking.park(host):
                self._released(match_id, running, outcome)
                return None
        d = self._stop_quietly(host, match_id)
        d.addCallback(lambda _: self._released(match_id, running, host.outcome(match_id)))
        return d

    def _released(self, match_id: str, running: _Running, outcome: MatchEnded | None) -> None:
        if self._store is not None:
            maybeDeferred(self._store.remove_placement, match_id).addErrback(
                self._store_failed, "removing", match_id)
        self.allocator.release(running.port)
        self.log.info(
            "match {match_id} ended; port {port} released", match_id=match_id, port=running.port
        )
        if running.on_ended is not None:
            try:
                running.on_ended(outcome)
            except Exception:
                self.log.failure("on_ended callback failed for {match_id}", match_id=match_id)
        self._match_gone(match_id)

    def _stop_quietly(self, host: IGameHost, match_id: str) -> Deferred[None]:
        d: Deferred[None] = maybeDeferred(host.stop)

        def logged(failure: Failure) -> None:
            self.log.failure(
                "stopping the game host of {match_id} failed", failure, match_id=match_id
            )

        d.addErrback(logged)
        return d

    def stopService(self) -> Deferred[object]:
        """Withdraw waiting matches and stop every game host, running or parked,
        releasing its port."""
        super().stopService()
        self._stopping = True
        for waiter in list(self._waiting):
            waiter.cancel()
        stopping = [d for d in map(self._retire, list(self._running)) if d is not None]
        if self._parking is not None:
            stopping.append(self._parking.stop_parked())
        return DeferredList(stopping).addCallback(lambda _: None)

    def startService(self) -> None:
        super().startService()
        self._stopping = False
