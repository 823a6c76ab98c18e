"""Test helper: a real headless Chromium, driven by selenium, for the browser tests.

The browser and its driver are Debian's `chromium` and `chromium-driver`
(scripts/test installs them on a fresh machine). Selenium is pointed at both
binaries explicitly, so Selenium Manager never runs and nothing is downloaded
when a test runs. A missing browser fails the test with the command that
installs it: a browser test is never skipped.

Selenium's calls block. trial runs every test inside the Twisted reactor and
the servers under test run in that same reactor (tests/support/servers.py), so each
selenium call goes to a thread (`Browser.run`, `deferToThread`) and the
reactor keeps serving the page while the browser waits for it. Keeping the
server in the test process (rather than in a `twistd` child, as
tests/server/test_twistd.py does) lets a test start bots and look at the services
directly while the browser looks at the page.

The dashboard is plain HTTP on loopback, but the web server's pages are TLS
with the self-signed dev certificate (vinom/server/certs.py): the browser is started
with `acceptInsecureCerts`, the WebDriver way of trusting a certificate no CA
signed, so the same helper opens both. It is a test browser with a throwaway
profile: nothing it accepts outlives the test.

What a player would see go wrong fails the test, at any point of it, not
only at page load: every page gets, before its own scripts, a watcher
(`WATCH`) that records Content-Security-Policy violations
(`securitypolicyviolation`), uncaught errors and failed loads, and unhandled
promise rejections; `Browser.check()` reads that record and Chromium's
console log (`get_log("browser")`, every SEVERE entry: console.error,
refused resources, policy violations) and fails on anything in either. It
runs before each navigation (`get`, `reload`) and at the end of every test
(`open_browser` registers it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TypeVar

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install -y --no-install-recommends chromium chromium-driver"

_T = TypeVar("_T")

# Installed in every document before its scripts run (DevTools, so the page's
# own policy does not apply to it): what went wrong, in words.
WATCH = """
window.__vinomProblems = [];
const note = (text) => window.__vinomProblems.push(text);
addEventListener('securitypolicyviolation', (e) => note(
  `CSP ${e.violatedDirective} refused ${e.blockedURI || 'an inline resource'}`
  + ` at ${e.sourceFile || location.href}:${e.lineNumber}`));
addEventListener('error', (e) => note(e.target !== window && e.target && e.target.tagName
  ? `failed to load <${e.target.tagName.toLowerCase()}> ${e.target.src || e.target.href || ''}`
  : `uncaught ${e.message} at ${e.filename}:${e.lineno}`), true);
addEventListener('unhandledrejection', (e) => note(`unhandled rejection: ${e.reason}`));
"""


def check_chromium() -> None:
    """Fail (never skip) with what to install when Chromium or its driver is missing."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        raise AssertionError(
            f"the browser tests need Debian's Chromium and its WebDriver; {', '.join(missing)} "
            f"missing: run scripts/test (it installs them), or `{INSTALL}`"
        )


def start_chromium(profile: str, width: int, height: int) -> webdriver.Chrome:
    """A headless Chromium (blocking: call it in a thread) with its profile in `profile`
    and a viewport of `width` x `height` CSS pixels."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        # Root in a container has no user namespace for Chromium's sandbox.
        "--no-sandbox",
        # /dev/shm is tiny in containers; Chromium crashes when it fills.
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-gpu",
    ):
        options.add_argument(argument)
    options.accept_insecure_certs = True  # the self-signed dev certificate (docstring)
    # Keep the page's console, so a test can read it with driver.get_log("browser").
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": WATCH})
    # The page's viewport is width x height exactly (--window-size is the window,
    # whose frame takes some of it): "visible at 1280 x 720" means that viewport.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


def page_problems(driver: webdriver.Chrome) -> list[str]:
    """What went wrong since the last call (blocking): the page's watcher's record
    (then emptied) and the SEVERE entries of Chromium's console log (which
    get_log drains)."""
    found = driver.execute_script(
        "const seen = window.__vinomProblems || []; window.__vinomProblems = []; return seen;"
    )
    problems = [str(text) for text in found or []]
    problems += [
        f"console: {entry['message']}"
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE"
    ]
    return problems


class Browser:
    """A headless Chromium for one test; its calls run in a thread (module docstring)."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver
        # Problems already read from the page (an earlier document's, before a navigation).
        self.problems: list[str] = []
        # Console entries the test's own scenario makes Chromium log (`expect`).
        self.expected: list[re.Pattern[str]] = []

    def expect(self, entry: re.Pattern[str]) -> None:
        """An entry Chromium logs because of what the test does to the network (UDP
        that nobody reads: its QUIC handshake times out), which no page can keep out of
        the console: it is no problem. Every other entry still fails the test."""
        self.expected.append(entry)

    async def collect(self) -> list[str]:
        """Every problem seen so far (module docstring), without failing."""
        found = await self.run(page_problems)
        self.problems += [p for p in found
                          if not any(e.fullmatch(p) for e in self.expected)]  # fmt: skip
        return list(self.problems)

    async def check(self) -> None:
        """Fail if the page showed a policy violation, an error or a failed load."""
        problems = await self.collect()
        if problems:
            raise AssertionError("the page went wrong:\n" + "\n".join(problems))

    async def run(self, call: Callable[[webdriver.Chrome], _T]) -> _T:
        """`call(driver)` in a thread, the reactor serving meanwhile."""
        return await deferToThread(call, self.driver)

    async def get(self, url: str) -> None:
        """Open `url`, after reading the current page's problems (a new page forgets them)."""
        await self.collect()
        await self.run(lambda driver: driver.get(url))

    async def reload(self) -> None:
        await self.collect()
        await self.run(lambda driver: driver.refresh())

    async def wait_until(
        self, condition: Callable[[webdriver.Chrome], _T], timeout: float = 10.0
    ) -> _T:
        """Poll `condition(driver)` (in the thread) until it returns something true.

        On a timeout the failure says what the page shows (its screen, its text)
        and what went wrong in it, so that a failure seen once can be read."""
        try:
            return await self.run(
                lambda driver: WebDriverWait(driver, timeout, poll_frequency=0.1).until(condition)
            )
        except TimeoutException:
            shown = await self.run(lambda driver: driver.execute_script(_SHOWN_SCRIPT))
            problems = await self.collect()
            raise AssertionError(
                f"waited {timeout:g} s in vain; the page shows {shown!r}; "
                f"problems: {problems or 'none'}"
            ) from None

    async def text_of(self, css: str) -> str | None:
        """The rendered text of the first element `css` selects now (None: there is none)."""
        return await self.run(lambda driver: _read_text(driver, css))

    async def wait_for_text(self, css: str, expected: str, timeout: float = 10.0) -> None:
        """Wait until the first element `css` selects reads `expected`."""
        await self.wait_until(lambda driver: _read_text(driver, css) == expected, timeout)


# What a page shows, for a failure's message: its screen and the start of its text.
_SHOWN_SCRIPT = """
return {screen: document.body.dataset.screen || null,
        text: document.body.innerText.slice(0, 600)};
"""


# Read in one script call: a page that redraws every second may replace an
# element between a find_element and a .text (a stale element reference).
_TEXT_SCRIPT = """
const found = document.querySelector(arguments[0]);
return found === null ? null : found.innerText;
"""


def _read_text(driver: webdriver.Chrome, css: str) -> str | None:
    text = driver.execute_script(_TEXT_SCRIPT, css)
    return None if text is None else str(text)


async def open_browser(case: TestCase, *, width: int = 1280, height: int = 900) -> Browser:
    """Start headless Chromium with a temporary profile; it quits at the test's cleanup."""
    check_chromium()
    # A fresh profile under the test's own temporary directory: no state between tests.
    profile = os.path.abspath(case.mktemp())
    os.makedirs(profile)
    driver = await deferToThread(start_chromium, profile, width, height)
    browser = Browser(driver)
    case.addCleanup(lambda: deferToThread(driver.quit))
    # Before the quit (cleanups run last first): the whole test, start to end.
    case.addCleanup(lambda: Deferred.fromCoroutine(browser.check()))
    return browser
