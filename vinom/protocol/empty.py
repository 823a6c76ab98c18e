"""Shared empty containers that refuse writes: stand-ins for a session's unused tables.

A list or dict costs 56-64 bytes even when empty; the reliability layer has six
per session, times every idle session. Until a session uses one, it points at
these shared ones, which raise on any write, so that code that forgot to make
its own container fails loudly instead of sharing state between sessions.

They are real `list` and `dict` objects (subclasses), because the compiled build
of vinom (mypyc) checks the declared type of every attribute it stores. Compiled
code writes to lists and dicts through the C API, past these overrides, so the
refusal only guards the pure-Python run of the suite, which tox runs as well.
This module itself is never compiled.
"""

from __future__ import annotations

from typing import Any, NoReturn


def _refuse(*_args: object, **_kwargs: object) -> NoReturn:
    raise TypeError("this shared empty container is read-only; give the session its own")


class EmptyList(list[Any]):
    """An empty list that cannot be written to."""

    __slots__ = ()

    def __init__(self, *contents: object) -> None:
        if contents:
            _refuse()

    append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse

    def __repr__(self) -> str:
        return "EmptyList()"


class EmptyDict(dict[Any, Any]):
    """An empty dict that cannot be written to."""

    __slots__ = ()

    def __init__(self, *contents: object, **keywords: object) -> None:
        if contents or keywords:
            _refuse()

    pop = popitem = clear = update = setdefault = _refuse
    __setitem__ = __delitem__ = __ior__ = _refuse

    def __repr__(self) -> str:
        return "EmptyDict()"


EMPTY_LIST: list[Any] = EmptyList()
EMPTY_DICT: dict[Any, Any] = EmptyDict()
