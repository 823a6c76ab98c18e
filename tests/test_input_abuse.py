"""Real-time inputs abused from real clients against a real `twistd -n vinom` process.

The game is a plugin written only with vinom's public game API, installed as a
user installs one: it takes any input `{"n": k}` and its view tells each player
how many of their inputs each tick applied (the most in one tick) and which.
The players are real clients on real sockets: the client library over UDP, and
a `/game` WebSocket. What the game applied is what their views show; what the
host dropped is what its `/metrics` page says (docs/protocol.md §14).

- A lag switch: the players go silent for a few seconds, then send every
  input they held back, stamped with its tick, eight a message (over UDP, a
  `/game` WebSocket, and WebTransport datagrams). The game
  applies at most `MAX_INPUTS_PER_TICK` a tick, and only the last
  `LATE_TICKS` ticks' worth; the rest are counted `too_late`.
- A burst of `input` datagrams from one UDP session: the session's bucket lets
  `INPUT_MESSAGES_PER_TICK` a tick through (a second's burst), and counts the
  rest `input_rate_limited`.
- A flood from one live UDP session (issue 73): past its bucket and
  `FLOOD_SECONDS` of overdraft the session ends, counted `flood`; what it
  sends on costs the host, by its CPU time in /proc, what a stranger's
  datagrams cost (the host runs its matches in its own process here). So does
  one sending malformed bodies past `MALFORMED_BODIES`.
- An `input` on UDP's reliable channel is not applied: counted `wrong_channel`.
"""

# slow: starts twistd vinom (tests/support/servers.py)

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall, deferLater
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, readBody

from tests.support.metrics import fetch_metrics, samples
from tests.support.ports import free_tcp_port, free_udp_port
from tests.support.servers import RunningTwistd, start_twistd
from tests.support.waiting import until
from tests.support.websocket_client import connect_game_socket
from tests.support.webtransport_client import connect_webtransport
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession, connect_game
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.protocol.server_session import MALFORMED_BODIES
from vinom.protocol.tokens import PublicToken
from vinom.protocol.wire import HEADER, PAYLOAD, session_nonce
from vinom.rooms.client_messages import encode_input
from vinom.rooms.inputs import LATE_TICKS, MAX_INPUTS_PER_TICK
from vinom.rooms.router import FLOOD_SECONDS, INPUT_MESSAGES_PER_TICK

TICK_RATE = 50
# The ticks past the newest one seen a lag switch stamps inputs for.
AHEAD = 3

COUNTING_PLUGIN = textwrap.dedent(
    f'''
    """Real-time inputs counted: how many each tick applied, for each player."""

    from attrs import evolve, frozen

    from vinom.games.base import Game
    from vinom.games.interfaces import Outcome


    @frozen
    class Tally:
        players: tuple
        ticks: int = 0
        # Per player: the inputs applied before the coming tick, the most before
        # any one tick, and the input numbers applied.
        now: tuple = ()
        most: tuple = ()
        got: tuple = ()
        over: bool = False


    class CountingGame(Game):
        name = "counting"
        description = "test: real-time inputs counted per tick"
        min_players = max_players = match_size = 2
        tick_rate = {TICK_RATE}
        time_limit = 60.0
        countdown = 0.0
        idle_timeout = 0.0
        offered_by_default = False

        def create(self, seats, options, rng):
            n = len(seats)
            return Tally(tuple(s.player_id for s in seats), now=(0,) * n, most=(0,) * n,
                         got=((),) * n)

        def on_n(self, state, seat, action, rng):
            i = seat.index
            now, most, got = list(state.now), list(state.most), list(state.got)
            now[i] += 1
            most[i] = max(most[i], now[i])
            got[i] = (*got[i], action["n"])
            return Outcome(evolve(state, now=tuple(now), most=tuple(most), got=tuple(got)))

        def tick(self, state, dt, rng):
            return Outcome(evolve(state, ticks=state.ticks + 1, now=(0,) * len(state.now)))

        def time_up(self, state):
            return Outcome(evolve(state, over=True))

        def view(self, state, player_id):
            # Everyone's figures, by seat: a player sees what the others' inputs did.
            return {{"me": state.players.index(player_id), "k": state.ticks,
                     "most": list(state.most), "got": [list(g) for g in state.got]}}

        def is_finished(self, state):
            return state.over

        def result(self, state):
            return {{"winners": [], "reason": "time"}}


    counting = CountingGame()
    '''
)


# The flood: BURST datagrams every PACE seconds (20,000 a second), the host's CPU
# measured over MEASURED seconds of it; POOL datagrams sealed for it.
BURST, PACE, MEASURED, POOL = 100, 0.005, 2.0, 2000


def cpu_seconds(pid: int) -> float:
    """The user and system CPU seconds of process `pid` so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        # After the command's name (in parentheses), the state is field 3; utime
        # and stime are fields 14 and 15.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def for_a_while(call: Callable[[], object], seconds: float) -> None:
    """`call` every PACE seconds for `seconds`."""
    loop = LoopingCall(call)
    loop.start(PACE)
    try:
        await deferLater(reactor, seconds, lambda: None)
    finally:
        loop.stop()


async def fetch_text(url: str) -> str:
    response = await Agent(reactor).request(b"GET", url.encode())
    return (await readBody(response)).decode()


def lag_switch(current: int) -> list[tuple[int, dict[str, int]]]:
    """What a lag switch releases at `current`, the newest tick its client saw: an
    input for every tick since the start, and for the next few (`AHEAD`, as a
    client stamps them: some are in time, however far the host ran on meanwhile)."""
    return [(k, {"n": k}) for k in range(current + AHEAD + 1)]


class InputAbuseTests(TestCase):
    timeout = 120

    async def serve(self, *options: str) -> RunningTwistd:
        self.ops = free_tcp_port()
        server = await start_twistd(
            self, {"twisted/plugins/counting_game.py": COUNTING_PLUGIN},
            "--games", "counting", "--ops-port", f"tcp:{self.ops}:interface=127.0.0.1",
            *options, web=True,
        )  # fmt: skip
        self.server = server
        return server

    async def inputs(self) -> dict[str, float]:
        return samples(await fetch_metrics(self.ops), "vinom_inputs_total", "outcome")

    async def message_drops(self) -> dict[str, float]:
        return samples(await fetch_metrics(self.ops), "vinom_messages_dropped_total", "reason")

    async def udp_players(self) -> list[GameSession]:
        """Two players matched through the lobby, each on its UDP session."""
        found = await gatherResults([
            LobbyPlayer(reactor, self.server.lobby, f"p{n}").find_match("counting")
            for n in range(2)
        ])  # fmt: skip
        sessions = list(await gatherResults([connect_game(reactor, f) for f in found]))
        for session in sessions:
            self.addCleanup(session.disconnect)
        return sessions

    async def udp_and_web_players(self) -> list[GameSession]:
        """Two players matched through the lobby: one on UDP, one on a `/game` WebSocket."""
        found = await gatherResults([
            LobbyPlayer(reactor, self.server.lobby, f"p{n}").find_match("counting")
            for n in range(2)
        ])  # fmt: skip
        udp = await connect_game(reactor, found[0])
        self.addCleanup(udp.disconnect)
        assert self.server.web_port is not None
        socket = await connect_game_socket(
            self, self.server.web_port, self.server.cert, PublicToken.from_json(found[1].token)
        )
        return [udp, socket.session]

    async def playing(self, sessions: list[GameSession], at_least: int = 1) -> int:
        """Wait until every session has a playing state of tick `at_least` or later:
        the tick the newest of them shows."""

        def tick(session: GameSession) -> int:
            state = session.state
            return -1 if state is None or state["p"] != "playing" else int(state["k"])

        await until(lambda: all(tick(s) >= at_least for s in sessions), f"tick {at_least}", 30.0)
        return max(tick(s) for s in sessions)

    async def test_a_lag_switch_over_udp_and_websocket(self) -> None:
        """Silent for 4 s (200 ticks), then every held-back input at once: the game
        applies at most MAX_INPUTS_PER_TICK a tick, LATE_TICKS in all."""
        await self.serve()
        sessions = await self.udp_and_web_players()
        silent_until = await self.playing(sessions) + 4 * TICK_RATE
        current = await self.playing(sessions, silent_until)
        for session in sessions:
            self.assertEqual(session.view["got"], [[], []])
            held_back = lag_switch(current)
            assert session.protocol is not None
            for at in range(0, len(held_back), 8):
                session.protocol.send(UNRELIABLE, encode_input(None, held_back[at : at + 8]))
        await self.playing(sessions, current + 2 * LATE_TICKS)
        for session in sessions:
            view = session.view
            assert view is not None
            self.assertGreater(view["k"], current)
            self.assert_held_back(view["most"][view["me"]], view["got"][view["me"]], current)
        # The host's figures (gathered from its workers now and then) say what was dropped.
        expected = 2 * (current - LATE_TICKS)

        async def dropped() -> dict[str, float] | None:
            inputs = await self.inputs()
            return inputs if inputs.get("too_late", 0) >= expected else None

        inputs = await until(dropped, f"{expected} inputs counted too_late", 30.0, every=0.2)
        assert isinstance(inputs, dict)
        self.assertGreater(inputs.get("capped", 0), 0, inputs)
        # /status has the same figures, by outcome.
        status = json.loads(await fetch_text(f"http://127.0.0.1:{self.ops}/status"))
        self.assertGreaterEqual(status["inputs"]["too_late"], expected, status["inputs"])
        self.assertGreater(status["inputs"]["capped"], 0, status["inputs"])

    def assert_held_back(self, most: int, got: list[int], current: int) -> None:
        """What the game applied of a player's lag switch released at `current`: at
        most MAX_INPUTS_PER_TICK a tick, only the last LATE_TICKS ticks' inputs."""
        self.assertLessEqual(most, MAX_INPUTS_PER_TICK, got)
        self.assertGreater(len(got), 0)
        self.assertLessEqual(len(got), LATE_TICKS + AHEAD, got)
        self.assertGreaterEqual(min(got), current - LATE_TICKS, got)

    async def test_a_lag_switch_over_webtransport(self) -> None:
        """The same over WebTransport, the held-back inputs sent as datagrams (as a
        browser sends them): the other player, on UDP, sees what the game applied."""
        webtransport = free_udp_port()
        await self.serve("--webtransport", str(webtransport))
        found = await gatherResults([
            LobbyPlayer(reactor, self.server.lobby, f"p{n}").find_match("counting")
            for n in range(2)
        ])  # fmt: skip
        player = await connect_webtransport(self, webtransport)
        self.assertEqual(await player.status.addTimeout(10, reactor), 200)
        player.send_token(PublicToken.from_json(found[1].token))
        welcome = await player.welcomed.addTimeout(10, reactor)
        udp = await connect_game(reactor, found[0])
        self.addCleanup(udp.disconnect)
        self.addCleanup(player.close)
        seat = welcome["seat"]
        silent_until = await self.playing([udp]) + 4 * TICK_RATE
        current = await self.playing([udp], silent_until)
        # `current` is the tick the UDP player last saw, already behind the host's;
        # the in-time part of the release is what reaches the host within LATE_TICKS
        # (160 ms at this game's 50 Hz) of it. A loaded machine (CI's two lanes) can
        # take longer than that between the snap and the datagrams' arrival, and then
        # the host rightly drops them all as too_late: the switch is released again
        # from a newer tick, at most three times.
        for _ in range(3):
            held_back = lag_switch(current)
            for at in range(0, len(held_back), 8):
                player.send_datagram(encode_input(None, held_back[at : at + 8]))
            await self.playing([udp], current + 2 * LATE_TICKS)
            view = udp.view
            assert view is not None
            if view["got"][seat]:
                break
            current = await self.playing([udp])
        self.assert_held_back(view["most"][seat], view["got"][seat], current)

    async def test_a_burst_of_input_datagrams_is_cut_to_the_bucket(self) -> None:
        """One UDP session sends 1,500 `input` messages in a burst: the bucket's burst
        (and its refill meanwhile) gets through, the rest are dropped and counted,
        and the session goes on (below FLOOD_SECONDS of overdraft)."""
        await self.serve()
        sessions = await self.udp_players()
        current = await self.playing(sessions, 5)
        flooder = sessions[0]
        assert flooder.protocol is not None
        sent = 1500
        self.assertLess(sent, (FLOOD_SECONDS + 1) * INPUT_MESSAGES_PER_TICK * TICK_RATE)
        for n in range(sent):
            # Each message a new input for the coming ticks (all but the first few early).
            flooder.protocol.send(UNRELIABLE, encode_input(None, [(current + 1 + n, {"n": n})]))
        # The bucket's burst (200) and its refill while the host reads the flood (200
        # a second): a third of the flood leaves room for a slow machine.
        bound = sent // 3
        self.assertEqual(INPUT_MESSAGES_PER_TICK * TICK_RATE, 200)

        async def counted() -> tuple[float, float] | None:
            drops = (await self.message_drops()).get("input_rate_limited", 0)
            inputs = await self.inputs()
            through = sum(inputs.get(k, 0) for k in ("held", "early", "late", "duplicate"))
            # (A loaded machine's socket may lose a few of the flood's datagrams.)
            return (drops, through) if drops + through >= 0.9 * sent else None

        figures = await until(counted, "the flood counted", 30.0, every=0.2)
        assert isinstance(figures, tuple)
        drops, through = figures
        # At most the bucket's worth reached the room; the rest was dropped, counted.
        self.assertLessEqual(through, bound, figures)
        self.assertGreaterEqual(drops, 0.9 * sent - bound, figures)
        await self.playing(sessions, current + LATE_TICKS + 2)
        view = flooder.view
        assert view is not None
        # What got through was applied at its tick, one a tick at most.
        me = view["me"]
        self.assertLessEqual(view["most"][me], 1, view)
        self.assertLessEqual(len(view["got"][me]), view["k"] - current, view)

    async def test_a_flood_from_a_live_session_ends_it_then_costs_a_strangers(self) -> None:
        await self.serve("--matches", "here")
        sessions = await self.udp_players()
        current = await self.playing(sessions, 5)
        flooder = sessions[0].protocol
        assert flooder is not None and flooder.connection is not None
        assert flooder.transport is not None
        port = flooder.transport.getHost().port
        # A pool of the session's own datagrams, sealed with its keys and never sent
        # (its sequences are below the flood's): what it sends once it is closed.
        pool: list[bytes] = []
        for n in range(POOL):
            flooder.connection.send_message(UNRELIABLE, encode_input(None, [(current, {"n": n})]))
            sealed = flooder.connection.datagrams_to_send(reactor.seconds())
            pool += [data for data, _ in sealed]
        host = sealed[-1][1]
        # The flood, through the client, until the host ends the session.
        message = encode_input(None, [(current + 1, {"n": 0})])

        def live() -> None:
            for _ in range(BURST):
                if flooder.closed.called:
                    return
                flooder.send(UNRELIABLE, message)

        flooding = LoopingCall(live)
        flooding.start(PACE)
        try:
            reason = await flooder.closed.addTimeout(30, reactor)
        finally:
            flooding.stop()
        self.assertEqual(reason, "disconnect")
        drops = await until(self.flooded, "the flood counted", 30.0, every=0.2)
        assert isinstance(drops, dict)
        self.assertEqual(drops["flood"], 1, drops)
        # The other player plays on.
        await self.playing(sessions[1:], current + 2 * TICK_RATE)
        # The flood goes on from the session's address, then from a stranger's: the
        # host's CPU time is about the same for both.
        await sessions[0].disconnect()  # the client lets its port go
        closed, stranger = self.sender(port), self.sender(0)
        after_close = await self.host_cpu(closed, pool, host)
        strangers = await self.host_cpu(stranger, pool, host)
        print(f"\nhost CPU over {MEASURED} s of a {BURST / PACE:.0f}/s flood: "
              f"the closed session's {after_close}, a stranger's {strangers}")
        (cpu, handled), (stranger_cpu, stranger_handled) = after_close, strangers
        # Both floods reached the host (a busy machine's socket may drop some).
        self.assertGreater(handled, 0.1 * BURST / PACE * MEASURED, after_close)
        self.assertGreater(stranger_handled, 0.1 * BURST / PACE * MEASURED, strangers)
        # Per datagram handled, within twice a stranger's (and a scheduler's slack):
        # the live session's cost it was not.
        self.assertLessEqual(cpu / handled, 2 * stranger_cpu / stranger_handled + 0.05 / handled,
                             (after_close, strangers))  # fmt: skip

    async def test_malformed_bodies_from_a_live_session_end_it(self) -> None:
        """Payloads sealed with the session's key whose bodies do not parse: the
        first MALFORMED_BODIES are counted `malformed_body`, the next ends the session."""
        await self.serve("--matches", "here")
        sessions = await self.udp_players()
        await self.playing(sessions)
        sender = sessions[0].protocol
        assert sender is not None and sender.connection is not None
        assert sender.transport is not None
        token = sender.connection.token
        seal = new_aead(token.client_to_server_key).encrypt
        host = (token.hosts[0].host, token.hosts[0].port)
        for n in range(MALFORMED_BODIES + 1):
            # Above any sequence the client used (a random start below 2^48).
            header = HEADER.pack(PAYLOAD, 2**48 + n)
            sender.transport.write(header + seal(session_nonce(2**48 + n), b"\x00", header), host)
        self.assertEqual(await sender.closed.addTimeout(30, reactor), "disconnect")
        drops = await self.datagram_drops()
        self.assertEqual((drops.get("malformed_body"), drops.get("flood")),
                         (MALFORMED_BODIES, 1), drops)  # fmt: skip
        await self.playing(sessions[1:], (await self.playing(sessions[1:])) + TICK_RATE)

    async def flooded(self) -> dict[str, float] | None:
        drops = await self.message_drops()
        return drops if drops.get("flood") else None

    def sender(self, port: int) -> DatagramProtocol:
        """A socket on loopback's UDP `port` (0: a new one, a stranger's)."""
        sender = DatagramProtocol()
        listening = reactor.listenUDP(port, sender, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        return sender

    async def host_cpu(self, sender: DatagramProtocol, pool: list[bytes],
                       host: tuple[str, int]) -> tuple[float, float]:  # fmt: skip
        """The host's CPU seconds while `sender` sends `pool` round and round at the
        flood's pace for MEASURED seconds, and the datagrams it counted `no_session`."""
        assert sender.transport is not None and self.server.process.transport is not None
        write = sender.transport.write
        at = 0

        def burst() -> None:
            nonlocal at
            for _ in range(BURST):
                write(pool[at % len(pool)], host)
                at += 1

        before = (await self.datagram_drops()).get("no_session", 0)
        pid = self.server.process.transport.pid
        start = cpu_seconds(pid)
        await for_a_while(burst, MEASURED)
        used = cpu_seconds(pid) - start
        await deferLater(reactor, 0.5, lambda: None)  # the last read
        return round(used, 2), (await self.datagram_drops()).get("no_session", 0) - before

    async def datagram_drops(self) -> dict[str, float]:
        return samples(await fetch_metrics(self.ops), "vinom_datagrams_dropped_total", "reason")

    async def test_an_input_on_the_reliable_channel_is_dropped(self) -> None:
        """docs/protocol.md §14: over UDP `input` travels on channel 0; one sent on
        channel 1 is not applied, and counted `wrong_channel`."""
        await self.serve()
        sessions = await self.udp_players()
        current = await self.playing(sessions, 2)
        sender = sessions[0]
        assert sender.protocol is not None
        sender.protocol.send(RELIABLE, encode_input(None, [(current + 5, {"n": 1})]))
        sender.protocol.send(UNRELIABLE, encode_input(None, [(current + 6, {"n": 2})]))
        await self.playing(sessions, current + 10)
        view = sender.view
        assert view is not None
        self.assertEqual(view["got"][view["me"]], [2])
        # The host's figures come from its workers now and then.
        async def counted() -> dict[str, float] | None:
            drops = await self.message_drops()
            return drops if drops.get("wrong_channel") else None

        drops = await until(counted, "the input counted wrong_channel", 30.0, every=0.2)
        assert isinstance(drops, dict)
        self.assertEqual(drops["wrong_channel"], 1, drops)

