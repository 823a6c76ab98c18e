"""A client's reading of the room's messages (vinom.rooms.messages): each checked for the
keys and types of its kind (`decode_server_message`), a ``snap``'s numbers against
those of its baseline's snap (`resolve_relative_snap`, `resolve_kept`), then the snap
as the ``state`` its snapshot rebuilt (`state_of_snap`). vinom.client's game session
reads with these, as do the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from vinom.rooms.messages import SNAP_FIELDS_KEPT, SNAP_MARKER, SNAP_NUMBER_LIMIT, SnapFields
from vinom.rooms.schema import unzigzag
from vinom.rooms.schema_frames import read_uvars

_SNAP_MARKER = bytes((SNAP_MARKER,))
_unpackb = msgpack.unpackb


# Which keys each server message must carry, and their types.
_INT = (int,)
_STR = (str,)
_OPT_FLOAT = (int, float, type(None))
_OPT_INT = (int, type(None))
_SERVER_SCHEMA: dict[str, tuple[tuple[str, tuple[type, ...]], ...]] = {
    # "k" and "ts" may be absent (a server from before they were added).
    "state": (
        ("v", _INT),
        ("p", _STR),
        ("r", _OPT_FLOAT),
        ("k", _OPT_INT),
        ("ts", _OPT_INT),
        ("s", (dict,)),
        ("i", _OPT_INT),
    ),
    "welcome": (
        ("match", _STR),
        ("game", _STR),
        ("seat", _INT),
        ("players", (list,)),
        ("reconnected", (bool,)),
    ),
    "phase": (("p", _STR), ("v", _INT), ("r", _OPT_FLOAT)),
    "event": (("v", _INT), ("e", _STR), ("d", (dict,))),
    "error": (("code", _STR), ("message", _STR), ("i", _OPT_INT)),
    "presence": (("id", _STR), ("status", _STR)),
}


def decode_server_message(data: bytes) -> dict[str, Any] | None:
    """Client side: the server message in `data` as a dict, or None if it is not one.

    The dict has been checked to carry every key of its type with the right
    value type. Never raises; unknown message types give None. A ``snap`` comes as
    ``{"t": "snap", "relative": (v, ts, r, ik as sent), "i", "d"}``, for
    `resolve_relative_snap` once its ``d`` is rebuilt.
    """
    if data[:1] == _SNAP_MARKER:
        return _snap_of(data)
    try:
        obj = _unpackb(data)
    except Exception:
        return None
    if type(obj) is not dict:
        return None
    kind = obj.get("t")
    if type(kind) is not str:
        return None
    schema = _SERVER_SCHEMA.get(kind)
    if schema is None:
        return None
    for key, types in schema:
        value = obj.get(key)
        if not isinstance(value, types):
            return None
        # bool is an int subclass: only accept it where a bool is expected.
        if type(value) is bool and bool not in types:
            return None
    return obj


def _snap_of(data: bytes) -> dict[str, Any] | None:
    """A ``snap`` as `decode_server_message` gives it; None if it is not one: a number
    cut short, longer than 8 bytes or not below 2^53."""
    read = read_uvars(data, 1, 5, 8)
    if read is None or max(read[0]) >= SNAP_NUMBER_LIMIT:
        return None
    (version, server_time, left, action, newest), at = read
    action_id = None if not action else unzigzag(action - 1)
    return {"t": "snap", "relative": (version, server_time, left, newest),
            "i": action_id, "d": data[at:]}  # fmt: skip


def state_of_snap(snap: Mapping[str, Any], tick: int, view: Any) -> dict[str, Any]:
    """Client side: a decoded ``snap`` as the ``state`` message it stands for (the
    shape game code reads), given the tick and the view its §16 snapshot rebuilt."""
    return {
        "t": "state",
        "v": snap["v"],
        "p": "playing",
        "r": snap["r"],
        "k": tick,
        "ts": snap["ts"],
        "s": view,
        "i": snap["i"],
    }


def resolve_relative_snap(snap: dict[str, Any], tick: int, base: SnapFields | None) -> SnapFields:
    """A snap's ``v``, ``ts``, ``r`` and ``ik`` filled in (in `snap`, as
    `decode_server_message` read it), given the tick its ``d``
    rebuilt and `base`, the fields of the snap of its baseline tick (None: ``d``
    was full). Returns its own fields, to keep for the snaps against it."""
    v, ts, r, newest = snap.pop("relative")
    if base is None:
        left = None if not r else r - 1
    else:
        v_b, ts_b, left_b = base
        v, ts = v + v_b, ts + ts_b
        left = None if not r else unzigzag(r - 1) + ts_b + (left_b or 0) - ts
    snap["v"], snap["ts"] = v, ts
    snap["r"] = None if left is None else left / 1000.0
    snap["ik"] = None if not newest else tick + unzigzag(newest - 1)
    return v, ts, left


def resolve_kept(
    known: dict[int, SnapFields], snap: dict[str, Any], tick: int, baseline_tick: int | None
) -> bool:
    """A client's step for a snap whose ``d`` rebuilt `tick` against
    `baseline_tick` (None: full): `resolve_relative_snap` against the fields `known`
    keeps of that tick, then this snap's kept in turn (the last SNAP_FIELDS_KEPT).
    False, `snap` untouched, when the baseline's fields are not kept."""
    base = None
    if baseline_tick is not None:
        base = known.get(baseline_tick)
        if base is None:
            return False
    known[tick] = resolve_relative_snap(snap, tick, base)
    while len(known) > SNAP_FIELDS_KEPT:
        del known[next(iter(known))]
    return True
