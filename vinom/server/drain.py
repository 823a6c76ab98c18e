"""Graceful drain: on SIGTERM the server takes no new players and lets running matches end.

`Drain.run` is what the server's root service does before its children (the
game hosting service, the lobby and its listener) stop; twistd stops it on
SIGTERM or SIGINT. It drains: the lobby refuses `queue` with `server_draining`, tells its
queued players so and closes their connections, and keeps serving `ping`,
`cancel` and `reconnect` (the listener stays open, so a player whose
session dropped can still come back for their running match). Running
matches, and formed matches waiting for a port, play to their end for up to
`timeout` seconds. Then the services stop as before: the listener closes and
the matches still running are aborted with reason `shutdown`, their players
told.

In a game-host process (`twistd vinom host`) there is no lobby: the drain has the
host announce no free capacity at once (`HostAgent.drain`; it stays in the
host registry, heartbeating, so that its running matches are not taken for a
dead host's), so lobbies place nothing more on it, and waits for its matches. A lobby whose matches
run on game hosts elsewhere (`twistd vinom lobby`) waits for its players' matches
(`PlayersMatches`: those with a player it held or queued when the match
formed, their ends heard on the placements channel), so that a player whose
session drops can still `reconnect` through it.

With a shared store (Redis) the drain ends by closing every player's
connection (`LobbyFactory.close_players`), so that their tickets, parties
and records are withdrawn while the Redis pool is open; the pool closes
after the other services, once those calls are answered
(vinom.cluster.services).

A second SIGTERM (or a SIGINT) during the drain ends the wait at once.
`install_signal_handlers` (for `twistd`, once the reactor runs) puts the
drain's own SIGTERM and SIGINT handlers in place of the reactor's, so that a
signal starts the drain and the process exits 0 when it is done (twistd
would otherwise end itself with the signal it received).
"""

from __future__ import annotations

import signal
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from vinom.hosting.interfaces import IMatchHosting
from vinom.lobby.server import LobbyFactory


class Drainable(Protocol):
    """What else a drain tells to take no new work (a game host's `HostAgent`)."""

    def drain(self) -> None: ...


class Matches(Protocol):
    """The matches a drain waits for (an `IMatchHosting` has both)."""

    @property
    def matches(self) -> int: ...

    def when_all_ended(self) -> Deferred[None]: ...


class PlayersMatches:
    """The matches of a lobby's players, where they run on game hosts elsewhere."""

    def __init__(self, lobby: LobbyFactory) -> None:
        self.lobby = lobby

    @property
    def matches(self) -> int:
        return self.lobby.players_matches

    def when_all_ended(self) -> Deferred[None]:
        return self.lobby.when_players_matches_end()


class Drain:
    """Drains the lobby and the game hosts (module docstring)."""

    log = Logger()

    def __init__(
        self,
        lobby: LobbyFactory | None,
        hosting: IMatchHosting | Matches | None,
        reactor: Any,
        timeout: float,
        *,
        host: Drainable | None = None,
        close_players: bool = False,
    ) -> None:
        """`lobby`: None in a game-host process; `hosting`: the matches to wait for
        (`PlayersMatches` in a lobby whose matches run on game hosts elsewhere);
        `host`: a game-host process's agent, which announces no free capacity as the
        drain begins; `close_players`: close the lobby's player connections as the
        drain ends (with a shared store, whose records they hold)."""
        self.lobby = lobby
        self.hosting = hosting
        self.host = host
        self.close_players = close_players
        self._draining = False
        self.timeout = timeout
        self._reactor = reactor
        self._waiting: Deferred[None] | None = None
        self._deadline: IDelayedCall | None = None

    @property
    def draining(self) -> bool:
        """Whether the drain has begun (the lobby takes no new players)."""
        return self._draining or (self.lobby is not None and self.lobby.draining)

    def skip_wait(self) -> None:
        """End the drain's wait now: matches still running are aborted (`shutdown`)."""
        if self._waiting is not None:
            self.log.info("drain: the wait is cut short")
        self._finish()

    def run(self) -> Deferred[None]:
        """Drain; fires when every match has ended, the timeout passed, or the wait was cut
        (and then, with `close_players`, once the players' connections are closed)."""
        self._draining = True
        if self.lobby is not None:
            self.lobby.drain()
        if self.host is not None:
            self.host.drain()
        waited = self._wait()
        lobby = self.lobby
        if lobby is not None and self.close_players:
            waited.addCallback(lambda _: lobby.close_players())
        return waited

    def _wait(self) -> Deferred[None]:
        if self.hosting is None:
            return succeed(None)
        matches = self.hosting.matches
        if not matches:
            return succeed(None)
        self.log.info(
            "drain: waiting up to {timeout:g} s for {matches} match(es) to end",
            timeout=self.timeout,
            matches=matches,
        )
        waiting: Deferred[None] = Deferred()
        self._waiting = waiting
        self.hosting.when_all_ended().addCallback(lambda _: self._ended())
        self._deadline = self._reactor.callLater(self.timeout, self._timed_out)
        return waiting

    def _ended(self) -> None:
        self.log.info("drain: every match has ended")
        self._finish()

    def _timed_out(self) -> None:
        self._deadline = None
        if isinstance(self.hosting, PlayersMatches):
            self.log.info(
                "drain: {matches} match(es) of this lobby's players still running after "
                "{timeout:g} s play on on their game hosts",
                matches=self.hosting.matches,
                timeout=self.timeout,
            )
            self._finish()
            return
        self.log.info(
            "drain: {matches} match(es) still running after {timeout:g} s are aborted",
            matches=0 if self.hosting is None else self.hosting.matches,
            timeout=self.timeout,
        )
        self._finish()

    def _finish(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.called:
            waiting.callback(None)

    # -- signals ------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT start the drain (a second one cuts it short); call it once the
        reactor runs, after the reactor installed its own."""
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._signalled)

    def _signalled(self, number: int, frame: object) -> None:
        # A Python signal handler runs between two bytecodes of the reactor thread:
        # hand the work to the reactor.
        self._reactor.callFromThread(self._on_signal, number)

    def _on_signal(self, number: int) -> None:
        if self.draining:
            self.skip_wait()
            return
        self.log.info(
            "signal {name}: draining, then stopping (send it again to stop at once)",
            name=signal.Signals(number).name,
        )
        self._reactor.stop()

