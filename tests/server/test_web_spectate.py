"""A browser watches a running match (`spectate`, docs/lobby.md) on the real page.

Two bots play tictactoe through the whole client stack (TLS lobby, UDP); the
browser, in the lobby, types the match's id into "Watch a match", and the page
opens `/game` with the spectator's token: the board is drawn from the public
view, it follows the moves, and the result says who won. No console error
(tests/support/browser.py fails the test on one). The same on a real `twistd
vinom --webtransport`, where the page watches over WebTransport as it plays.
"""
# slow: drives Chromium (tests/support/browser.py)

from __future__ import annotations

import os
import random
import re
from typing import Any, cast

import attrs
import msgpack
from attrs import frozen
from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import ILogObserver, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import (
    WAIT,
    board_marks,
    click,
    enter,
    start_web_server,
    wait_for_game,
)
from tests.support.browser import open_browser
from tests.support.metrics import fetch_metrics
from tests.support.ports import free_tcp_port, free_udp_range
from tests.support.servers import RunningServer, start_server, start_twistd
from tests.support.waiting import until
from vinom.client.bots import LobbyAddress, play_bot
from vinom.client.game import GameSession
from vinom.games.registry import GameRegistry


class WatchInChromiumTests(TestCase):
    timeout = 120

    async def test_a_browser_watches_two_bots_play_to_the_result(self) -> None:
        server, url = await start_web_server(self)
        await self.watch(server.lobby, url, "websocket")

    async def test_a_browser_watches_over_webtransport_on_twistd(self) -> None:
        ops = free_tcp_port()
        server = await start_twistd(
            self, {}, "--webtransport", str(free_udp_range(1)),
            "--ops-port", f"tcp:{ops}:interface=127.0.0.1", web=True,
        )  # fmt: skip
        await self.watch(server.lobby, server.url, "webtransport")
        text = await fetch_metrics(ops)
        # The page's one game session: the spectator's, over WebTransport.
        self.assertIn("vinom_webtransport_sessions_opened_total 1.0", text)
        self.assertIn("vinom_game_sockets_opened_total 0.0", text)

    async def watch(self, lobby: LobbyAddress, url: str, kind: str) -> None:
        """Eve watches two bots play on `lobby`'s server from its page at `url`, her
        game session on `kind` (the page's Link line)."""
        browser = await open_browser(self)
        await enter(browser, url, "Eve")
        sessions: list[GameSession] = []
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        bots = gatherResults([
            Deferred.fromCoroutine(play_bot(
                reactor, lobby, tictactoe, f"bot{n}", rng=random.Random(n),
                think_time=1.0, on_session=sessions.append,
            ))
            for n in range(2)
        ])  # fmt: skip
        await until(lambda: any(s.welcome is not None for s in sessions))
        match_id = next(s.welcome for s in sessions if s.welcome is not None)["match"]

        def type_id(driver: Any) -> None:
            driver.find_element(By.ID, "watch-input").send_keys(match_id)

        await browser.run(type_id)
        await click(browser, "#watch-start")
        await wait_for_game(browser, "tictactoe")
        screen = await browser.run(lambda d: d.execute_script(
            "const s = document.getElementById('screen-game').dataset;"
            "return [s.spectator, s.seat, s.match];"
        ))  # fmt: skip
        self.assertEqual(screen, ["true", "-1", match_id])
        await browser.wait_until(lambda d: d.find_element(By.ID, "game-transport")
                                 .get_attribute("data-kind"), WAIT)  # fmt: skip
        shown = await browser.run(
            lambda d: d.find_element(By.ID, "game-transport").get_attribute("data-kind")
        )
        self.assertEqual(shown, kind)
        reports = await bots
        self.assertEqual([r.outcome for r in reports], ["finished", "finished"])
        await browser.wait_until(
            lambda d: not d.find_element(By.ID, "result-panel").get_attribute("hidden"), WAIT
        )
        outcome = await browser.run(
            lambda d: d.find_element(By.ID, "result-panel").get_attribute("data-outcome")
        )
        winners = [r.name for r in reports if r.won]
        self.assertEqual(outcome, "watched" if winners else "draw")
        text = await browser.run(lambda d: d.find_element(By.ID, "result-text").text)
        self.assertEqual(text, f"{winners[0]} won." if winners else "It's a draw.")
        # The board the browser drew is the final board the players saw.
        final = sessions[0].view
        assert final is not None
        marks = await board_marks(browser)
        self.assertEqual(sum(1 for m in marks if m not in ("", "None")),
                         sum(1 for c in final["board"] if c))  # fmt: skip
        await browser.check()


@frozen
class FinishedMatch:
    """A match played to its end on a server with `--web-replays` (its page at `url`)."""

    server: RunningServer
    url: str
    match_id: str
    final: dict[str, Any]  # the last view a player saw
    winners: list[str]


def replay_answers(lines: list[str], match_id: str) -> list[str]:
    """The statuses of a browser's requests for `match_id`'s replay, in the order of
    the web server's access log `lines` (`--access-log`: the combined log format,
    whose last field is the client's User-Agent)."""
    line = re.compile(
        rf'"GET /replays/{re.escape(match_id)} HTTP/[\d.]+" (\d{{3}}) .*"[^"]*Chrome/[^"]*"$'
    )  # fmt: skip
    return [found[1] for found in map(line.search, lines) if found is not None]


class ReplayInChromiumTests(TestCase):
    timeout = 120

    async def test_a_browser_replays_a_finished_match_and_seeks_to_its_end(self) -> None:
        match = await self.finished_match()
        browser = await open_browser(self)
        await enter(browser, match.url, "Rex")
        await self.replay(browser, match.match_id)
        await self.seek_to_the_end_and_back(browser, match)

    async def test_a_browser_meeting_another_replay_being_made_waits_for_it(self) -> None:
        """The page asks for a replay while the server makes another (its one replay
        at a time: the slot held here, as a replay being made holds it): the answer
        is a 503 with `Retry-After: 1`, and the page waits, says so, and asks again
        (docs/web.md, "Replays") until the slot is free, then plays the match, never
        saying "busy". The server's access log shows the browser's 503s, then its 200."""
        match = await self.finished_match("--access-log")
        lines: list[str] = []
        observer = cast(ILogObserver, lambda event: lines.append(formatEvent(event)))
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        replays = match.server.service("web").factory.resource.getStaticEntity(b"replays")
        browser = await open_browser(self)
        await enter(browser, match.url, "Rex")
        taken = replays.slot.acquire()  # as a replay being made takes it
        self.assertTrue(taken.called)  # free until now: this test holds it
        await self.replay(browser, match.match_id)

        def answers() -> list[str]:
            """The statuses of the browser's requests for the replay, in the access log."""
            return replay_answers(lines, match.match_id)

        # Two 503s: the page asked again after the first (the loop, not a reload).
        await until(lambda: len(answers()) >= 2,
                    lambda: f"the browser's second request (answered so far: {answers()})",
                    WAIT)  # fmt: skip
        self.assertEqual(answers()[:2], ["503", "503"])
        waiting = await browser.run(lambda d: d.execute_script(
            "return [document.querySelector('main > .screen:not([hidden])').id,"
            " document.getElementById('notice').hidden,"
            " document.getElementById('notice-text').innerText];"
        ))  # fmt: skip
        self.assertEqual(waiting[:2], ["screen-lobby", False])
        self.assertEqual(waiting[2], "Waiting for the server, which is making other replays: "
                                     "asking again in 1 s…")  # fmt: skip
        replays.slot.release()
        await wait_for_game(browser, "tictactoe")
        statuses = answers()
        self.assertEqual((statuses[-1], set(statuses[:-1])), ("200", {"503"}))
        notice = await browser.run(lambda d: d.execute_script(
            "return [document.getElementById('notice').hidden, document.body.innerText];"
        ))  # fmt: skip
        self.assertTrue(notice[0])
        self.assertNotIn("busy", notice[1].lower())
        # Chromium's console has a network line for each 503 (any fetch answered 5xx
        # gets one; no page can prevent it), the same count as the server answered,
        # and nothing else.
        problems = await browser.collect()
        self.assertEqual(problems, statuses.count("503") * [
            f"console: {match.url}replays/{match.match_id} - Failed to load resource: "
            "the server responded with a status of 503 (Service Unavailable)"
        ])  # fmt: skip
        browser.problems.clear()  # seen: the end of the test finds nothing more
        await self.seek_to_the_end_and_back(browser, match)

    async def finished_match(self, *args: str) -> FinishedMatch:
        """Two bots' tictactoe match played to its end on a server with `--web-replays`
        (and `args`)."""
        port = free_tcp_port()
        server = await start_server(
            self, "--websocket", f"ssl:{port}:interface=127.0.0.1", "--web-replays", *args,
            ports=4,
        )  # fmt: skip
        sessions: list[GameSession] = []
        tictactoe = GameRegistry.from_plugins().get("tictactoe")
        reports = await gatherResults([
            Deferred.fromCoroutine(play_bot(
                reactor, server.lobby, tictactoe, f"bot{n}", rng=random.Random(n),
                on_session=sessions.append,
            ))
            for n in range(2)
        ])  # fmt: skip
        match_id = reports[0].match_id
        assert match_id is not None
        final = sessions[0].view
        assert final is not None
        winners = [r.name for r in reports if r.won]
        return FinishedMatch(server, f"https://127.0.0.1:{port}/", match_id, final, winners)

    async def seek_to_the_end_and_back(self, browser: Any, match: FinishedMatch) -> None:
        """The page plays `match`'s replay: the replay bar; dragged to the end, the
        final board and the result; back to the start, the board empties again."""
        await wait_for_game(browser, "tictactoe")
        flags = await browser.run(lambda d: d.execute_script(
            "const s = document.getElementById('screen-game').dataset;"
            "return [s.replay, s.spectator, document.getElementById('replay-bar').hidden];"
        ))  # fmt: skip
        self.assertEqual(flags, ["true", "true", False])
        # Drag the slider to the end: the final board and the result.
        await browser.run(lambda d: d.execute_script(
            "const seek = document.getElementById('replay-seek');"
            "seek.value = seek.max; seek.dispatchEvent(new Event('input'));"
        ))  # fmt: skip
        await browser.wait_until(
            lambda d: not d.find_element(By.ID, "result-panel").get_attribute("hidden"), WAIT
        )
        marks = await board_marks(browser)
        self.assertEqual(sum(1 for m in marks if m not in ("", "None")),
                         sum(1 for c in match.final["board"] if c))  # fmt: skip
        winners = match.winners
        text = await browser.run(lambda d: d.find_element(By.ID, "result-text").text)
        self.assertEqual(text, f"{winners[0]} won." if winners else "It's a draw.")
        # Back to the start: the board empties again.
        await browser.run(lambda d: d.execute_script(
            "const seek = document.getElementById('replay-seek');"
            "seek.value = 0; seek.dispatchEvent(new Event('input'));"
        ))  # fmt: skip
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "result-panel").get_attribute("hidden"), WAIT
        )

    async def replay(self, browser: Any, match_id: str) -> None:
        def type_id(driver: Any) -> None:
            field = driver.find_element(By.ID, "replay-input")
            field.clear()
            field.send_keys(match_id)
            driver.find_element(By.ID, "replay-start").click()

        # The form is offered once the page has read the server's /settings.js.
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "replay-form").is_displayed(), WAIT
        )
        await browser.run(type_id)


class ReplaysResourceTests(TestCase):
    """`/replays/<match id>` over HTTP (vinom.server.replays), without a browser."""

    def test_answers(self) -> None:
        from tests.rooms.test_rooms_record import REGISTRY, bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings, record_file_name
        from vinom.server.replays import Replays

        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        game = REGISTRY.get("tictactoe")
        room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4)
        with open(os.path.join(directory, record_file_name("m-1", 0.0)), "wb") as f:
            f.write(data)
        with open(os.path.join(directory, record_file_name("m-bad", 0.0)), "wb") as f:
            f.write(b"junk")
        replays = Replays(directory, REGISTRY.get)
        status, body = replays.answer("m-1")
        self.assertEqual(status, 200)
        doc = msgpack.unpackb(body)
        self.assertEqual((doc["match_id"], doc["game"], doc["error"]), ("m-1", "tictactoe", None))
        self.assertEqual(doc["frames"][-1][2], game.view(room.state, None))
        self.assertEqual(doc["end"], {"phase": "finished", "result": room.ending.result})
        times = [f[0] for f in doc["frames"]]
        self.assertEqual(times, sorted(times))
        self.assertEqual(replays.answer("m-none"), (404, b"no finished match has this id"))
        status, body = replays.answer("m-bad")
        self.assertEqual((status, body), (422, b"not a match record (not gzip data)"))
        # A match in a host's record file (format version 2), found as it is written.
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        files.write("m-2", 0.0, data[:50], closed=False)
        self.assertEqual(replays.answer("m-2")[0], 422)  # cut short: not even its header
        files.write("m-3", 0.0, data, closed=True)
        status, body = replays.answer("m-3")
        self.assertEqual(status, 200)
        end = {"phase": "finished", "result": room.ending.result}
        self.assertEqual(msgpack.unpackb(body)["end"], end)

    def test_a_match_still_playing_is_not_served_until_its_spectators_had_its_end(
        self,
    ) -> None:
        """A record still growing (its match plays on) is no replay: it would show the
        play ahead of `--limit spectator-delay`. Once it ends, it is served `delay` seconds
        after this server first found it ended, the whole match."""
        from tests.rooms.test_rooms_record import REGISTRY, bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings
        from vinom.server.replays import Replays

        directory = os.path.abspath(self.mktemp())
        game = REGISTRY.get("tictactoe")
        room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4)
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        now = [100.0]
        replays = Replays(directory, REGISTRY.get, clock=lambda: now[0], spectator_delay=5.0)
        files.write("m-1", 0.0, data[: len(data) * 2 // 3], closed=False)
        self.assertEqual(replays.answer("m-1"), (404, b"no finished match has this id"))
        files.write("m-1", 0.0, data[len(data) * 2 // 3 :], closed=True)
        self.assertEqual(replays.answer("m-1"), (404, b"no finished match has this id"))
        now[0] += 4.9
        self.assertEqual(replays.answer("m-1")[0], 404)
        now[0] += 0.1
        status, body = replays.answer("m-1")
        self.assertEqual(status, 200)
        doc = msgpack.unpackb(body)
        self.assertEqual(doc["end"], {"phase": "finished", "result": room.ending.result})
        self.assertEqual(doc["frames"][-1][2], game.view(room.state, None))

    def test_a_private_room_that_lets_nobody_watch_is_never_replayed(self) -> None:
        """The record's header carries its match's policy (`"spectators": false`):
        finished, it is answered as no record at all."""
        from tests.rooms.test_rooms_record import REGISTRY, bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings
        from vinom.server.replays import Replays

        directory = os.path.abspath(self.mktemp())
        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(
            game, attrs.evolve(bot_match(game, 2), spectators=False), seed=4
        )
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        files.write("m-1", 0.0, data, closed=True)
        self.assertEqual(Replays(directory, REGISTRY.get).answer("m-1"),
                         (404, b"no finished match has this id"))  # fmt: skip

    def test_replaying_is_bounded_to_a_share_of_a_cpu_then_503_with_retry_after(self) -> None:
        """A replay runs in the web server's process (a 10-minute arena match: about a
        second of CPU); one client asking for match after match must not take it all."""
        import itertools

        from twisted.web.test.requesthelper import DummyRequest

        from tests.rooms.test_rooms_record import REGISTRY, bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings
        from vinom.server.replays import REPLAY_CPU_BURST, REPLAY_CPU_SHARE, Replays

        directory = os.path.abspath(self.mktemp())
        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4)
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        for n in range(6):
            files.write(f"m-{n}", 0.0, data, closed=True)
        now = [0.0]
        cost = 2.0  # CPU seconds each replay takes, as the process's CPU clock says
        spent = itertools.count(0.0, cost)
        replays = Replays(directory, REGISTRY.get, clock=lambda: now[0],
                          cpu=lambda: next(spent))  # fmt: skip
        self.assertEqual((REPLAY_CPU_BURST, REPLAY_CPU_SHARE), (5.0, 0.25))
        # A burst of 5 CPU seconds: three replays of 2 (the third goes 1 into debt).
        for n in range(3):
            self.assertEqual(replays.answer(f"m-{n}")[0], 200)
        # Then 503, saying when: 1 CPU second of debt at a quarter of a CPU is 4 s.
        self.assertEqual(replays.answer("m-3"), (503, b"replays are busy: try again in 4 s"))
        request = DummyRequest([b"m-3"])
        replays.getChild(b"m-3", request).render(request)
        self.assertEqual((request.responseCode, b"".join(request.written)),
                         (503, b"replays are busy: try again in 4 s"))  # fmt: skip
        self.assertEqual(request.responseHeaders.getRawHeaders(b"retry-after"), [b"4"])
        # What was replayed is still served (kept), and an unknown id is still a 404.
        self.assertEqual(replays.answer("m-0")[0], 200)
        self.assertEqual(replays.answer("m-none")[0], 404)
        now[0] += 4.0
        self.assertEqual(replays.answer("m-3")[0], 200)
        self.assertEqual(replays.answer("m-4")[0], 503)

    def test_a_replay_runs_in_slices_between_the_reactors_other_work(self) -> None:
        """A long match's replay (seconds of CPU) does not stall the process's
        reactor, which runs the lobby and games too: it is made a slice at a time,
        the reactor turning between; meanwhile another replay is a 503."""
        from twisted.internet.task import Clock
        from twisted.web.server import NOT_DONE_YET
        from twisted.web.test.requesthelper import DummyRequest

        from tests.rooms.test_rooms_record import bot_match, recorded_room
        from vinom.games.arena import ArenaGame
        from vinom.games.registry import GameRegistry
        from vinom.hosting.records import RecordFiles, RecordSettings
        from vinom.server.replays import Replays

        directory = os.path.abspath(self.mktemp())
        game = ArenaGame(2)
        room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4, limit=60.0)
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        files.write("m-1", 0.0, data, closed=True)
        files.write("m-2", 0.0, data, closed=True)
        clock = Clock()
        replays = Replays(directory, GameRegistry([ArenaGame(2)]).get, reactor=clock)

        def get(match_id: str) -> DummyRequest:
            request = DummyRequest([match_id.encode()])
            request.method = b"GET"
            self.assertIs(replays.getChild(match_id.encode(), request).render(request),
                          NOT_DONE_YET)  # fmt: skip
            return request

        first = get("m-1")
        self.assertEqual(first.finished, 0)  # not made at once: a slice, then the reactor
        second = get("m-2")
        self.assertEqual((second.finished, second.responseCode), (1, 503))
        self.assertEqual(second.responseHeaders.getRawHeaders(b"retry-after"), [b"1"])
        turns = 0
        while not first.finished and turns < 10000:
            clock.advance(0.0)
            turns += 1
        self.assertEqual(first.finished, 1)
        self.assertEqual(first.responseCode, 200)
        doc = msgpack.unpackb(b"".join(first.written))
        self.assertIsNotNone(doc["end"])
        self.assertIsNone(doc["error"])
        # (As it travels: the arena's rows are tuples, which msgpack sends as arrays.)
        last = msgpack.unpackb(msgpack.packb(game.view(room.state, None)))
        self.assertEqual(doc["frames"][-1][2], last)
        self.assertEqual(get("m-2").finished, 0)  # its turn now

    def test_holding_the_slot_makes_a_replay_wait_and_serves_what_was_made(self) -> None:
        """`Replays.slot`, held by other work as a replay being made holds it: a request
        that needs a replay is a 503 with `Retry-After: 1`; a document already made
        is still served; released, the replay is made."""
        from twisted.web.test.requesthelper import DummyRequest

        from tests.rooms.test_rooms_record import REGISTRY, bot_match, recorded_room
        from vinom.hosting.records import RecordFiles, RecordSettings
        from vinom.server.replays import Replays

        directory = os.path.abspath(self.mktemp())
        game = REGISTRY.get("tictactoe")
        _room, _recorder, data = recorded_room(game, bot_match(game, 2), seed=4)
        files = RecordFiles(RecordSettings(directory=directory))
        self.addCleanup(files.close)
        files.write("m-1", 0.0, data, closed=True)
        files.write("m-2", 0.0, data, closed=True)
        replays = Replays(directory, REGISTRY.get)
        self.assertEqual((replays.answer("m-1")[0], replays.busy_for()), (200, 0))
        self.assertTrue(replays.slot.acquire().called)
        self.assertEqual(replays.busy_for(), 1)
        self.assertEqual(replays.answer("m-2"), (503, b"replays are busy: try again in 1 s"))
        request = DummyRequest([b"m-2"])
        replays.getChild(b"m-2", request).render(request)
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"retry-after"), [b"1"])
        self.assertEqual(replays.answer("m-1")[0], 200)
        replays.slot.release()
        self.assertEqual(replays.answer("m-2")[0], 200)
        self.assertFalse(replays.slot.locked)  # a replay made gives the slot back
