"""Tests for `LobbyConnection`, the per-connection state machine, without a transport.

A recording `ILobbyWire` and a scripted `ILobbyServer` stand on either side
of the machine: the tests feed it bytes and timer expiries and look at what
it asks of the wire (frames, closes, aborts, flow control, timeouts) and of
the server (admission, requests, departure).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from vinom.errors import LobbyError
from vinom.lobby import errors
from vinom.lobby.codec import FrameError
from vinom.lobby.config import LobbyConfig
from vinom.lobby.connection import (
    ILobbyServer,
    ILobbyWire,
    LobbyConnection,
    PlayerState,
)
from vinom.lobby.request_types import GAME_PROTOCOL, Hello, Ping, Request


@implementer(ILobbyWire)
class RecordingWire:
    """Everything the connection asked of its transport."""

    def __init__(self) -> None:
        self.data = b""
        self.closed = False
        self.aborted = False
        self.paused = False
        self.timeouts: list[float | None] = []

    def write(self, data: bytes) -> None:
        assert not self.closed and not self.aborted
        self.data += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def set_timeout(self, seconds: float | None) -> None:
        self.timeouts.append(seconds)

    @property
    def timeout(self) -> float | None:
        return self.timeouts[-1] if self.timeouts else None

    def frames(self) -> list[dict[str, Any]]:
        frames = [json.loads(line) for line in self.data.splitlines()]
        self.data = b""
        return frames


@implementer(ILobbyServer)
class ScriptedServer:
    """Serves by script: `ping` with a pong; `hello` by the name it gives (slow, taken,
    broken: a request that waits, fails with a `LobbyError`, raises; else welcome)."""

    def __init__(self, refusal: str | None = None) -> None:
        self.refusal = refusal
        self.served: list[Request] = []
        self.waiting: list[Deferred[None]] = []
        self.left: list[LobbyConnection] = []
        self.gone: list[LobbyConnection] = []

    def admit(self, connection: LobbyConnection) -> str | None:
        return self.refusal

    def serve(self, connection: LobbyConnection, request: Request) -> Deferred[None] | None:
        self.served.append(request)
        if isinstance(request, Ping):
            connection.reply(request, {"type": "pong"})
            return None
        if isinstance(request, Hello) and request.name == "slow":
            d: Deferred[None] = Deferred()
            self.waiting.append(d)
            return d
        if isinstance(request, Hello) and request.name == "taken":
            return fail(LobbyError(errors.RATE_LIMITED, "not now", counted=False))
        if isinstance(request, Hello) and request.name == "broken":
            raise RuntimeError("store on fire")
        connection.welcomed("p-1", request.name, request.protocol)
        connection.reply(request, {"type": "welcome"})
        return None

    def player_gone(self, connection: LobbyConnection) -> None:
        self.gone.append(connection)

    def connection_lost(self, connection: LobbyConnection) -> None:
        self.left.append(connection)


CONFIG = LobbyConfig(max_protocol_errors=3, max_frame_bytes=64)


class ConnectionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.wire = RecordingWire()
        self.server = ScriptedServer()
        self.connection = self.make(self.server)

    def make(self, server: ScriptedServer) -> LobbyConnection:
        return LobbyConnection(
            self.wire, server, CONFIG, self.clock, peer_host="192.0.2.1", client="192.0.2.1"
        )

    def test_the_doubles_provide_the_interfaces(self) -> None:
        self.assertTrue(verifyObject(ILobbyWire, self.wire))
        self.assertTrue(verifyObject(ILobbyServer, self.server))

    def test_admitted_then_lost(self) -> None:
        self.assertTrue(self.connection.connection_made())
        self.assertEqual(self.wire.timeout, CONFIG.hello_timeout)
        self.connection.connection_lost()
        self.assertEqual((self.server.gone, self.server.left), ([self.connection],) * 2)
        self.assertIsNone(self.wire.timeout)

    def test_a_refused_connection_is_told_and_closed_and_never_counted_as_lost(self) -> None:
        connection = self.make(ScriptedServer(refusal="full"))
        self.assertFalse(connection.connection_made())
        [frame] = self.wire.frames()
        self.assertEqual((frame["code"], frame["message"]), (errors.TOO_MANY_CONNECTIONS, "full"))
        self.assertTrue(self.wire.closed)
        self.assertEqual(self.wire.timeout, CONFIG.close_timeout)
        connection.connection_lost()
        self.assertEqual(self.server.left, [])

    def test_requests_are_parsed_and_served_with_their_ids(self) -> None:
        self.connection.connection_made()
        self.connection.data_received(b'{"type":"ping","id":4}\n{"type":"hello","name":"A"}\n')
        self.assertEqual(self.wire.frames(), [{"type": "pong", "id": 4}, {"type": "welcome"}])
        self.assertEqual([type(r) for r in self.server.served], [Ping, Hello])
        self.assertIs(self.connection.state, PlayerState.IDLE)
        self.assertEqual((self.connection.player_id, self.connection.name), ("p-1", "A"))

    def test_each_state_arms_its_timeout(self) -> None:
        self.connection.connection_made()
        self.connection.data_received(b'{"type":"hello","name":"A"}\n')
        self.assertEqual(self.wire.timeout, CONFIG.idle_timeout)
        self.connection.queued("maze")
        self.assertEqual((self.wire.timeout, self.connection.game), (CONFIG.ping_interval, "maze"))
        self.connection.unqueued()
        self.assertEqual((self.wire.timeout, self.connection.game), (CONFIG.idle_timeout, None))
        self.connection.queued("maze")
        self.connection.matched("maze")
        self.assertEqual(
            (self.wire.timeout, self.connection.state), (CONFIG.ping_interval, PlayerState.MATCHED)
        )
        self.connection.match_failed()
        self.assertEqual((self.wire.timeout, self.connection.state), (60.0, PlayerState.IDLE))

    def test_a_silent_queued_player_is_pinged_then_closed(self) -> None:
        self.connection.connection_made()
        self.connection.data_received(b'{"type":"hello","name":"A"}\n')
        self.connection.queued("maze")
        self.wire.frames()
        # Quiet for ping_interval: the lobby pings; any bytes back count as an answer.
        self.connection.timer_expired()
        self.assertEqual(self.wire.frames(), [{"type": "ping"}])
        self.assertEqual(self.wire.timeout, CONFIG.ping_timeout)
        self.connection.data_received(b'{"type":"ping"}\n')
        self.assertEqual(self.wire.frames(), [{"type": "pong"}])
        self.assertEqual(self.wire.timeout, CONFIG.ping_interval)
        self.assertFalse(self.wire.closed)
        # Pinged again and silent: told `timeout`, let go by the lobby at once (which
        # withdraws the ticket) and closed; a close the dead peer never completes is
        # aborted after the close timeout.
        self.connection.timer_expired()
        self.assertEqual(self.wire.frames(), [{"type": "ping"}])
        self.connection.timer_expired()
        [frame] = self.wire.frames()
        self.assertEqual(frame["code"], errors.TIMEOUT)
        self.assertIn("no answer to ping", frame["message"])
        self.assertTrue(self.wire.closed)
        self.assertFalse(self.wire.aborted)
        self.assertEqual(self.wire.timeout, CONFIG.close_timeout)
        self.assertEqual((self.server.gone, self.server.left), ([self.connection], []))
        self.connection.timer_expired()
        self.assertTrue(self.wire.aborted)
        # The connection counts against the caps until it is really gone.
        self.connection.connection_lost()
        self.assertEqual((self.server.gone, self.server.left), ([self.connection],) * 2)

    def test_a_transition_from_the_wrong_state_is_a_bug(self) -> None:
        self.connection.connection_made()
        self.assertRaises(AssertionError, self.connection.queued, "maze")
        self.assertRaises(AssertionError, self.connection.matched, "maze")
        self.connection.took_over("p-9", "B", "maze", GAME_PROTOCOL)
        self.assertIs(self.connection.state, PlayerState.MATCHED)
        self.assertRaises(AssertionError, self.connection.welcomed, "p-2", "C", GAME_PROTOCOL)

    def test_silence_is_aborted_and_a_begun_frame_is_answered_timeout(self) -> None:
        self.connection.connection_made()
        self.connection.timer_expired()
        self.assertTrue(self.wire.aborted)
        self.assertEqual(self.wire.frames(), [])

        wire = self.wire = RecordingWire()
        connection = self.make(self.server)
        connection.connection_made()
        connection.data_received(b'{"type":')
        connection.timer_expired()
        [frame] = wire.frames()
        self.assertEqual(frame["code"], errors.TIMEOUT)
        self.assertIn("10 seconds", frame["message"])
        self.assertTrue(wire.closed)
        # A close that does not complete is aborted when the close timeout expires.
        self.assertEqual(wire.timeout, CONFIG.close_timeout)
        connection.timer_expired()
        self.assertTrue(wire.aborted)

    def test_pushes_wait_for_the_reply_of_the_request_being_served(self) -> None:
        self.connection.connection_made()
        self.connection.data_received(b'{"type":"hello","name":"slow","id":1}\n')
        self.connection.push({"type": "queued"})
        self.connection.push({"type": "match_found"}, final=True)
        self.assertEqual(self.wire.frames(), [])
        self.connection.reply(self.server.served[0], {"type": "welcome"})
        self.server.waiting.pop().callback(None)
        self.assertEqual(
            [f["type"] for f in self.wire.frames()], ["welcome", "queued", "match_found"]
        )
        self.assertTrue(self.wire.closed)
        # Nothing is read or sent after the final frame.
        self.connection.data_received(b'{"type":"ping"}\n')
        self.assertEqual(self.wire.frames(), [])

    def test_reading_pauses_behind_a_request_and_resumes_to_close(self) -> None:
        self.connection.connection_made()
        self.connection.data_received(b'{"type":"hello","name":"slow"}\n' + b"x" * 64)
        self.assertFalse(self.wire.paused)
        self.connection.data_received(b"x")
        self.assertTrue(self.wire.paused)
        self.connection.close()
        self.assertFalse(self.wire.paused)
        self.assertTrue(self.wire.closed)

    def test_errors_of_requests_become_error_frames(self) -> None:
        self.connection.connection_made()
        self.connection.data_received(b'{"type":"hello","name":"taken","id":"t"}\n')
        [frame] = self.wire.frames()
        self.assertEqual((frame["code"], frame["id"]), (errors.RATE_LIMITED, "t"))
        self.connection.data_received(b'{"type":"hello","name":"broken","id":"b"}\n')
        [frame] = self.wire.frames()
        self.assertEqual((frame["code"], frame["id"]), (errors.INTERNAL_ERROR, "b"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        # Neither counted: two bad frames more stay one short of the limit of three.
        self.connection.data_received(b"x\nx\n")
        self.assertEqual(len(self.wire.frames()), 2)
        self.assertFalse(self.wire.closed)
        self.connection.data_received(b"x\n")
        self.assertEqual(
            [f["code"] for f in self.wire.frames()],
            [errors.MALFORMED_JSON, errors.TOO_MANY_ERRORS],
        )
        self.assertTrue(self.wire.closed)


class MessageFramedConnectionTests(SynchronousTestCase):
    """`messages=True` (the WebSocket lobby): one frame per message, through the same limits."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.wire = RecordingWire()
        self.server = ScriptedServer()
        self.connection = LobbyConnection(
            self.wire, self.server, CONFIG, self.clock,
            peer_host="192.0.2.1", client="192.0.2.1", messages=True,
        )  # fmt: skip
        self.connection.connection_made()

    def test_each_message_is_one_frame_without_a_newline(self) -> None:
        self.connection.data_received(b'{"type":"ping","id":1}')
        self.connection.data_received(b'{"type":"hello","name":"A"}')
        self.assertEqual(self.wire.frames(), [{"type": "pong", "id": 1}, {"type": "welcome"}])
        self.assertIs(self.connection.state, PlayerState.IDLE)

    def test_a_newline_in_a_message_is_malformed_and_counted(self) -> None:
        for message in (b'{"type":"ping"}\n', b'{"type":"ping"}\n{"type":"ping"}', b"{}\r"):
            self.connection.data_received(message)
        frames = self.wire.frames()
        self.assertEqual([f["code"] for f in frames[:3]], [errors.MALFORMED_JSON] * 3)
        self.assertIn("newline", frames[0]["message"])
        self.assertEqual(frames[3]["code"], errors.TOO_MANY_ERRORS)
        self.assertTrue(self.wire.closed)
        self.assertEqual(self.server.served, [])

    def test_a_refused_message_is_answered_in_turn(self) -> None:
        # A binary message behind a request still being served waits for its reply.
        self.connection.data_received(b'{"type":"hello","name":"slow","id":1}')
        self.connection.message_refused(FrameError(errors.MALFORMED_JSON, "binary"))
        self.connection.data_received(b'{"type":"ping","id":2}')
        self.assertEqual(self.wire.frames(), [])
        self.connection.welcomed("p-1", "slow", GAME_PROTOCOL)
        self.connection.reply(self.server.served[0], {"type": "welcome"})
        self.server.waiting[0].callback(None)
        self.assertEqual(
            [(f["type"], f.get("code"), f.get("id")) for f in self.wire.frames()],
            [("welcome", None, 1), ("error", errors.MALFORMED_JSON, None), ("pong", None, 2)],
        )

    def test_an_oversized_message_is_answered_and_the_next_one_served(self) -> None:
        self.connection.data_received(b'{"type":"ping","pad":"' + b"x" * 64 + b'"}')
        self.connection.data_received(b"   ")
        self.connection.data_received(b'{"type":"ping","id":3}')
        frames = self.wire.frames()
        self.assertEqual(frames[0]["code"], errors.FRAME_TOO_LARGE)
        self.assertEqual(frames[1:], [{"type": "pong", "id": 3}])

    def test_messages_waiting_behind_a_request_stop_reading_past_a_frame(self) -> None:
        self.connection.data_received(b'{"type":"hello","name":"slow"}')
        for _ in range(3):
            self.connection.data_received(b'{"type":"ping","pad":"' + b"x" * 30 + b'"}')
        self.assertTrue(self.wire.paused)
        self.server.waiting[0].callback(None)
        self.assertFalse(self.wire.paused)
        self.assertEqual(len(self.wire.frames()), 3)

    def test_only_a_message_framed_connection_refuses_messages(self) -> None:
        stream = LobbyConnection(
            self.wire, self.server, CONFIG, self.clock, peer_host="192.0.2.1", client="192.0.2.1"
        )
        self.assertRaises(
            TypeError, stream.message_refused, FrameError(errors.MALFORMED_JSON, "binary")
        )
