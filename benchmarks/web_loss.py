"""Browsers under packet loss: the gap between consecutive arena states, WebTransport
against WebSocket (docs/performance.md, "Browsers under loss").

Run as root in a network namespace of its own, so that the loss touches
nothing else on the machine:

    unshare -n python -m benchmarks.web_loss [--loss 0.05] [--seconds 30]

It brings the namespace's loopback up and drops `--loss` of the packets to
and from the web server's TCP port and the WebTransport UDP port with
iptables' `statistic` match (the kernel here has no `netem`), in both
directions, at random. Then, once with `--webtransport` and once without,
it starts `twistd vinom` with the arena (benchmarks.arena, 20 ticks a
second, two players: `--match-size arena=2`) and two headless Chromium
pages that queue for it and play (the generic board draws each state);
each page records when every state reaches its GameSocket (a `state`, or a
`snap` rebuilt as one), and the gaps between consecutive ones over
`--seconds` are pooled: p50, p99, max. With no loss the gap is the tick
(50 ms); a lost datagram makes one gap of two ticks over WebTransport,
while over TCP a lost segment holds every later state back until it is
resent (a retransmission timeout, 200 ms or more on Linux).

Needs Debian's chromium, chromium-driver and iptables, and selenium.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
QUEUE = '[data-action="queue"][data-game="arena"]'
PLUGIN = "from benchmarks.arena import ArenaGame\n\narena = ArenaGame()\n"
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


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def drop(loss: float, web: int, udp: int) -> None:
    """Drop `loss` of the packets to and from the two ports, at random."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["iptables", "-F", "INPUT"], check=True)
    if loss <= 0:
        return
    for proto, port in (("tcp", web), ("udp", udp)):
        for way in ("--dport", "--sport"):
            subprocess.run(["iptables", "-A", "INPUT", "-i", "lo", "-p", proto, way, str(port),
                            "-m", "statistic", "--mode", "random", "--probability", str(loss),
                            "-j", "DROP"], check=True)  # fmt: skip


def chromium(profile: str) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--user-data-dir={profile}", "--no-first-run", "--disable-gpu"):  # fmt: skip
        options.add_argument(argument)
    options.accept_insecure_certs = True
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def play(webtransport: bool, loss: float, seconds: float) -> dict[str, Any]:
    tcp, datagram = socket.SOCK_STREAM, socket.SOCK_DGRAM
    web, udp, lobby, games = (free_port(tcp), free_port(datagram), free_port(tcp),
                              free_port(datagram))  # fmt: skip
    work = tempfile.mkdtemp(prefix="web-loss-")
    plugins = Path(work, "twisted", "plugins")
    plugins.mkdir(parents=True)
    (plugins / "arena_game.py").write_text(PLUGIN)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(ROOT), work)))
    command = [
        sys.executable, "-c",
        "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()",
        "-n", "--pidfile=", "vinom", "--lobby", f"ssl:{lobby}:interface=127.0.0.1",
        "--websocket", f"ssl:{web}:interface=127.0.0.1", "--udp-ports", f"{games}-{games}",
        "--udp-interface", "127.0.0.1", "--public-host", "127.0.0.1", "--data-dir", work,
        "--ops-port", "none", "--games", "arena", "--match-size", "arena=2",
        "--host-workers", "0", "--drain-timeout", "0",
        *(("--webtransport", str(udp)) if webtransport else ()),
    ]  # fmt: skip
    # The plugin caches made first (docs/operations.md, "Running"): a twistd that
    # makes them itself, here, read the vinom plugin of the shared editable install.
    subprocess.run([sys.executable, "-c", "from twisted.plugin import IPlugin, getPlugins; "
                    "list(getPlugins(IPlugin))"], env=env, cwd=work, check=True)  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)  # fmt: skip
    pages: list[webdriver.Chrome] = []
    try:
        deadline = time.monotonic() + 30
        assert server.stdout is not None
        said = b""
        while b"play in a browser" not in said:
            line = server.stdout.readline()
            said += line
            if time.monotonic() > deadline or (not line and server.poll() is not None):
                raise SystemExit("twistd did not start:\n" + said.decode(errors="replace"))
        drop(loss, web, udp)
        url = f"https://127.0.0.1:{web}/"
        for name in ("Ann", "Bob"):
            page = chromium(tempfile.mkdtemp(prefix="web-loss-profile-"))
            pages.append(page)
            page.set_script_timeout(30)
            page.get(url)
            wait = WebDriverWait(page, 60, poll_frequency=0.1)
            wait.until(lambda d: d.find_elements(By.ID, "name-input"))
            page.find_element(By.ID, "name-input").send_keys(name)
            page.find_element(By.ID, "name-submit").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, QUEUE))
            assert page.execute_async_script(WATCH) is True
            page.find_element(By.CSS_SELECTOR, QUEUE).click()
        for page in pages:
            WebDriverWait(page, 60, poll_frequency=0.1).until(lambda d: d.execute_script(
                "return document.getElementById('game-phase').dataset.phase;") == "playing")
        time.sleep(2)  # past the opening
        starts = [page.execute_script("return window.__arrivals.length;") for page in pages]
        time.sleep(seconds)
        gaps: list[float] = []
        kinds = []
        for page, start in zip(pages, starts, strict=True):
            arrivals = page.execute_script("return window.__arrivals;")[start:]
            gaps += [b - a for a, b in itertools.pairwise(arrivals)]
            kinds.append(page.execute_script(
                "return document.getElementById('game-transport').dataset.kind;"))
        gaps.sort()
        return {
            "transport": kinds, "loss": loss, "seconds": seconds, "states": len(gaps) + 2,
            "gap_ms_p50": round(gaps[len(gaps) // 2], 1),
            "gap_ms_p99": round(gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))], 1),
            "gap_ms_max": round(gaps[-1], 1),
        }
    finally:
        for page in pages:
            page.quit()
        server.terminate()
        server.wait(10)
        subprocess.run(["iptables", "-F", "INPUT"], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    for webtransport in (True, False):
        print(json.dumps(play(webtransport, args.loss, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
