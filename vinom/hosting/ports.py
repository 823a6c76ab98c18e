"""The port allocator: a ring of UDP ports, one per running game.

`acquire()` hands out the port at the head of the ring at once, or, when
every port is taken, waits first come first served; `release(port)` gives
the port to the oldest waiter, or puts it at the tail of the ring. Putting
released ports last means a port rests as long as possible before reuse, so
stray datagrams of a finished game rarely reach the next one (when they do,
the next game's host drops them: vinom.hosting.inline, "Reuse"). The number of
ports in use can never exceed the pool.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from twisted.internet.defer import Deferred, succeed


class PortAllocator:
    """A bounded pool of ports with a FIFO wait list."""

    def __init__(self, ports: Iterable[int]) -> None:
        pool = list(ports)
        if not pool:
            raise ValueError("a port allocator needs at least one port")
        if len(set(pool)) != len(pool):
            raise ValueError("a port allocator's ports must be distinct")
        for port in pool:
            if not 1 <= port <= 65535:
                raise ValueError(f"{port} is not a valid port number")
        self._pool = frozenset(pool)
        self._free: deque[int] = deque(pool)
        self._in_use: set[int] = set()
        self._waiters: deque[Deferred[int]] = deque()
        self._observers: list[Callable[[], object]] = []

    @classmethod
    def from_range(cls, first: int, last: int) -> PortAllocator:
        """The ports first..last inclusive."""
        if first > last:
            raise ValueError(f"the port range {first}-{last} is inverted")
        return cls(range(first, last + 1))

    @property
    def size(self) -> int:
        """Ports in the pool."""
        return len(self._pool)

    @property
    def available(self) -> int:
        """Ports free right now."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        """Ports handed out and not yet released."""
        return len(self._in_use)

    @property
    def waiting(self) -> int:
        """Acquisitions waiting for a port."""
        return len(self._waiters)

    def __contains__(self, port: object) -> bool:
        return port in self._pool

    def add_observer(self, observer: Callable[[], object]) -> None:
        """Call `observer()` each time the ports in use change (a game's port taken or
        given back): a game host's Agones Counter follows them (vinom.fleet.agones)."""
        self._observers.append(observer)

    def _changed(self) -> None:
        for observer in self._observers:
            observer()

    def acquire(self) -> Deferred[int]:
        """A port: at once when one is free, otherwise after the earlier waiters.

        Cancelling the Deferred while it waits removes it from the wait list.
        """
        if self._free:
            port = self._free.popleft()
            self._in_use.add(port)
            self._changed()
            return succeed(port)

        def withdraw(d: Deferred[int]) -> None:
            self._waiters.remove(d)

        waiter: Deferred[int] = Deferred(withdraw)
        self._waiters.append(waiter)
        return waiter

    def release(self, port: int) -> None:
        """Give `port` back; raises ValueError if it is not from this pool or not in use."""
        if port not in self._pool:
            raise ValueError(f"port {port} is not in this allocator's pool")
        if port not in self._in_use:
            raise ValueError(f"port {port} is not in use (released twice?)")
        if self._waiters:
            # Hand over directly: the port stays in use, now by the oldest waiter.
            self._waiters.popleft().callback(port)
        else:
            self._in_use.remove(port)
            self._free.append(port)
            self._changed()
