"""The browser game session's sans-I/O machine (vinom.hosting.game_stream): actions
out of `GameStream` for calls with `now`, and `GameStreamRunner` on a Clock with a
game host that answers when the test says (no sockets)."""

from __future__ import annotations

from collections import Counter

from twisted.internet.defer import Deferred, fail
from twisted.internet.testing import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from vinom.hosting.game_stream import (
    ADMISSION_STATUS,
    CLOSE_HOST_FAILED,
    CLOSE_NORMAL,
    CLOSE_TEXT_MESSAGE,
    CLOSE_TOKEN_REFUSED,
    CLOSE_TOKEN_TIMEOUT,
    CLOSE_TOO_FAST,
    Close,
    CloseStream,
    Counted,
    GameStream,
    GameStreamRunner,
    IGameStreamWire,
    OpenStream,
    SetTimer,
    ToHost,
)
from vinom.hosting.interfaces import IGameHost, IStreamPeer, StreamOpened, StreamRefused

TOKEN = b"\x01" * 1200
OPENED = StreamOpened(7, "p1", "m1")


@implementer(IGameHost)
class Host:
    """A game host whose stream opens when the test fires `opening`; it records the
    messages and closes it is given."""

    def __init__(self, raises: bool = False) -> None:
        self.raises = raises
        self.opening: Deferred[StreamOpened | StreamRefused] = Deferred()
        self.peers: list[IStreamPeer] = []
        self.received: list[tuple[int, bytes]] = []
        self.closed: list[int] = []

    def open_stream(self, token: bytes,
                    peer: IStreamPeer) -> Deferred[StreamOpened | StreamRefused]:  # fmt: skip
        if self.raises:
            raise RuntimeError("the host broke")
        self.peers.append(peer)
        return self.opening

    def stream_messages(self, messages: list[tuple[int, bytes]]) -> None:
        self.received.extend(messages)

    def close_stream(self, session_id: int) -> None:
        self.closed.append(session_id)


def stream(found: Host | str, burst: float = 40.0) -> GameStream:
    return GameStream(lambda token: found, token_timeout=10.0, message_rate=20.0,
                      message_burst=burst)  # fmt: skip


def opened_stream(host: Host) -> GameStream:
    """A session whose token came at 0 and whose stream is open as session 7."""
    machine = stream(host)
    machine.start(0.0)
    machine.message(TOKEN, 0.0)
    machine.stream_opened(OPENED)
    return machine


class GameStreamTests(SynchronousTestCase):
    def test_the_token_must_come_within_the_timeout(self) -> None:
        machine = stream(Host())
        self.assertEqual(machine.start(5.0), [SetTimer(15.0)])
        self.assertEqual(
            machine.timer_expired(15.0),
            [Counted(refused="token_timeout"), Close(CLOSE_TOKEN_TIMEOUT, "no token in time")],
        )
        self.assertTrue(machine.is_closed)
        self.assertEqual(machine.message(TOKEN, 15.5), [])  # a late token opens nothing

    def test_a_token_in_time_stops_the_timer(self) -> None:
        host = Host()
        machine = stream(host)
        machine.start(0.0)
        self.assertEqual(machine.message(TOKEN, 9.0), [SetTimer(None), OpenStream(host, TOKEN)])
        self.assertEqual(machine.timer_expired(10.0), [])
        self.assertFalse(machine.is_closed)

    def test_refusals_close_with_their_code_and_reason(self) -> None:
        for found in ("token_invalid", "token_expired", "not_hosted"):
            machine = stream(found)
            machine.start(0.0)
            self.assertEqual(machine.message(TOKEN, 1.0), [
                SetTimer(None), Counted(refused=found), Close(CLOSE_TOKEN_REFUSED, found),
            ])  # fmt: skip
        # The host refuses the token itself (a reason of its handshake).
        host = Host()
        machine = stream(host)
        machine.start(0.0)
        machine.message(TOKEN, 1.0)
        self.assertEqual(machine.stream_opened(StreamRefused("match_full")), [
            Counted(refused="match_full"), Close(CLOSE_TOKEN_REFUSED, "match_full"),
        ])  # fmt: skip
        # A text message, and messages faster than the rate limit.
        machine = stream(host)
        machine.start(0.0)
        self.assertEqual(machine.message(TOKEN, 0.0, binary=False), [
            Counted(refused="text_message"), SetTimer(None),
            Close(CLOSE_TEXT_MESSAGE, "game messages are binary (msgpack)"),
        ])  # fmt: skip
        machine = stream(host, burst=2.0)
        machine.start(0.0)
        machine.message(TOKEN, 0.0)
        machine.message(b"a", 0.0)
        self.assertEqual(machine.message(b"b", 0.0),
                         [Counted(refused="too_fast"), Close(CLOSE_TOO_FAST, "too many messages")])
        self.assertEqual(ADMISSION_STATUS, {"origin": 403, "too_many_sockets": 429,
                                            "server_full": 503})  # fmt: skip

    def test_messages_held_while_opening_go_to_the_host_in_order(self) -> None:
        host = Host()
        machine = stream(host)
        machine.start(0.0)
        machine.message(TOKEN, 0.0)
        for data in (b"a", b"b", b"c"):
            self.assertEqual(machine.message(data, 0.1), [])
        self.assertFalse(machine.is_open)
        self.assertEqual(machine.stream_opened(OPENED),
                         [Counted(opened=True), ToHost(host, 7, (b"a", b"b", b"c"))])
        self.assertTrue(machine.is_open)
        self.assertEqual(machine.message(b"d", 0.2), [ToHost(host, 7, (b"d",))])

    def test_a_host_that_fails_closes_with_1011(self) -> None:
        machine = stream(Host())
        machine.start(0.0)
        machine.message(TOKEN, 0.0)
        self.assertEqual(machine.stream_failed(), [
            Counted(refused="host_failed"), Close(CLOSE_HOST_FAILED, "the game host failed"),
        ])  # fmt: skip
        self.assertEqual(machine.message(b"a", 0.1), [])

    def test_the_host_ends_the_session(self) -> None:
        host = Host()
        machine = opened_stream(host)
        # Its stream is over already: nothing to close there; the browser's after its output.
        self.assertEqual(machine.host_ended(), [Close(CLOSE_NORMAL, "session closed", drain=True)])
        self.assertEqual(machine.message(b"a", 0.1), [])
        self.assertEqual(machine.peer_closed(), [])

    def test_the_browser_ends_the_session(self) -> None:
        host = Host()
        machine = opened_stream(host)
        self.assertEqual(machine.peer_closed(), [CloseStream(host, 7)])
        self.assertEqual(machine.peer_closed(), [])  # once only
        # Gone before its token: only the timer stops.
        waiting = stream(host)
        waiting.start(0.0)
        self.assertEqual(waiting.peer_closed(), [SetTimer(None)])

    def test_a_refusal_after_opening_ends_the_hosts_stream(self) -> None:
        host = Host()
        machine = opened_stream(host)
        self.assertEqual(machine.refuse(1009, "too_large", "message too large"), [
            Counted(refused="too_large"), CloseStream(host, 7), Close(1009, "message too large"),
        ])  # fmt: skip

    def test_a_stream_opened_after_the_browser_went_is_closed(self) -> None:
        host = Host()
        machine = stream(host)
        machine.start(0.0)
        machine.message(TOKEN, 0.0)
        machine.message(b"held", 0.0)
        self.assertEqual(machine.peer_closed(), [])
        self.assertEqual(machine.stream_opened(OPENED), [CloseStream(host, 7)])


@implementer(IGameStreamWire)
class Wire:
    """The adapter's side: what it counted (its `StreamCounts` too) and how it closed."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.closes: list[Close] = []

    def stream_output(self, messages: list[tuple[int, bytes]]) -> None:
        pass

    def stream_ended(self) -> None:
        pass

    def refused(self, reason: str) -> None:
        self.counts[reason] += 1

    def stream_opened(self) -> None:
        self.counts["opened"] += 1

    def end_session(self, close: Close) -> None:
        self.closes.append(close)


class GameStreamRunnerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(100.0)
        self.wire = Wire()

    def runner(self, host: Host | str) -> GameStreamRunner:
        runner = GameStreamRunner(stream(host), self.wire, self.clock, self.wire)
        runner.run(runner.stream.start(self.clock.seconds()))
        return runner

    def message(self, runner: GameStreamRunner, data: bytes) -> None:
        runner.run(runner.stream.message(data, self.clock.seconds()))

    def test_the_token_timer_runs_on_the_clock(self) -> None:
        self.runner(Host())
        self.clock.advance(9.9)
        self.assertEqual(self.wire.closes, [])
        self.clock.advance(0.1)
        self.assertEqual(self.wire.closes, [Close(CLOSE_TOKEN_TIMEOUT, "no token in time")])
        self.assertEqual(self.wire.counts, {"token_timeout": 1})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_session_opens_on_its_host_and_relays_in_order(self) -> None:
        host = Host()
        runner = self.runner(host)
        self.message(runner, TOKEN)
        self.assertEqual(self.clock.getDelayedCalls(), [])  # the token's timer is gone
        self.assertEqual(host.peers, [self.wire])
        self.message(runner, b"a")
        self.message(runner, b"b")
        host.opening.callback(OPENED)
        self.message(runner, b"c")
        self.assertEqual(host.received, [(7, b"a"), (7, b"b"), (7, b"c")])
        self.assertEqual(self.wire.counts, {"opened": 1})
        runner.run(runner.stream.peer_closed())
        self.assertEqual(host.closed, [7])
        self.assertEqual(self.wire.closes, [])

    def test_a_host_that_raises_or_fails_closes_with_1011(self) -> None:
        self.message(self.runner(Host(raises=True)), TOKEN)
        failing = Host()
        failing.opening = fail(RuntimeError("the host's process went"))
        self.message(self.runner(failing), TOKEN)
        self.assertEqual(self.wire.closes, [Close(CLOSE_HOST_FAILED, "the game host failed")] * 2)
        self.assertEqual(self.wire.counts, {"host_failed": 2})

    def test_a_refused_token_closes_the_session(self) -> None:
        self.message(self.runner("not_hosted"), TOKEN)
        self.assertEqual(self.wire.closes, [Close(CLOSE_TOKEN_REFUSED, "not_hosted")])
        self.assertEqual(self.wire.counts, {"not_hosted": 1})
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cancel_leaves_no_timer(self) -> None:
        runner = self.runner(Host())
        runner.cancel()
        self.assertEqual(self.clock.getDelayedCalls(), [])
