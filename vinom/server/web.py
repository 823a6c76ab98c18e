"""The public web server: one twisted.web `Site` for browsers, on `--websocket` (TLS, 7380).

| path | what |
|---|---|
| `/lobby` | the lobby over WebSocket (`vinom.lobby.websocket`, docs/web.md); not on a game host |
| `/game` | the game session over WebSocket (`vinom.hosting.websocket`), where games are hosted |
| `/webtransport` | with `--webtransport`: where its sessions are (`vinom.server.webtransport`) |
| `/replays/<match id>` | with `--web-replays`: a recorded match's public views (`server.replays`) |
| `/` | the web client: `index.html` and its files, shipped in vinom/webclient/ |
| `/boards/<game>.js`, `.css` | a game's board: its own package data (`GameBoard`) or vinom's |
| `/boards.js` | the list of games with a board module (`DefaultExport`) |
| `/settings.js` | what the page offers as the options allow (`DefaultExport`) |
| anything else | 404 |

The web client is static (HTML, CSS and JavaScript modules, no build step),
served from the package directory as files; `/lobby` and `/game` are child
resources of the same root. Idle HTTP connections (before a WebSocket
upgrade, or between requests) close after `timeout` seconds.

A game installed from its own package names its board and style sheet as
package data (`IGame.board`, `board_stylesheet`). They are read once, at
start, into memory and served by name only: `/boards/<game>.js` is a key of
a dict, never a path joined to a directory, so no URL reaches any other file
of the game's package. One that cannot be served (missing, not a `.js` or
`.css` file, unreadable, not UTF-8) is one line in the log at start, and its
players get the generic board; a module whose JavaScript does not parse is one
line in the log at start too (and served: the page says it failed to load).
That check is tree-sitter's JavaScript grammar, vinom's boards extra (2.7 MB,
for a game's developer): without it the boards are served unchecked, which
one info line at start says.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attrs import frozen
from twisted.logger import Logger
from twisted.web.http import CACHED
from twisted.web.resource import IResource, NoResource, Resource
from twisted.web.server import Request
from twisted.web.static import File

from vinom.games.interfaces import IGame
from vinom.hosting.websocket import GameSocketFactory, GameSocketResource
from vinom.lobby.rankings import Rankings
from vinom.lobby.websocket import LobbySocketResource, WebSocketLobbyFactory
from vinom.server.logs import Site
from vinom.server.rankings_web import rankings_resources

# The client's page, style, shell and board modules (setup.py package_data).
WEB_CLIENT_FILES = Path(__file__).parent.parent / "webclient"
# vinom's own boards, and the helper module they import (not a board).
BOARD_FILES = WEB_CLIENT_FILES / "boards"
BOARD_HELPERS = frozenset({"dom"})

_log = Logger()

# The only files served, by extension, with the type a browser needs for each
# (a module script must be JavaScript; nosniff forbids guessing).
WEB_CLIENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    # The vendored MessagePack library's ES modules (vendor/msgpack/, docs/web.md).
    ".mjs": "text/javascript; charset=utf-8",
}

# Everything the page loads is its own; its WebSockets may go to another host
# when match_found names a game URL there, and so may its WebTransport session
# (https:, on another port) and the fetch of that host's `/webtransport` offer.
# Nothing inline: the page's modules import each other (and the vendored
# MessagePack library) by relative paths, so it needs no import map.
POLICY = (
    b"default-src 'self'; script-src 'self'; connect-src 'self' wss: https:; "
    b"img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
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
    request.setHeader(b"content-security-policy", POLICY)
    # Revalidated on every load: a new server version is picked up at once.
    request.setHeader(b"cache-control", b"no-cache")


def board_names(directory: Path = BOARD_FILES) -> list[str]:
    """The games with a board module in vinom: `boards/<game>.js`, but for the
    helper module `dom.js` (docs/web.md, "Adding a board for a new game")."""
    return sorted(p.stem for p in directory.glob("*.js") if p.stem not in BOARD_HELPERS)


@frozen
class BoardFile:
    """One file of a game's board, read from the game's package at start."""

    body: bytes
    content_type: bytes
    etag: bytes


class BoardProblem(ValueError):
    """Why a game's board or style sheet cannot be served: the rest of one log line."""


def read_board_file(what: str, found: object, suffix: str) -> BoardFile:
    """The `board` or `board_stylesheet` (`what`) a game names, read, or `BoardProblem`.

    `found` should be a `Traversable` (`importlib.resources.files(package) / ...`);
    anything else (a string is the likely mistake) says what to write instead.
    """
    if not all(hasattr(found, name) for name in ("name", "is_file", "read_bytes")):
        raise BoardProblem(
            f"{what} must be a {suffix} file of the game's package, as "
            f"importlib.resources.files(__package__) / \"board\" / \"NAME{suffix}\", "
            f"not {found!r}"
        )
    name = str(found.name)  # type: ignore[attr-defined]
    if not name.endswith(suffix):
        raise BoardProblem(f"{what} {found} must be a {suffix} file")
    try:
        if not found.is_file():  # type: ignore[attr-defined]
            raise BoardProblem(f"{what} {found} is not in the installed package (no such file)")
        body = bytes(found.read_bytes())  # type: ignore[attr-defined]
    except OSError as error:
        raise BoardProblem(f"{what} {found} cannot be read: {error.strerror or error}") from None
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise BoardProblem(f"{what} {found} is not UTF-8 text") from None
    etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
    return BoardFile(body, WEB_CLIENT_TYPES[suffix].encode(), etag)


@functools.cache
def _javascript() -> Any:
    """tree-sitter's JavaScript parser, or None where vinom's boards extra is not installed."""
    try:
        import tree_sitter_javascript
        from tree_sitter import Language, Parser
    except ImportError:
        return None
    return Parser(Language(tree_sitter_javascript.language()))


def can_check_syntax() -> bool:
    """Whether `syntax_error` can read JavaScript here (vinom's boards extra)."""
    return _javascript() is not None


def syntax_error(source: bytes) -> tuple[int, int] | None:
    """Where the JavaScript module `source` first breaks the language's grammar (line
    and column, from 1), or None: a board's typo found at start, not by its players.
    Only where `can_check_syntax()`."""
    tree = _javascript().parse(source)
    if not tree.root_node.has_error:
        return None
    node = tree.root_node
    # Down the first child holding an error to the error itself.
    while not (node.is_error or node.is_missing):
        child = next((c for c in node.children if c.has_error or c.is_missing), None)
        if child is None:
            break
        node = child
    row, column = node.start_point
    return row + 1, column + 1


def game_boards(games: Iterable[IGame]) -> dict[str, BoardFile]:
    """The boards the games name in their own packages, by file name under `/boards/`
    (`nim.js`, `nim.css`). A board that cannot be served is one line in the log, and
    the game gets vinom's board for it, if any, else the generic board."""
    boards: dict[str, BoardFile] = {}
    unchecked: list[str] = []
    for game in games:
        # As the game declares them (IGame's optional `board`, `board_stylesheet`),
        # unchecked: what is wrong with one is said below.
        module = getattr(game, "board", None)
        stylesheet = getattr(game, "board_stylesheet", None)
        if module is None and stylesheet is None:
            continue
        try:
            if game.name in BOARD_HELPERS:
                raise BoardProblem(
                    f"/boards/{game.name}.js is the web client's helper module: "
                    "a game of this name cannot have a board of its own"
                )
            if module is None:
                raise BoardProblem("board_stylesheet is set but board (the module) is not")
            files = {f"{game.name}.js": read_board_file("board", module, ".js")}
            if stylesheet is not None:
                files[f"{game.name}.css"] = read_board_file(
                    "board_stylesheet", stylesheet, ".css"
                )
        except BoardProblem as problem:
            _log.warn(
                "vinom: game {game!r} has no board in the browser: {problem}; "
                "its players get the generic board",
                game=game.name, problem=str(problem),
            )  # fmt: skip
            continue
        if not can_check_syntax():
            unchecked.append(game.name)
            boards.update(files)
            continue
        # Served all the same (the page then says the board failed to load, and the
        # browser's console where): the grammar here may be older than the browser's.
        at = syntax_error(files[f"{game.name}.js"].body)
        if at is not None:
            _log.warn(
                "vinom: game {game!r}: its board {module} has a syntax error at line "
                "{line}, column {column}; its players will see that the board failed to load",
                game=game.name, module=str(module), line=at[0], column=at[1],
            )  # fmt: skip
        boards.update(files)
    if unchecked:
        # Once per start: a syntax error in a board is then found by its players' browsers.
        _log.info(
            "vinom: the boards of {games} are served unchecked: checking their syntax at "
            "start needs vinom's boards extra (pip install 'vinom[boards]')",
            games=", ".join(unchecked),
        )  # fmt: skip
    return boards


class GameBoard(Resource):
    """One file of a game's board, served from memory with the web client's headers;
    a browser holding the same version is answered 304 (its ETag). Not a leaf: a
    path below it (`/boards/nim.js/../nim.py`) is a 404, never this file again."""

    childNotFound = NoResource("no such file")

    def __init__(self, board: BoardFile) -> None:
        super().__init__()
        self._board = board

    def getChild(self, path: bytes, request: Request) -> IResource:
        return self.childNotFound

    def render_GET(self, request: Request) -> bytes:
        set_page_headers(request)
        request.setHeader(b"content-type", self._board.content_type)
        if request.setETag(self._board.etag) == CACHED:
            return b""
        request.setHeader(b"content-length", str(len(self._board.body)).encode())
        return self._board.body


class DefaultExport(Resource):
    """A JavaScript module made at start whose default export is `value` (as JSON):
    `/boards.js`, the games with a board (`board_names()` and the games' own), so
    that the page imports only boards that exist (a missing one would be a failed
    request in the player's console); `/settings.js`, what the page offers as this
    server's options allow (`{"replays": bool, "auth": "guest" | "device" | ...}`: the
    replay form where `/replays/` answers, and how the page signs its player in, the
    name of the server's `--auth` authenticator)."""

    isLeaf = True

    def __init__(self, value: object) -> None:
        super().__init__()
        self._body = f"export default {json.dumps(value)};\n".encode()

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
    games: Iterable[IGame] = (),
    webtransport: IResource | None = None,
    replays: Resource | None = None,
    auth: str = "guest",
    rankings: Rankings | None = None,
) -> Site:
    """The public site: the web client at `/`, the WebSocket lobby at `/lobby` (None: a
    game host's site, without it), the game session over WebSocket at `/game`, the
    boards `games` ship in their own packages at `/boards/`; a line per request in
    the log with `access_log`; `webtransport`, the `/webtransport` offer, where the
    game session over WebTransport is offered; `auth`, the name of the lobby's
    authenticator (`--auth`), which the page's /settings.js tells it; `rankings`, the
    lobby's leaderboards and histories as JSON at `/leaderboard/` and `/history/`
    (vinom.server.rankings_web)."""
    root = WebClientFiles(str(WEB_CLIENT_FILES))
    boards = WebClientFiles(str(BOARD_FILES))
    # Children put here are found before the directory's files: a game's own
    # board is served in place of one vinom might have of the same name.
    own = game_boards(games)
    for file_name, board in own.items():
        boards.putChild(file_name.encode(), GameBoard(board))
    root.putChild(b"boards", boards)
    names = {*board_names(), *(name.removesuffix(".js") for name in own if name.endswith(".js"))}
    root.putChild(b"boards.js", DefaultExport(sorted(names)))
    # What the page offers: "Replay a finished match" only where /replays/ answers;
    # how it signs in (with `device`, at once, as the identity the browser keeps).
    settings = {"replays": replays is not None, "auth": auth}
    root.putChild(b"settings.js", DefaultExport(settings))
    if lobby is not None:
        root.putChild(b"lobby", LobbySocketResource(lobby))
    if game is not None:
        root.putChild(b"game", GameSocketResource(game))
    if webtransport is not None:
        root.putChild(b"webtransport", webtransport)
    if replays is not None:
        root.putChild(b"replays", replays)
    if rankings is not None:
        for name, resource in rankings_resources(rankings).items():
            root.putChild(name, resource)
    site = Site(root, timeout=timeout, access_log=access_log)
    site.requestFactory = ReadOnlyRequest
    site.noisy = False
    return site
