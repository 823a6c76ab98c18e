"""Player names: what the lobby accepts in `hello` and an account keeps as its display name.

A name is normalized to Unicode NFC and trimmed of white space at both ends.
It is refused if it is longer than `MAX_NAME_LENGTH` characters; if it holds
a control, format, surrogate, private-use or unassigned character (Unicode
category C: this covers bidirectional overrides and zero-width characters)
or a line or paragraph separator (U+2028, U+2029); or if nothing is left once
white space and invisible characters (`INVISIBLE`: fillers and blanks that
render as nothing, such as U+3164) are removed; or if it holds something shaped
like a player or account id (a letter, `-` and 16 hex digits, as `a-5096e1986945f85a`,
compared in NFKC so that full-width look-alikes count too), which boards and
histories show beside names: nobody may pose as another player by their id.
Names are shown to other players, so each must show something, on one line, in
reading order.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME_LENGTH = 32

# Letters and symbols that render as nothing (Unicode's default-ignorable
# code points outside category C, and blank fillers): a name of these alone
# would show as an empty name.
INVISIBLE = frozenset(
    "\u034f"  # combining grapheme joiner
    "\u115f\u1160"  # Hangul choseong and jungseong fillers
    "\u17b4\u17b5"  # Khmer inherent vowels
    "\u180b\u180c\u180d\u180f"  # Mongolian variation selectors
    "\u2800"  # braille pattern blank
    "\u3164"  # Hangul filler
    "\uffa0"  # halfwidth Hangul filler
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))  # variation selectors
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0))  # variation selectors supplement
)


# A player id ('p-'), an account id ('a-') or any id of that form (vinom.identity).
_ID_SHAPED = re.compile(r"(?<![0-9a-z])[a-z]-[0-9a-f]{16}(?![0-9a-f])", re.IGNORECASE)


def normalize_name(raw: str) -> str | None:
    """The name as the lobby keeps it, or None if it is refused (module docstring)."""
    name = unicodedata.normalize("NFC", raw)
    for char in name:  # anywhere, even where the trimming would take it away
        category = unicodedata.category(char)
        if category[0] == "C" or category == "Zl" or category == "Zp":
            return None
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        return None
    if all(char.isspace() or char in INVISIBLE for char in name):
        return None
    if _ID_SHAPED.search(unicodedata.normalize("NFKC", name)):
        return None
    return name
