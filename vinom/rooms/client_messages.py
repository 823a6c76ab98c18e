"""The messages a client sends a room, inside UDP session payloads: a game host reads
them (`decode_client_message`, into a `ClientMessage`), a client writes them
(`encode_action`, `encode_sync`, `encode_leave`, `encode_input`). The room's messages to
the client, and what the two directions share, are vinom.rooms.messages.

Client -> server (on channel 1, but ``input`` on channel 0; anything else is
dropped and counted):

============  =====================================================================
message       keys
============  =====================================================================
``action``    ``{"t": "action", "a": {...}, "i": id}``: ``a`` is the game action, a
              map whose keys and meaning the game defines (the maze:
              ``{"move": "N", "from": [x, y]}``); ``i`` is an optional integer the
              client chooses, of at most 2^52 - 1 either way (`MAX_ACTION_ID`;
              echoed in a rejection ``error`` and, once applied, in
              the sender's ``state``). The acting player is always the session's.
              Limited per player to the game's ``action_rate`` (burst: two
              seconds' worth); early actions wait, in order (up to 8), for
              their turn; beyond that they are dropped and the sender gets an
              ``error`` ``rate_limited`` at most once a second.
``sync``      ``{"t": "sync"}``: send me the current state on the reliable channel.
              At most 2 per second (burst 4); more are dropped silently.
``input``     ``{"t": "input", "a": ack, "x": [[k, input], ...]}``, channel 0, only in
              a room whose game has a tick: ``a`` is the newest snap tick the
              client applied (nil before any; the delta baseline ack), ``x`` at
              most `MAX_INPUTS_PER_MESSAGE` (tick, input map) pairs, oldest
              first: the inputs the host has not acknowledged (``ik``). The room
              applies each once, at its tick (`vinom.rooms.inputs`: held up to 8
              ticks early, late ones at the next tick, duplicates dropped).
              A pair may be ``[k, input, b, f]``: the player gave it while
              seeing tick ``k - b`` and ``f / 256`` of the next (`drawn_fields`).
``leave``     ``{"t": "leave"}``: I leave for good (no reconnection window); the
              game's leave hook runs and the server closes the session.
============  =====================================================================

A client message longer than `MAX_CLIENT_MESSAGE` bytes, one that is not a
single msgpack map, or one with a wrong key type is dropped silently and
counted; the server never answers garbage.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

import msgpack

# Client messages beyond this many bytes are dropped: actions are small.
MAX_CLIENT_MESSAGE = 2048


class ClientMessageKind(enum.Enum):
    ACTION = "action"
    SYNC = "sync"
    LEAVE = "leave"
    INPUT = "input"


#: The most (tick, input) pairs one ``input`` message may carry (its redundancy).
MAX_INPUTS_PER_MESSAGE = 8
#: The largest action id (``i``) in either sign: a snap carries it in LEB128 below
#: 2^53 (docs/protocol.md §14), exact in a JavaScript number too.
MAX_ACTION_ID = (1 << 52) - 1
#: The most whole ticks an input's drawn moment may lie before its own tick (its
#: ``b``), and the steps of a tick its fraction is counted in (``f`` below this).
MAX_DRAWN_BACK = 255
DRAWN_STEPS = 256


class ClientMessage(NamedTuple):
    """A decoded client message (a plain tuple: decoded once per message).

    For an ``action``: `action` and its `action_id` (``i``). For an ``input``:
    `snap_ack`, its ``a`` (the newest snapshot tick the client applied, or None),
    and `inputs`, its ``x`` pairs, oldest first; `drawn`, by tick, the moment
    (fractional tick) each pair that says one was given at, as its player saw it."""

    kind: ClientMessageKind
    action: Mapping[str, Any] | None = None
    action_id: int | None = None
    inputs: tuple[tuple[int, Mapping[str, Any]], ...] | None = None
    snap_ack: int | None = None
    drawn: Mapping[int, float] | None = None


_SYNC = ClientMessage(ClientMessageKind.SYNC)
_LEAVE = ClientMessage(ClientMessageKind.LEAVE)
_ACTION = ClientMessageKind.ACTION
_INPUT = ClientMessageKind.INPUT
# Builds a ClientMessage without the Python-level __new__ of a NamedTuple.
_new_tuple = tuple.__new__

# One packer for the module: reusing it avoids building one per message (the
# reactor is single-threaded, and the packer resets itself on error).
_pack = msgpack.Packer().pack
_unpackb = msgpack.unpackb


def _count(drops: MutableMapping[str, int] | None, reason: str) -> None:
    if drops is not None:
        drops[reason] = drops.get(reason, 0) + 1


def decode_client_message(
    data: bytes, drops: MutableMapping[str, int] | None = None
) -> ClientMessage | None:
    """The message in `data`, or None (counted in `drops` by reason) if it is garbage.

    Never raises. Drop reasons: ``too_large``, ``not_msgpack``, ``not_a_map``,
    ``unknown_type``, ``bad_action``, ``bad_input``.
    """
    if len(data) > MAX_CLIENT_MESSAGE:
        _count(drops, "too_large")
        return None
    try:
        obj = _unpackb(data)
    except Exception:
        # msgpack raises several exception types for bad input (ExtraData,
        # StackError, ValueError for invalid UTF-8 or int map keys...).
        _count(drops, "not_msgpack")
        return None
    if type(obj) is not dict:
        _count(drops, "not_a_map")
        return None
    kind = obj.get("t")
    if kind == "action":
        action = obj.get("a")
        action_id = obj.get("i")
        if type(action) is not dict or not (
            action_id is None or (type(action_id) is int and -MAX_ACTION_ID <= action_id
                                  <= MAX_ACTION_ID)):  # fmt: skip
            _count(drops, "bad_action")
            return None
        return _new_tuple(ClientMessage, (_ACTION, action, action_id, None, None, None))
    if kind == "input":
        return _decode_input(obj, drops)
    if kind == "sync":
        return _SYNC
    if kind == "leave":
        return _LEAVE
    _count(drops, "unknown_type")
    return None


def _decode_input(
    obj: dict[Any, Any], drops: MutableMapping[str, int] | None
) -> ClientMessage | None:
    """An ``input`` message's ack and pairs, checked; None (``bad_input``) if malformed."""
    ack = obj.get("a")
    pairs = obj.get("x")
    if (
        not (ack is None or (type(ack) is int and ack >= 0))
        or type(pairs) is not list
        or len(pairs) > MAX_INPUTS_PER_MESSAGE
    ):
        _count(drops, "bad_input")
        return None
    inputs = []
    drawn: dict[int, float] | None = None
    for pair in pairs:
        if type(pair) is not list or len(pair) not in (2, 4):
            _count(drops, "bad_input")
            return None
        tick, value = pair[0], pair[1]
        if type(tick) is not int or tick < 0 or type(value) is not dict:
            _count(drops, "bad_input")
            return None
        if len(pair) == 4:
            back, steps = pair[2], pair[3]
            if (type(back) is not int or type(steps) is not int
                    or not 0 <= back <= min(tick, MAX_DRAWN_BACK)
                    or not 0 <= steps < DRAWN_STEPS):  # fmt: skip
                _count(drops, "bad_input")
                return None
            if drawn is None:
                drawn = {}
            drawn[tick] = tick - back + steps / DRAWN_STEPS
        inputs.append((tick, value))
    return _new_tuple(ClientMessage, (_INPUT, None, None, tuple(inputs), ack, drawn))


def drawn_fields(tick: int, seen: float | None) -> tuple[int, int] | None:
    """An input's ``b`` and ``f`` (docs/protocol.md §14) for an input of `tick` given
    while its player saw the fractional tick `seen`: the whole ticks back from
    `tick` to ``floor(seen)``, and the fraction of the next in 256ths (rounded
    down). None when there is nothing to say: no `seen`, or one after `tick` or
    more than `MAX_DRAWN_BACK` ticks before it."""
    if seen is None or not math.isfinite(seen):
        return None
    whole = math.floor(seen)
    back = tick - whole
    if not 0 <= back <= min(tick, MAX_DRAWN_BACK):
        return None
    return back, min(DRAWN_STEPS - 1, int((seen - whole) * DRAWN_STEPS))


def encode_input(
    ack: int | None,
    inputs: Sequence[tuple[int, Mapping[str, Any]]],
    drawn: Mapping[int, float] | None = None,
) -> bytes:
    """Client side: an ``input`` message (channel 0): the newest snapshot tick applied
    (`ack`) and the unacknowledged (tick, input) pairs, oldest first; `drawn`, by
    tick, the fractional tick the player saw when giving each input that says so
    (`drawn_fields`)."""
    if not drawn:
        pairs: list[list[Any]] = [[k, value] for k, value in inputs]
    else:
        pairs = []
        for k, value in inputs:
            fields = drawn_fields(k, drawn.get(k))
            pairs.append([k, value] if fields is None else [k, value, *fields])
    return _pack({"t": "input", "a": ack, "x": pairs})


def encode_action(action: Mapping[str, Any], action_id: int | None = None) -> bytes:
    """Client side: an ``action`` message."""
    return _pack({"t": "action", "a": action, "i": action_id})


def encode_sync() -> bytes:
    """Client side: a ``sync`` request."""
    return _pack({"t": "sync"})


def encode_leave() -> bytes:
    """Client side: a ``leave`` message."""
    return _pack({"t": "leave"})
