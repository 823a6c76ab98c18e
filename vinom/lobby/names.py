"""Player names as the lobby accepts them in `hello`: the accounts' rule
(vinom/accounts/names.py), one rule for a `hello` name and an account's display name."""

from __future__ import annotations

from vinom.accounts.names import INVISIBLE, MAX_NAME_LENGTH, normalize_name

__all__ = ["INVISIBLE", "MAX_NAME_LENGTH", "normalize_name"]
