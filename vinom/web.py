"""The public web server: one twisted.web `Site` for browsers, on `--websocket` (TLS, 7380).

| path | what |
|---|---|
| `/lobby` | the lobby over WebSocket (`vinom.lobby.websocket`); not on a game host |
| `/game` | the game session over WebSocket (`vinom.web_game`), where games are hosted |
| `/` | a short page saying the web client is coming (the web client will be served here) |
| anything else | 404 |

The site is built for more to come under it (the web client's static
files at `/`, a dashboard): each is a
child resource of the root. Idle HTTP connections (before a WebSocket
upgrade, or between requests) close after `timeout` seconds.
"""

from __future__ import annotations

from autobahn.twisted.resource import WebSocketResource
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.web_game import GameSocketFactory

COMING_SOON = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>vinom</title></head>
<body>
<h1>vinom</h1>
<p>The web client is coming. Browsers and other WebSocket clients can already
talk to the lobby at <code>wss://this-host/lobby</code> and play at
<code>wss://this-host/game</code> (docs/web.md).</p>
</body>
</html>
"""


class _Page(Resource):
    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self._body = body

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"x-content-type-options", b"nosniff")
        return self._body


def web_site(
    lobby: WebSocketLobbyFactory | None,
    game: GameSocketFactory | None = None,
    *,
    timeout: float,
) -> Site:
    """The public site: the WebSocket lobby at `/lobby` (None: a game host's site,
    without it), the game session over WebSocket at `/game`, a placeholder page at `/`."""
    root = Resource()
    root.putChild(b"", _Page(COMING_SOON))
    if lobby is not None:
        root.putChild(b"lobby", WebSocketResource(lobby))
    if game is not None:
        root.putChild(b"game", WebSocketResource(game))
    site = Site(root, timeout=timeout)
    site.noisy = False
    return site
