"""`vinom new-game NAME`: write a small installable game package to start from.

The package is made from the files in `vinom/scaffold_template/` (package
data; `.tmpl` files, so that no tool takes them for vinom's own modules): a
game written with the public `vinom.games.Game` API and its bot, its board
for the web client (a JavaScript module and a style sheet, package data the
game names), a test, a `pyproject.toml`, and the Twisted plugin module under
`twisted/plugins/` that registers the game. `pip install` takes it as it is,
and bots, the terminal client and the browser play it at once
(docs/getting-started.md).

In the template's paths and text `PACKAGE` / `{{package}}` become the Python
package, `GAME` / `{{name}}` the game's registry name, `{{Class}}` the prefix of its
class names and `{{display_name}}` the name people read; a leading `dot-`
in a file name becomes `.` (package data globs leave dot-files out).
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import shutil
from collections.abc import Collection, Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from attrs import frozen

TEMPLATE = "scaffold_template"
TEMPLATE_SUFFIX = ".tmpl"
# The registry's rule for game names (vinom.games.registry): lower case
# letters, digits, '-' and '_', starting with a letter, at most 32 characters.
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# Package names the generated project itself uses, or that would hide vinom's own.
RESERVED = frozenset({"tests", "twisted", "vinom"})


class ScaffoldError(ValueError):
    """A name or a directory `vinom new-game` cannot use: one line for the user."""


@frozen
class GameNames:
    """The names one game goes by in the generated package."""

    name: str  # the registry name: `vinom bots --game NAME`, the lobby's `queue`
    package: str  # the Python package
    class_prefix: str  # NameGame, NameState, NameBot
    display_name: str  # the name people read


def game_names(name: str) -> GameNames:
    """The names for game `name`, or `ScaffoldError` saying what is wrong with it."""
    if not _NAME.match(name):
        raise ScaffoldError(
            f"{name!r} cannot name a game: use lower case letters, digits, '-' and '_', "
            "starting with a letter, at most 32 characters (e.g. 'my-game')"
        )
    package = name.replace("-", "_")
    if keyword.iskeyword(package) or package in RESERVED:
        raise ScaffoldError(f"{name!r} cannot name a game package: choose another name")
    words = re.split(r"[-_]+", name)
    class_prefix = "".join(word[:1].upper() + word[1:] for word in words)
    # As vinom.games.rules.default_display_name words a registry name.
    display_name = " ".join(word for word in words if word).capitalize()
    return GameNames(name, package, class_prefix, display_name)


def check_available(names: GameNames, installed_games: Collection[str]) -> None:
    """`ScaffoldError` when the game or its package would clash with what is installed."""
    if names.name in installed_games:
        raise ScaffoldError(
            f"a game named {names.name!r} is installed already ('vinom games' lists them): "
            "choose another name"
        )
    try:
        spec = importlib.util.find_spec(names.package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        where = f" ({spec.origin})" if spec.origin else ""
        raise ScaffoldError(
            f"a Python module named {names.package!r} exists already{where}: "
            "choose another name"
        )


def _template_files(root: Traversable, parts: tuple[str, ...] = ()) -> Iterator[
    tuple[tuple[str, ...], Traversable]
]:
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _template_files(entry, (*parts, entry.name))
        elif entry.name.endswith(TEMPLATE_SUFFIX):
            yield (*parts, entry.name), entry


def _fill(text: str, names: GameNames) -> str:
    for key, value in (
        ("{{name}}", names.name),
        ("{{package}}", names.package),
        ("{{Class}}", names.class_prefix),
        ("{{display_name}}", names.display_name),
    ):
        text = text.replace(key, value)
    return text


def _target_path(parts: tuple[str, ...], names: GameNames) -> Path:
    out = []
    for part in parts:
        part = part.removesuffix(TEMPLATE_SUFFIX).replace("PACKAGE", names.package)
        part = part.replace("GAME", names.name)
        if part.startswith("dot-"):
            part = "." + part[len("dot-") :]
        out.append(part)
    return Path(*out)


def write_game(names: GameNames, directory: Path) -> list[Path]:
    """Write the package for `names` into `directory`, which must not exist yet.

    Returns the files written, relative to `directory`. Nothing is left behind
    when writing fails part-way.
    """
    try:
        directory.mkdir(parents=False)
    except FileExistsError:
        raise ScaffoldError(
            f"{directory} exists already: choose another name or --directory"
        ) from None
    except OSError as error:
        raise ScaffoldError(f"cannot create {directory}: {error.strerror}") from None
    written: list[Path] = []
    try:
        for parts, source in _template_files(files("vinom") / TEMPLATE):
            relative = _target_path(parts, names)
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_fill(source.read_text(encoding="utf-8"), names), encoding="utf-8")
            written.append(relative)
    except OSError as error:
        shutil.rmtree(directory, ignore_errors=True)
        raise ScaffoldError(f"cannot write {directory}: {error}") from None
    return written
