"""The texts a role prints for `--help` and `--limit help`: its options and its limits,
each under its group's title (vinom.server.option_groups), so that an operator reads
them by concern rather than in one alphabetical list."""

import re
import textwrap
from typing import Any

from twisted.python import usage

from vinom.server.option_groups import OptionGroup

# An option's first line in usage.Options's text (its wrapped lines are indented more).
_OPTION_LINE = re.compile(r"(?:  -\w, |      )--([a-z0-9-]+)")


def shown(value: Any) -> str:
    """A default as the options reference shows it: 600, not 600.0."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def limits_help(command: str, groups: list[type[OptionGroup]]) -> str:
    """`--limit help`: each limit of `command`'s groups, its default and its meaning."""
    lines = [f"{command} --limit NAME=VALUE (repeatable); each NAME:"]
    for group in groups:
        rows = getattr(group, "optLimits", ())
        lines += [f"{group.title}:"] if rows else []
        for row in rows:
            lines.append(f"  {row[0]}={shown(row[2])}")
            lines += textwrap.wrap(row[3], 76, initial_indent="      ",
                                   subsequent_indent="      ")  # fmt: skip
    return "\n".join(lines)


def grouped_usage(options: usage.Options, groups: list[type[OptionGroup]],
                  width: int | None) -> str:  # fmt: skip
    """`--help`: usage.Options's text at `width` (None: $COLUMNS), its options under each
    group's title, the command's own (`--limit`, `--help`, `--version`) first."""
    lines = usage.Options.getUsage(options, width).splitlines(keepends=True)
    # Its first lines: "Options:", then each option's, its wrapped text indented under
    # it; then the description and the subcommands, kept as it writes them.
    chunk: dict[str, str] = {}
    end, name = 1, ""
    while end < len(lines) and lines[end].startswith("  "):
        found = _OPTION_LINE.match(lines[end])
        name = found[1] if found else name
        chunk[name] = chunk.get(name, "") + lines[end]
        end += 1
    sections = [(group.title, [name for name in _defined(group) if name in chunk])
                for group in groups]  # fmt: skip
    grouped = {name for _, names in sections for name in names}
    sections.insert(0, ("Options", [name for name in chunk if name not in grouped]))
    return "\n".join(f"{title}:\n" + "".join(chunk[name] for name in sorted(names))
                     for title, names in sections if names) + "".join(lines[end:])  # fmt: skip


def _defined(group: type[OptionGroup]) -> list[str]:
    """The options a group defines itself: its parameters, flags and `opt_` methods."""
    own = vars(group)
    return [*(row[0] for row in own.get("optParameters", ())),
            *(row[0] for row in own.get("optFlags", ())),
            *(name[4:].replace("_", "-") for name in own if name.startswith("opt_"))]  # fmt: skip
