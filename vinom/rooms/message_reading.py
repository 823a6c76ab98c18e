"""A client's reading of the room's messages (vinom.rooms.messages): each checked for the
keys and types of its kind (`decode_server_message`), a ``snap`` (an array, or packed)
as the map it stands for, then as the ``state`` its snapshot rebuilt (`state_of_snap`),
and a relative snap's numbers against those of its baseline (`resolve_relative_snap`,
`resolve_kept`). vinom.client's game session reads with these, as do the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack

from vinom.rooms.messages import PACKED_LIMIT, PACKED_SNAP, SNAP_FIELDS_KEPT, SnapFields
from vinom.rooms.schema import read_uvars, unzigzag

_PACKED_SNAP = bytes((PACKED_SNAP,))
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


def decode_server_message(data: bytes, relative: bool = False) -> dict[str, Any] | None:
    """Client side: the server message in `data` as a dict, or None if it is not one.

    The dict has been checked to carry every key of its type with the right
    value type. Never raises; unknown message types give None. `relative`: the
    session asked for relative packed snaps (``"pk": 2``); a packed snap then
    comes as ``{"t": "snap", "relative": (v, ts, r, ik as sent), "i", "d"}``, for
    `resolve_relative_snap` once its ``d`` is rebuilt.
    """
    if data[:1] == _PACKED_SNAP:
        return _snap_of_packed(data, relative)
    try:
        obj = _unpackb(data)
    except Exception:
        return None
    if type(obj) is list:
        return _snap_of_array(obj)
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


def _snap_of_array(fields: list[Any]) -> dict[str, Any] | None:
    """A ``snap`` (an array of 6) as the map the client reads: ``{"t": "snap", "v",
    "ts", "r" (seconds, as in a state), "i", "ik", "d"}``; None if it is not one."""
    if len(fields) != 6:
        return None
    version, server_time, remaining, action_id, input_tick, snapshot = fields
    if (
        type(version) is not int
        or type(server_time) is not int
        or not (remaining is None or type(remaining) is int)
        or not (action_id is None or type(action_id) is int)
        or not (input_tick is None or type(input_tick) is int)
        or type(snapshot) is not bytes
    ):
        return None
    return {
        "t": "snap",
        "v": version,
        "ts": server_time,
        "r": None if remaining is None else remaining / 1000.0,
        "i": action_id,
        "ik": input_tick,
        "d": snapshot,
    }


def _snap_of_packed(data: bytes, relative: bool = False) -> dict[str, Any] | None:
    """A packed ``snap`` (`encode_snap`, `packed`) as `_snap_of_array` gives it (with
    `relative`, as `decode_server_message` says); None if it is not one: a number
    cut short, longer than 8 bytes or not below 2^53."""
    read = read_uvars(data, 1, 5, 8)
    if read is None or max(read[0]) >= PACKED_LIMIT:
        return None
    (version, server_time, left, action, newest), at = read
    action_id = None if not action else unzigzag(action - 1)
    if relative:
        return {"t": "snap", "relative": (version, server_time, left, newest),
                "i": action_id, "d": data[at:]}  # fmt: skip
    return {
        "t": "snap",
        "v": version,
        "ts": server_time,
        "r": None if not left else (left - 1) / 1000.0,
        "i": action_id,
        "ik": None if not newest else newest - 1,
        "d": data[at:],
    }


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


def resolve_relative_snap(
    snap: dict[str, Any], tick: int, base: SnapFields | None
) -> SnapFields:
    """A relative snap's ``v``, ``ts``, ``r`` and ``ik`` filled in (in `snap`, as
    `decode_server_message(..., relative=True)` read it), given the tick its ``d``
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
    """A client's step for a relative snap whose ``d`` rebuilt `tick` against
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
