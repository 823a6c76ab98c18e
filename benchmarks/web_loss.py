"""Browsers under packet loss: the gap between consecutive arena states, WebTransport
against WebSocket (benchmarks/README.md, "Browsers under loss").

Run as root (it makes two network namespaces, and nothing outside them sees
the loss):

    python -m benchmarks.web_loss [--loss 0.05] [--rtt 0.1] [--seconds 30]

The server runs in one namespace and the browsers in the other; each has a
TUN device, and this process carries every IP packet from one to the other
after half of `--rtt`, dropping `--loss` of them at random, in both
directions (a link emulator in user space: the kernel here has no `netem`).
Then, once with `--webtransport` and once without, it starts `twistd vinom`
with the built-in arena (vinom.games.arena, 20 ticks a second, two
players) and two headless Chromium pages that queue for it and
play (the generic board draws each state); each page records when every
state reaches its GameSocket (a `state`, or a `snap` rebuilt as one), and
the gaps between consecutive ones over `--seconds` are pooled: p50, p99,
max. With no loss the gap is the tick (50 ms); a lost datagram makes one gap
of two ticks over WebTransport, while over TCP a lost segment holds every
later state back until it is resent, a round trip or more later.

Needs Debian's chromium, chromium-driver and iproute2, and selenium.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import heapq
import itertools
import json
import os
import random
import select
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
QUEUE = '[data-action="queue"][data-game="arena"]'
# Installed before the page queues: when each state reaches the GameSocket.
WATCH = """
const done = arguments[arguments.length - 1];
import('/game.js').then((g) => {
  window.__arrivals = [];
  const receive = g.GameSocket.prototype.receive;
  g.GameSocket.prototype.receive = function (message) {
    if (message.t === 'state' || message.t === 'snap') window.__arrivals.push(performance.now());
    return receive.call(this, message);
  };
  done(true);
}, (e) => done(String(e)));
"""


SERVER_NS, CLIENT_NS = f"vinom-s-{os.getpid()}", f"vinom-c-{os.getpid()}"
SERVER_IP, CLIENT_IP = "10.71.0.2", "10.71.0.1"
LOBBY, WEB, WEBTRANSPORT, GAMES = 7350, 7380, 7381, 7400
_CLONE_NEWNET = 0x40000000
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000


def run(*command: str) -> None:
    subprocess.run(command, check=True)


def tun_in(namespace: str) -> int:
    """A TUN device `tun0` in `namespace` (this thread enters it to open it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(there, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        fd = os.open("/dev/net/tun", os.O_RDWR)
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH22x", b"tun0", _IFF_TUN | _IFF_NO_PI))
    finally:
        libc.setns(own, _CLONE_NEWNET)
        os.close(own)
        os.close(there)
    return fd


class Link:
    """Two namespaces joined by a lossy, delayed link that this process carries."""

    def __init__(self, loss: float, rtt: float, seed: int = 37) -> None:
        self.loss, self.delay = loss, rtt / 2
        self.rng = random.Random(seed)
        self.carried = self.dropped = 0
        self.running = True

    def __enter__(self) -> Link:
        for namespace in (SERVER_NS, CLIENT_NS):
            run("ip", "netns", "add", namespace)
            run("ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up")
        self.server_fd, self.client_fd = tun_in(SERVER_NS), tun_in(CLIENT_NS)
        for namespace, me, peer in ((SERVER_NS, SERVER_IP, CLIENT_IP),
                                    (CLIENT_NS, CLIENT_IP, SERVER_IP)):  # fmt: skip
            run("ip", "netns", "exec", namespace, "ip", "addr", "add", me, "peer", peer,
                "dev", "tun0")  # fmt: skip
            run("ip", "netns", "exec", namespace, "ip", "link", "set", "tun0", "up")
        self.thread = threading.Thread(target=self.carry, daemon=True)
        self.thread.start()
        return self

    def carry(self) -> None:
        waiting: list[tuple[float, int, int, bytes]] = []
        order = itertools.count()
        ends = {self.server_fd: self.client_fd, self.client_fd: self.server_fd}
        while self.running:
            now = time.monotonic()
            timeout = 0.05 if not waiting else max(0.0, waiting[0][0] - now)
            ready, _, _ = select.select(list(ends), [], [], timeout)
            for fd in ready:
                packet = os.read(fd, 65535)
                if self.rng.random() < self.loss:
                    self.dropped += 1
                    continue
                self.carried += 1
                heapq.heappush(waiting, (time.monotonic() + self.delay, next(order),
                                         ends[fd], packet))  # fmt: skip
            now = time.monotonic()
            while waiting and waiting[0][0] <= now:
                _, _, out, packet = heapq.heappop(waiting)
                with contextlib.suppress(OSError):
                    os.write(out, packet)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join(2)
        os.close(self.server_fd)
        os.close(self.client_fd)
        for namespace in (SERVER_NS, CLIENT_NS):
            subprocess.run(["ip", "netns", "del", namespace], check=False)


def chromium(profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--user-data-dir={profile}", "--no-first-run", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    options.accept_insecure_certs = True
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def pages(url: str, seconds: float) -> dict[str, Any]:
    """Two pages play the arena at `url` (run in the browsers' namespace)."""
    opened: list[webdriver.Chrome] = []
    try:
        for name in ("Ann", "Bob"):
            page = chromium(tempfile.mkdtemp(prefix="web-loss-profile-"))
            opened.append(page)
            page.set_script_timeout(60)
            page.get(url)
            wait = WebDriverWait(page, 120, poll_frequency=0.1)
            wait.until(lambda d: d.find_elements(By.ID, "name-input"))
            page.find_element(By.ID, "name-input").send_keys(name)
            page.find_element(By.ID, "name-submit").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, QUEUE))
            assert page.execute_async_script(WATCH) is True
            page.find_element(By.CSS_SELECTOR, QUEUE).click()
        for page in opened:
            WebDriverWait(page, 120, poll_frequency=0.1).until(lambda d: d.execute_script(
                "return document.getElementById('game-phase').dataset.phase;") == "playing")
        time.sleep(2)  # past the opening
        starts = [page.execute_script("return window.__arrivals.length;") for page in opened]
        time.sleep(seconds)
        gaps: list[float] = []
        kinds = []
        for page, start in zip(opened, starts, strict=True):
            arrivals = page.execute_script("return window.__arrivals;")[start:]
            gaps += [b - a for a, b in itertools.pairwise(arrivals)]
            kinds.append(page.execute_script(
                "return document.getElementById('game-transport').dataset.kind;"))
        gaps.sort()
        return {
            "transport": kinds, "seconds": seconds, "gaps": len(gaps),
            "gap_ms_p50": round(gaps[len(gaps) // 2], 1),
            "gap_ms_p99": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 1),
            "gap_ms_max": round(gaps[-1], 1),
        }
    finally:
        for page in opened:
            page.quit()


def play(webtransport: bool, loss: float, rtt: float, seconds: float) -> dict[str, Any]:
    work = tempfile.mkdtemp(prefix="web-loss-")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [
        "ip", "netns", "exec", SERVER_NS, sys.executable, "-c",
        "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
        "-n", "--pidfile=", "vinom", "--lobby", f"ssl:{LOBBY}:interface={SERVER_IP}",
        "--websocket", f"ssl:{WEB}:interface={SERVER_IP}", "--udp-ports", f"{GAMES}-{GAMES}",
        "--udp-interface", SERVER_IP, "--public-host", SERVER_IP, "--data-dir", work,
        "--ops-port", "none", "--games", "arena",
        "--matches", "here", "--limit", "drain-timeout=0",
        *(("--webtransport", str(WEBTRANSPORT)) if webtransport else ()),
    ]  # fmt: skip
    # The plugin caches made first (docs/operations.md, "Running"): a twistd that
    # makes them itself, here, read the vinom plugin of the shared editable install.
    subprocess.run([sys.executable, "-c", "from twisted.plugin import IPlugin, getPlugins; "
                    "list(getPlugins(IPlugin))"], env=env, cwd=work, check=True)  # fmt: skip
    with Link(loss, rtt) as link:
        server = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            assert server.stdout is not None
            said = b""
            while b"play in a browser" not in said:
                line = server.stdout.readline()
                said += line
                if time.monotonic() > deadline or (not line and server.poll() is not None):
                    raise SystemExit("twistd did not start:\n" + said.decode(errors="replace"))
            browsers = subprocess.run(
                ["ip", "netns", "exec", CLIENT_NS, sys.executable, "-m", "benchmarks.web_loss",
                 "--pages", f"https://{SERVER_IP}:{WEB}/", "--seconds", str(seconds)],
                env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=str(ROOT), check=True,
                capture_output=True, text=True,
            )  # fmt: skip
            result = json.loads(browsers.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
            server.wait(10)
        total = link.carried + link.dropped
        return {**result, "loss": loss, "rtt_ms": rtt * 1000,
                "observed_loss": round(link.dropped / max(1, total), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--rtt", type=float, default=0.1, help="seconds")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--pages", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pages:
        print(json.dumps(pages(args.pages, args.seconds)), flush=True)
        return
    for webtransport in (True, False):
        print(json.dumps(play(webtransport, args.loss, args.rtt, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
