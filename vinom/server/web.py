"""The public web server: one twisted.web `Site` for browsers, on `--websocket` (TLS, 7380).

| path | what |
|---|---|
| `/lobby` | the lobby over WebSocket (`vinom.lobby.websocket`, docs/web.md); not on a game host |
| `/game` | the game session over WebSocket (`vinom.hosting.websocket`), where games are hosted |
| `/` | the web client: `index.html` and its files, shipped in vinom/webclient/ |
| `/boards.js` | the list of games with a board module (`BoardList`) |
| anything else | 404 |

The web client is static (HTML, CSS and JavaScript modules, no build step),
served from the package directory as files; `/lobby` and `/game` are child
resources of the same root. Idle HTTP connections (before a WebSocket
upgrade, or between requests) close after `timeout` seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from twisted.web.resource import IResource, NoResource, Resource
from twisted.web.server import Request
from twisted.web.static import File

from vinom.hosting.websocket import GameSocketFactory
from vinom.lobby.websocket import WebSocketLobbyFactory
from vinom.server.logs import Site

# The client's page, style, shell and board modules (setup.py package_data).
WEB_CLIENT_FILES = Path(__file__).parent.parent / "webclient"

# The only files served, by extension, with the type a browser needs for each
# (a module script must be JavaScript; nosniff forbids guessing).
WEB_CLIENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}

# Everything the page loads is its own; its WebSockets may go to another host
# when match_found names a game URL there.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; connect-src 'self' wss:; img-src 'self' data:; "
    b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


class ReadOnlyRequest(Request):
    """A request of a site that only serves (both of vinom's): a method other than GET
    and HEAD (a WebSocket upgrade is a GET) is answered 405, where twisted.web would
    answer one it does not know (PUT, FOO, ...) with a 5xx (501 Not Implemented)."""

    def process(self) -> None:
        if self.method in (b"GET", b"HEAD"):
            super().process()
            return
        self.setResponseCode(405)
        self.setHeader(b"allow", b"GET, HEAD")
        self.setHeader(b"content-type", b"text/plain")
        self.write(b"method not allowed\n")
        self.finish()


class WebClientFiles(File):
    """The web client's directory: its files by the types above, no listings, nothing else."""

    contentTypes = WEB_CLIENT_TYPES
    childNotFound = NoResource("no such file")

    def directoryListing(self) -> IResource:
        return self.childNotFound

    def getChild(self, path: bytes, request: Request) -> Any:
        # Names no file of ours can have are a plain 404, before twisted.web's File
        # logs a traceback for them (invalid UTF-8) or os.stat raises (a NUL byte):
        # anyone could flood the log, or get a 500, with such paths.
        if b"\0" in path or len(path) > 255:
            return self.childNotFound
        try:
            path.decode("utf-8")
        except UnicodeDecodeError:
            return self.childNotFound
        child = super().getChild(path, request)
        if (
            isinstance(child, File)
            and not child.isdir()
            and child.splitext()[1] not in WEB_CLIENT_TYPES
        ):
            return self.childNotFound
        return child

    def render_GET(self, request: Request) -> Any:
        set_page_headers(request)
        return super().render_GET(request)


def set_page_headers(request: Request) -> None:
    """The headers of everything the web client loads: its policy, no sniffing, no stale copy."""
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
    # Revalidated on every load: a new server version is picked up at once.
    request.setHeader(b"cache-control", b"no-cache")


def board_names(directory: Path = WEB_CLIENT_FILES / "boards") -> list[str]:
    """The games with a board module of their own: `boards/<game>.js`, but for the
    helper module `dom.js` (docs/web.md, "Adding a board for a new game")."""
    return sorted(p.stem for p in directory.glob("*.js") if p.stem != "dom")


class BoardList(Resource):
    """`/boards.js`: a module whose default export lists `board_names()`, so that the
    page imports only boards that exist (a missing one would be a failed request in
    the player's console)."""

    isLeaf = True

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self._body = f"export default {json.dumps(names)};\n".encode()

    def render_GET(self, request: Request) -> bytes:
        set_page_headers(request)
        request.setHeader(b"content-type", WEB_CLIENT_TYPES[".js"].encode())
        return self._body


def web_site(
    lobby: WebSocketLobbyFactory | None,
    game: GameSocketFactory | None = None,
    *,
    timeout: float,
    access_log: bool = False,
) -> Site:
    """The public site: the web client at `/`, the WebSocket lobby at `/lobby` (None: a
    game host's site, without it), the game session over WebSocket at `/game`; a line
    per request in the log with `access_log`."""
    root = WebClientFiles(str(WEB_CLIENT_FILES))
    root.putChild(b"boards.js", BoardList(board_names()))
    if lobby is not None:
        root.putChild(b"lobby", WebSocketResource(lobby))
    if game is not None:
        root.putChild(b"game", WebSocketResource(game))
    site = Site(root, timeout=timeout, access_log=access_log)
    site.requestFactory = ReadOnlyRequest
    site.noisy = False
    return site
