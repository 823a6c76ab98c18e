"""A signed-in player in the browser (docs/web.md, "Signing in", "Ratings, the
leaderboard and your matches").

On a real `twistd -n vinom --auth device --web-replays`, the page reads from
/settings.js that players sign in with a device: it makes the device identity
once (at the first visit, with the name typed) and keeps it in localStorage,
shows the account, and a reload signs in again at once as the same account.
The player queues "Ranked" against a Python bot signed in with device auth
(vinom.client), reloads the page during the match and is back in it (its
`reconnect` signed in too), plays tictactoe to the end, is shown the rating
change, finds
both players on the leaderboard (the top, and the page around them) and the
match in their history with the bot as opponent and the same change, and opens
the match's replay from the history. No console error (tests/support/browser.py
fails the test on one).

Also: what the page says before anything, after a ranked match left, at a
replay's end and under the operator's ban (`vinom accounts ban`, live and at the
next visit); and docs/getting-started.md, "Turn authentication on", to its end:
`--auth jwt` with the section's own issuer.py, two players handed their tokens
by the page's hook (the URL's fragment; the opener's postMessage, asked again
at the reconnect after a reload) signed in and playing a match.
"""
# slow: starts `twistd -n vinom` and drives Chromium (tests/support/browser.py)

from __future__ import annotations

import os
import random
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from selenium.webdriver.common.by import By
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase

from tests.server.test_web_client import (
    WAIT,
    click,
    play_tictactoe,
    wait_for_game,
    wait_for_screen,
)
from tests.support.browser import Browser, open_browser
from tests.support.doc_examples import getting_started_issuer
from tests.support.servers import ROOT, start_twistd
from tests.test_accounts_operations import RUN_CLI
from vinom.client.bots import BotDriver
from vinom.client.failover import LobbyPlayer
from vinom.client.game import GameSession, connect_game
from vinom.games.registry import GameRegistry

# What the page shows of a rating change: the shown rating (never negative), and its
# change, in whole points.
RATING_LINE = re.compile(r"^Rating (\d+) \(([+-]\d+)\)$")


async def shown(browser: Browser, script: str, *args: Any) -> Any:
    return await browser.run(lambda d: d.execute_script(script, *args))


async def account(browser: Browser) -> str:
    """The account id the top bar shows (the pill's `data-player-id`), once shown."""
    await browser.wait_until(lambda d: d.find_element(By.ID, "account").is_displayed(), WAIT)
    found = await shown(browser, "return document.getElementById('account').dataset.playerId;")
    return str(found)


async def bot_plays_ranked(server: Any, name: str) -> tuple[GameSession, str]:
    """A Python player signed in with a device of its own queues ranked tictactoe and
    plays its match to the end: its finished session and its player id."""
    auth = {"kind": "device", "device_id": "bot-" + secrets.token_hex(8),
            "secret": secrets.token_urlsafe(32)}  # fmt: skip
    player = LobbyPlayer(reactor, server.lobby, name, auth=auth)
    found = await player.find_match("tictactoe", queue="ranked")
    assert player.welcome is not None
    session = await connect_game(reactor, found)
    tictactoe = GameRegistry.from_plugins().get("tictactoe")
    driver = BotDriver(session, tictactoe.make_bot(player.welcome.player_id, random.Random(1)),
                       0.05, reactor)  # fmt: skip
    driver.attach()
    await session.finished
    driver.cancel()
    session.disconnect()
    return session, player.welcome.player_id


class SignedInPlayerTests(TestCase):
    timeout = 180

    async def test_device_sign_in_ranked_match_rating_leaderboard_history_replay(
        self,
    ) -> None:
        server = await start_twistd(self, {}, "--auth", "device", "--web-replays", web=True)
        browser = await open_browser(self)
        await browser.get(server.url)
        # First visit: the name form, saying the browser keeps the account.
        await wait_for_screen(browser, "name")
        await browser.wait_until(lambda d: d.find_element(By.ID, "name-device").is_displayed(),
                                 WAIT)  # fmt: skip

        def type_name(driver: Any) -> None:
            field = driver.find_element(By.ID, "name-input")
            field.clear()
            field.send_keys("Ann")
            driver.find_element(By.ID, "name-submit").click()

        await browser.run(type_name)
        await wait_for_screen(browser, "lobby")
        ann = await account(browser)
        self.assertRegex(ann, r"^a-")
        self.assertEqual(await browser.text_of("#account"), f"{ann} · device")
        kept = await shown(browser, "return JSON.parse(localStorage.getItem('vinom.device'));")
        self.assertRegex(kept["device_id"], r"^d-[0-9a-f]{32}$")
        self.assertRegex(kept["secret"], r"^[A-Za-z0-9_-]{43}$")

        # A return visit signs in at once, as the same account: no name asked.
        await browser.reload()
        await wait_for_screen(browser, "lobby")
        self.assertEqual(await account(browser), ann)
        self.assertEqual(await browser.text_of("#me"), "Ann")
        # Before any ranked match: an empty leaderboard and history, said so.
        await browser.wait_for_text("#history-list", "No matches yet: play a ranked one!", WAIT)
        await browser.wait_for_text("#leaderboard-list", "No ranked matches yet.", WAIT)

        # Ranked against a signed-in bot.
        bot: Deferred[tuple[GameSession, str]] = Deferred.fromCoroutine(
            bot_plays_ranked(server, "Bob")
        )
        await click(browser, '#games li[data-game="tictactoe"] [data-action="queue-ranked"]')
        await wait_for_game(browser, "tictactoe")
        match_id = await shown(
            browser, "return document.getElementById('screen-game').dataset.match;"
        )
        # A reload during the match: back in it with `reconnect`, signed in as the device.
        await browser.reload()
        await wait_for_game(browser, "tictactoe")
        self.assertEqual(await account(browser), ann)
        (outcome,) = await play_tictactoe({browser: True}, timeout=90.0)
        session, bob = await bot
        self.assertEqual(session.welcome["match"] if session.welcome else None, match_id)

        # The rating change, under the result.
        await browser.wait_until(
            lambda d: RATING_LINE.match(d.find_element(By.ID, "result-rating").text), WAIT
        )
        line = await browser.text_of("#result-rating")
        assert line is not None
        found = RATING_LINE.match(line)
        assert found is not None
        rating, change = float(found[1]), float(found[2])
        # Both new players: from 1000 (docs/accounts.md, "Ratings"), whole points.
        expected = {"win": 1206, "lose": 890, "draw": 1048}[outcome]
        self.assertEqual((rating, change), (expected, expected - 1000))

        # Back in the lobby: the leaderboard has both players, Ann marked as herself.
        await click(browser, "#play-again")
        await wait_for_screen(browser, "lobby")
        self.assertEqual(await browser.text_of("#connection"), "online")
        # The leaderboard of the game last played ranked.
        chosen = await shown(browser, "return document.getElementById('leaderboard-game').value;")
        self.assertEqual(chosen, "tictactoe")
        await browser.wait_until(lambda d: len(d.find_elements(
            By.CSS_SELECTOR, "#leaderboard-list li.entry")) == 2, WAIT)  # fmt: skip
        entries = await shown(
            browser,
            (
                "return [...document.querySelectorAll('#leaderboard-list li.entry')].map(li =>"
                " [li.dataset.rank, li.dataset.playerId, li.classList.contains('me'),"
                "  li.querySelector('.entry-rating').innerText]);"
            ),
        )
        self.assertEqual([e[0] for e in entries], ["1", "2"])
        self.assertEqual({e[1] for e in entries}, {ann, bob})
        mine = next(e for e in entries if e[1] == ann)
        self.assertEqual((mine[2], float(mine[3])), (True, rating))
        # The page around me holds me too.
        await click(browser, "#leaderboard-around")
        await browser.wait_until(lambda d: d.find_element(By.ID, "leaderboard-list")
                                 .get_attribute("data-around") == "true", WAIT)  # fmt: skip
        around = await shown(
            browser,
            (
                "return [...document.querySelectorAll('#leaderboard-list li.entry.me')]"
                ".map(li => li.dataset.playerId);"
            ),
        )
        self.assertEqual(around, [ann])

        # The history: this match, against Bob, with the same change.
        await browser.wait_until(lambda d: d.find_elements(
            By.CSS_SELECTOR, f'#history-list li[data-match-id="{match_id}"]'), WAIT)  # fmt: skip
        row = await shown(
            browser,
            (
                "const li = [...document.querySelectorAll('#history-list li')]"
                "  .find(li => li.dataset.matchId === arguments[0]);"
                "return [li.dataset.result, li.innerText,"
                "        li.querySelector('.match-change').innerText];"
            ),
            match_id,
        )
        self.assertEqual(row[0], {"win": "win", "lose": "loss", "draw": "draw"}[outcome])
        self.assertIn("vs Bob", row[1])
        self.assertEqual(row[2], f"{found[2]} (rating {found[1]})")

        # Its replay, opened from the history.
        await click(browser, f'#history-list li[data-match-id="{match_id}"] [data-action="replay"]')
        await wait_for_game(browser, "tictactoe")
        flags = await shown(
            browser,
            (
                "const s = document.getElementById('screen-game').dataset;"
                "return [s.replay, s.match];"
            ),
        )
        self.assertEqual(flags, ["true", match_id])
        await browser.check()

    async def test_a_private_match_that_nobody_may_watch_replays_for_its_own_player(
        self,
    ) -> None:
        """A private room's match lets nobody watch, and so nobody replay it, but its
        own players: the signed-in page asks its replay with the player's credentials
        (`Authorization: Vinom ...`) and is shown it; asked without them, the same
        URL is the 404 of no such match."""
        server = await start_twistd(self, {}, "--auth", "device", "--web-replays", web=True)
        browser = await open_browser(self)
        await browser.get(server.url)
        await wait_for_screen(browser, "name")

        def type_name(driver: Any) -> None:
            driver.find_element(By.ID, "name-input").send_keys("Ann")
            driver.find_element(By.ID, "name-submit").click()

        await browser.run(type_name)
        await wait_for_screen(browser, "lobby")
        await account(browser)
        await click(browser, '[data-action="create-private"][data-game="tictactoe"]')
        await wait_for_screen(browser, "room")
        await click(browser, "#room-add-bot")
        await wait_for_game(browser, "tictactoe")
        match_id = await shown(
            browser, "return document.getElementById('screen-game').dataset.match;"
        )
        await play_tictactoe({browser: True}, timeout=90.0)
        await click(browser, "#play-again")
        await wait_for_screen(browser, "lobby")

        # Anonymous, the replay is no match's.
        status = await browser.run(lambda d: d.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch('/replays/' + arguments[0]).then(r => done(r.status));", match_id
        ))  # fmt: skip
        self.assertEqual(status, 404)
        problems = await browser.collect()
        self.assertEqual(len(problems), 1, problems)
        self.assertIn(f"replays/{match_id} - Failed to load resource", problems[0])
        browser.problems.clear()  # that request's, seen: the rest of the test has none

        # Signed in, the page opens it.
        def ask_replay(driver: Any) -> None:
            driver.find_element(By.ID, "replay-input").send_keys(match_id)
            driver.find_element(By.ID, "replay-start").click()

        await browser.wait_until(lambda d: d.find_element(By.ID, "replay-form").is_displayed(),
                                 WAIT)  # fmt: skip
        await browser.run(ask_replay)
        await wait_for_game(browser, "tictactoe")
        flags = await shown(browser, (
            "const s = document.getElementById('screen-game').dataset;"
            "return [s.replay, s.match];"
        ))  # fmt: skip
        self.assertEqual(flags, ["true", match_id])
        await browser.check()


# What the page's "Link" says when no link to a game server is open.
NO_LINK = "\N{EN DASH}"


class WhatThePageSaysTests(TestCase):
    """The page's word at each turn of a signed-in player's story: before anything
    happened, after leaving a ranked match, at a replay's end, and when the operator's
    ban refuses the sign-in."""

    timeout = 180

    async def test_badge_leaver_rating_replay_end_and_ban(self) -> None:
        server = await start_twistd(self, {}, "--auth", "device", "--web-replays", web=True)
        browser = await open_browser(self)
        await browser.get(server.url)
        await wait_for_screen(browser, "name")
        # Nothing happened yet: not connected, which is no failure.
        badge = ("const b = document.getElementById('connection');"
                 "return [b.dataset.state, b.innerText];")
        self.assertEqual(await shown(browser, badge), ["idle", "not connected"])

        def type_name(driver: Any) -> None:
            driver.find_element(By.ID, "name-input").send_keys("Ann")
            driver.find_element(By.ID, "name-submit").click()

        await browser.run(type_name)
        await wait_for_screen(browser, "lobby")
        ann = await account(browser)
        self.assertEqual(await shown(browser, badge), ["online", "online"])

        # Ranked against a bot; Ann leaves at once: a loss, and her rating line says so.
        bot: Deferred[tuple[GameSession, str]] = Deferred.fromCoroutine(
            bot_plays_ranked(server, "Bob")
        )
        await click(browser, '#games li[data-game="tictactoe"] [data-action="queue-ranked"]')
        await wait_for_game(browser, "tictactoe")
        await browser.wait_for_text("#game-transport", "WebSocket", WAIT)
        match_id = await shown(
            browser, "return document.getElementById('screen-game').dataset.match;"
        )
        await click(browser, "#game-leave")
        await browser.wait_for_text("#result-text", "You left the match.", WAIT)
        await bot
        await browser.wait_for_text("#result-rating", "Rating 890 (-110)", WAIT)

        # Its replay, to the end: no "Play again" (the replay has its Back), and no link
        # left over from the live match.
        await click(browser, "#play-again")
        await wait_for_screen(browser, "lobby")
        replay = f'#history-list li[data-match-id="{match_id}"] [data-action="replay"]'
        await browser.wait_until(lambda d: d.find_elements(By.CSS_SELECTOR, replay), WAIT)
        await click(browser, replay)
        await wait_for_game(browser, "tictactoe")
        self.assertEqual(await browser.text_of("#game-transport"), NO_LINK)
        await browser.wait_until(
            lambda d: d.find_element(By.ID, "result-panel").is_displayed(), WAIT
        )
        self.assertFalse(await shown(
            browser, "return document.getElementById('play-again').checkVisibility();"
        ))  # fmt: skip
        self.assertEqual(await browser.text_of("#game-transport"), NO_LINK)

        # The operator bans Ann for a day (the real CLI, beside the server) while she is
        # in the lobby: told why and until when; so is her next visit, and the badge
        # says she is not online.
        await click(browser, "#replay-close")
        await wait_for_screen(browser, "lobby")
        out, err, code = await getProcessOutputAndValue(
            sys.executable, ["-c", RUN_CLI, "accounts", "ban", ann, "--reason", "cheating",
                             "--duration", "1d", "--data-dir", server.data_dir],
            env={**os.environ, "PYTHONPATH": ROOT},
        )  # fmt: skip
        self.assertEqual((code, err), (0, b""), out)
        banned_at = time.time()
        ban = re.compile(r"This account is banned\. Reason: cheating\. The ban ends "
                         r"(\d{4}-\d\d-\d\d \d\d:\d\d) UTC\.")  # fmt: skip

        async def told() -> None:
            await browser.wait_until(lambda d: ban.fullmatch(
                d.find_element(By.ID, "notice-text").text), WAIT)  # fmt: skip
            notice = await browser.text_of("#notice-text")
            said = ban.fullmatch(notice or "")
            assert said is not None, notice
            ends = datetime.strptime(said[1], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            self.assertLess(abs(ends.timestamp() - (banned_at + 86400)), 180)

        await told()
        self.assertEqual(await shown(browser, badge), ["offline", "offline: banned"])
        await browser.reload()
        await wait_for_screen(browser, "name")
        await told()
        self.assertEqual(await shown(browser, badge), ["offline", "offline: sign-in refused"])
        await browser.check()


# A studio's page that opened the game's page (window.open) and hands it a token each
# time it asks (docs/web.md, "Signing in with a token"): the tokens it has left in
# `tokens`, how often it was asked in `asked`.
STUDIO = """
window.asked = 0;
window.tokens = [];
addEventListener('message', (event) => {
  if (!event.data || event.data.type !== 'vinom.token_wanted') return;
  window.asked += 1;
  event.source.postMessage({type: 'vinom.token', token: window.tokens.shift()}, '*');
});
window.open(arguments[0], 'game');
"""


class TokenSignInTests(TestCase):
    """docs/getting-started.md, "Turn authentication on", to its end: a real
    `twistd -n vinom --auth jwt` trusting the keys of the section's own issuer.py,
    and two players signed in in the browser by the page's hook."""

    timeout = 180

    def issuer(self) -> tuple[dict[str, Any], str]:
        """The section's issuer (its keys made in a directory of the test's), and that
        directory: the issuer works in the current one, as the section runs it."""
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        issuer = getting_started_issuer()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(directory)
        issuer["make_keys"]()
        return issuer, directory

    async def test_two_players_handed_jwts_sign_in_and_play_a_match(self) -> None:
        issuer, directory = self.issuer()
        server = await start_twistd(
            self, {}, "--auth", "jwt", "--auth-key-file", os.path.join(directory, "jwks.json"),
            "--auth-issuer", "https://issuer.localhost/", "--auth-audience", "my-game", web=True,
        )  # fmt: skip
        ann, bob = await open_browser(self), await open_browser(self)

        # Ann: the studio's sign-in sends her to the page with the token in the fragment.
        await ann.get(f"{server.url}#token={issuer['token']('ann')}")  # type: ignore[operator]
        await wait_for_screen(ann, "lobby")
        self.assertEqual(await ann.text_of("#me"), "Ann")
        ann_id = await account(ann)
        self.assertEqual(await ann.text_of("#account"), f"{ann_id} · jwt")
        # Out of the address bar, kept for the tab.
        where = await shown(ann, "return [location.href, sessionStorage.getItem('vinom.token')];")
        self.assertEqual(where[0], server.url)
        self.assertEqual(where[1].count("."), 2)

        # Bob: the studio's page opens the game's and answers its asks: each sign-in
        # (the first, the reconnect after a reload) asks it for a fresh token.
        await bob.get("about:blank")
        studio = bob.driver.current_window_handle

        def open_game(driver: Any) -> None:
            driver.execute_script(STUDIO, server.url)
            driver.execute_script("window.tokens.push(arguments[0]);",
                                  issuer["token"]("bob"))  # fmt: skip
            game = next(h for h in driver.window_handles if h != studio)
            driver.switch_to.window(game)

        # The token is in place before the page (asked within 10 s) is answered.
        await bob.run(open_game)
        await wait_for_screen(bob, "lobby")
        self.assertEqual(await bob.text_of("#me"), "Bob")
        bob_id = await account(bob)
        self.assertNotEqual(bob_id, ann_id)

        await click(ann, '[data-action="queue"][data-game="tictactoe"]')
        await click(bob, '[data-action="queue"][data-game="tictactoe"]')
        await wait_for_game(ann, "tictactoe")
        await wait_for_game(bob, "tictactoe")

        # Bob reloads during the match: its `reconnect` signs in with a fresh token.
        def hand_another(driver: Any) -> None:
            game = driver.current_window_handle
            driver.switch_to.window(studio)
            driver.execute_script("window.tokens.push(arguments[0]);",
                                  issuer["token"]("bob"))  # fmt: skip
            driver.switch_to.window(game)

        await bob.run(hand_another)
        await bob.reload()
        await wait_for_game(bob, "tictactoe")
        self.assertEqual(await account(bob), bob_id)
        outcomes = await play_tictactoe({ann: True, bob: False}, timeout=90.0)
        self.assertEqual(len(outcomes), 2)

        def asked(driver: Any) -> Any:
            game = driver.current_window_handle
            driver.switch_to.window(studio)
            found = driver.execute_script("return [window.asked, window.tokens.length];")
            driver.switch_to.window(game)
            return found

        self.assertEqual(await bob.run(asked), [2, 0])
        for page in (ann, bob):
            await page.check()
