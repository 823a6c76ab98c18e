"""The AMP commands between the lobby process and its game-host worker processes.

A worker (vinom.hosting.workers.main) is a child process started with
`reactor.spawnProcess`; the two talk `twisted.protocols.amp` over the child's
pipes 3 (lobby to worker) and 4 (worker to lobby), so the worker's stdout and
stderr stay free for its log. The lobby sends `Configure` first (the token key
travels here, never on a command line or in the environment), then `StartHost`,
`AddMatch` and `StopHost` for each match it places on the worker (`RemovePlayer`
for a player banned meanwhile), and a
`Heartbeat` every second, whose answer carries the worker's load and counters.
The worker tells the lobby `ReportMatchEnded` as each match ends and
`ReportHostIdle` when a host's last room is gone (the events `MatchEnded` and
`HostIdle` of its core, reported).

Players on WebSocket (docs/web.md) play on a worker's hosts through the lobby
process, which holds their sockets: `OpenStream` opens a stream session with
the player's token, `StreamMessages` carries what players sent and
`CloseStream` says a socket went; the worker answers with `StreamOutput`,
what a host owes its stream sessions. Messages travel in batches (everything
gathered in one turn of the reactor, per host, in one command) because a
command costs far more than the bytes it carries.

Values that are JSON (the match, results, counters) travel as one `Unicode`
argument each: they are small, and AMP's 64 KiB value limit is far above them.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack
from twisted.protocols import amp

# The pipes of the AMP connection, as the child sees them.
WORKER_READS_FD = 3
WORKER_WRITES_FD = 4


class JSON(amp.Unicode):
    """An AMP argument holding any JSON value."""

    def toString(self, inObject: Any) -> bytes:  # noqa: N803 - AMP's argument name
        return super().toString(json.dumps(inObject, separators=(",", ":"), sort_keys=True))

    def fromString(self, inString: bytes) -> Any:  # noqa: N803 - AMP's argument name
        return json.loads(super().fromString(inString))


class MessageBatch(amp.Argument):
    """An AMP argument holding a list of tuples of ints and bytes (stream messages),
    msgpack-encoded and spread over as many values as it needs: one AMP value holds
    at most 64 KiB, a batch (or a reliable room message) may be larger."""

    def toBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:
        value = self.retrieve(objects, name.decode("ascii"), proto)
        data = msgpack.packb([list(item) for item in value], use_bin_type=True)
        size = amp.MAX_VALUE_LENGTH
        strings[name] = data[:size]
        for n, start in enumerate(range(size, len(data), size), 1):
            strings[name + b"." + str(n).encode("ascii")] = data[start:start + size]

    def fromBox(self, name: bytes, strings: Any, objects: Any, proto: Any) -> None:
        parts = [strings.pop(name)]
        n = 1
        while (part := strings.pop(name + b"." + str(n).encode("ascii"), None)) is not None:
            parts.append(part)
            n += 1
        items = msgpack.unpackb(b"".join(parts), raw=False, use_list=True)
        objects[name.decode("ascii")] = [tuple(item) for item in items]


class HostFailed(Exception):
    """The worker could not start a host or add a match (the message says why)."""


class Configure(amp.Command):
    """Lobby to worker, first: what every host of this worker needs."""

    arguments = [
        (b"token_key", amp.String()),
        (b"application_id", amp.Integer()),
        (b"public_host", amp.Unicode()),
        (b"interface", amp.Unicode()),
        (b"games", amp.ListOf(amp.Unicode())),
        (b"room_config", JSON()),
        (b"one_shot", amp.Boolean()),
    ]
    response = [(b"pid", amp.Integer())]
    errors = {HostFailed: b"HOST_FAILED"}


class StartHost(amp.Command):
    """Lobby to worker: listen on this UDP port."""

    arguments = [(b"port", amp.Integer())]
    errors = {HostFailed: b"HOST_FAILED"}


class AddMatch(amp.Command):
    """Lobby to worker: admit the match's players on the host at `port` and create its room."""

    arguments = [(b"port", amp.Integer()), (b"match", JSON())]
    errors = {HostFailed: b"HOST_FAILED"}


class StopHost(amp.Command):
    """Lobby to worker: stop the host at `port` (aborting what runs there with `shutdown`)."""

    arguments = [(b"port", amp.Integer())]


class RemovePlayer(amp.Command):
    """Lobby to worker: take a player out of a match on the host at `port` as their
    `leave` would (a ban); `removed` False if they hold no seat there any more."""

    arguments = [(b"port", amp.Integer()), (b"match_id", amp.Unicode()),
                 (b"player_id", amp.Unicode())]  # fmt: skip
    response = [(b"removed", amp.Boolean())]


class Heartbeat(amp.Command):
    """Lobby to worker, every second: are you there, and how loaded are you?

    `counters`: the totals of every host the worker ran (datagrams, handshakes,
    drops by reason); `round_trip_times`: the smoothed RTT of each session now.
    """

    arguments = []
    response = [
        (b"hosts", amp.Integer()),
        (b"sessions", amp.Integer()),
        (b"cpu_seconds", amp.Float()),
        (b"counters", JSON()),
        (b"round_trip_times", amp.ListOf(amp.Float())),
    ]


class ReportMatchEnded(amp.Command):
    """Worker to lobby: a match ended (its room lingers a moment longer); the outcome
    is a `vinom.match.MatchEnded` in its JSON form."""

    # The name on the pipe, as before the command was named apart from the event.
    commandName = b"MatchEnded"
    arguments = [(b"port", amp.Integer()), (b"outcome", JSON())]
    requiresAnswer = False


class ReportHostIdle(amp.Command):
    """Worker to lobby: the host at `port` has no room left (its core's `HostIdle`)."""

    commandName = b"HostIdle"
    arguments = [(b"port", amp.Integer())]
    requiresAnswer = False


class OpenStream(amp.Command):
    """Lobby to worker: open a stream session on the host at `port` with a connect
    token (the `request` packet's bytes). `refused` is "" when it opened, else why not."""

    arguments = [(b"port", amp.Integer()), (b"token", amp.String())]
    response = [
        (b"session_id", amp.Integer()),
        (b"player_id", amp.Unicode()),
        (b"match_id", amp.Unicode()),
        (b"refused", amp.Unicode()),
    ]
    errors = {HostFailed: b"HOST_FAILED"}


class StreamMessages(amp.Command):
    """Lobby to worker: messages from stream peers of the host at `port`, in order:
    a list of (session id, message)."""

    arguments = [(b"port", amp.Integer()), (b"messages", MessageBatch())]
    requiresAnswer = False


class CloseStream(amp.Command):
    """Lobby to worker: the socket of a stream session went (its seat enters its grace)."""

    arguments = [(b"port", amp.Integer()), (b"session_id", amp.Integer())]
    requiresAnswer = False


class StreamOutput(amp.Command):
    """Worker to lobby: what the host at `port` owes its stream sessions, (session id,
    channel, message) in order, then the sessions it closed (after their messages)."""

    arguments = [
        (b"port", amp.Integer()),
        (b"messages", MessageBatch()),
        (b"closed", amp.ListOf(amp.Integer())),
    ]
    requiresAnswer = False
