"""The application messages rooms and clients exchange inside UDP session payloads.

Every message is one msgpack map (msgpack: a mature C extension, compact, and
libraries exist for Godot, Unity and C), but the ``snap``: packed bytes of its own.
Strings are UTF-8 `str`, binary is `bin`; the key ``"t"`` names the message type.
Unknown keys are ignored by both sides (so later versions can add keys), unknown
types are dropped.

Channels (see `vinom.protocol.events`): 0 = unreliable (state snapshots; the
latest version wins), 1 = reliable and ordered (everything else).

The messages a client sends, and their decoding by the room, are
vinom.rooms.client_messages; a client reads the room's with vinom.rooms.message_reading.

Server -> client:

============  ==  =========================================================================
message       ch  keys
============  ==  =========================================================================
``state``     0   ``{"t": "state", "v": version, "p": phase, "r": remaining, "k": tick,
                  "ts": server time, "s": view, "i": last applied action id}``: ``v``
                  is the room's state version; ``p`` the phase; ``r`` the seconds left
                  in the phase (connect deadline, countdown or time limit; nil when
                  none); ``k`` the number of game ticks run so far (0 before the
                  first, and always for a game without a tick); ``ts`` the
                  milliseconds (an integer) since the room opened, on the host's
                  clock, when this state was built (for interpolation); ``s`` the
                  game's view of the state for this player (hidden information
                  removed); ``i`` the id of this
                  player's last applied action (nil before the first). A game
                  without a tick sends it after every change; a game with a tick,
                  while playing, at most once per tick (at its ``snapshot_rate``),
                  after the tick, when something changed since the last one. Also
                  sent when no state went out for `RoomConfig.state_interval`
                  seconds (default 1), and on channel 1 after ``welcome``, on
                  ``sync`` and as the final state of an ended room.
``snap``      0   Byte ``c1`` (never a msgpack byte), then as LEB128 version, server
                  time (ms), remaining (ms), action id and newest input tick
                  received, each against the snap of the snapshot's baseline tick,
                  then the snapshot (`encode_snap`); read as the map ``{"t": "snap",
                  "v", "ts", "r" (seconds), "i", "ik", "d"}`` (vinom.rooms.
                  message_reading): instead of ``state`` in a room whose game has a
                  tick, while playing; ``d`` is the docs/protocol.md §16 snapshot of
                  the view (§16.8 for a game with a view schema; its tick is ``k``)
                  against the tick the client acknowledged, else full. Clients
                  present it as the ``state`` it stands for (`state_of_snap`).
``welcome``   1   ``{"t": "welcome", "match": id, "game": name, "title": display
                  name, "seat": index, "players": [{"id", "name", "seat"}...],
                  "reconnected": bool}``: the first message of every session,
                  followed by a ``state`` (no state overtakes it: the endpoint sends
                  a session's states reliably until its opening is acknowledged).
                  ``title`` is the game's display name ("Owe Drahn"), for people.
                  ``tick_rate`` (number): the game's ticks per second, 0 for a
                  game without a tick; a tick lasts exactly ``1 / tick_rate``
                  seconds and tick ``k`` falls at the start of play plus
                  ``k / tick_rate``, so a client can predict with the same step.
                  ``snapshot_rate`` (number): the states per second a player gets
                  while playing (0: after every change, a game without a tick).
                  ``q`` (only when the game declares a ``quantisation``): its rules,
                  ``[[pattern, step or "f32"], ...]``, for decoding ``snap``.
``phase``     1   ``{"t": "phase", "p": phase, "v": version, "r": remaining}``, plus
                  ``"result": {"winners": [...], "reason": ..., ...}`` (the game's
                  result) when ``p`` is ``finished`` and ``"reason": str`` when ``p``
                  is ``aborted``: ``players_missing`` (not everyone connected by the
                  deadline), ``player_left`` (someone left before the start),
                  ``abandoned`` (everyone left), ``shutdown`` or ``closed`` (the
                  server removed the room), ``host_crashed`` (a game-host worker
                  whose host process died).
``event``     1   ``{"t": "event", "v": version, "e": name, "d": {...}}``: a game event,
                  only to the players it is meant for; ``v`` is the version it
                  belongs to.
``error``     1   ``{"t": "error", "code": str, "message": str, "i": action id}``: an
                  action was rejected and changed nothing; only to its sender. Codes
                  come from the game (``stale``, ``not_your_turn``, ``illegal_move``,
                  ``bad_action``...) or the room (``not_playing``: not in the
                  ``playing`` phase; ``internal_error``: the game failed on it;
                  ``rate_limited``: dropped for the action rate, see docs/games.md;
                  not sent for every dropped action).
``presence``  1   ``{"t": "presence", "id": player id, "status": s}``: another player
                  ``connected``, ``disconnected`` (their seat is kept for the
                  reconnection window) or ``left`` (for good).
============  ==  =========================================================================

Versions: the version grows by exactly one for every applied action, every
phase change, and every game hook (join, leave, reconnect, tick, time up)
that produced a new state; a rejected action changes nothing. A client keeps
the newest state and drops any whose ``v`` is not greater than the one it
holds (snapshots on channel 0 may arrive late, twice or never).

Phases, in order: ``waiting`` (for every player to connect, until the connect
deadline, default 30 s), ``countdown`` (the game's countdown, skipped when 0),
``playing`` (until the game's time limit or the game finishes), then
``finished`` (with a result) or ``aborted`` (with a reason). An ended room
keeps its sessions a few seconds (so these last messages arrive), then the
server closes them.

Reconnection: when a session ends without a ``leave`` (a timeout, or the
client's ``disconnect``), the seat is kept for the reconnection window
(default 30 s). A new session for the same player (a fresh connect token from
the lobby) gets ``welcome`` with ``"reconnected": true`` and the current
state; after the window the player has left for good.

Encoding a state is on the hot path (once per recipient per change): the
room packs each ``state`` with one msgpack call (`encode_state`), and when
the game's view is the same for everyone (`shared_view`) only once per
change: `encode_shared_state` packs everything but the action id, the last
value, and each recipient's message is that plus `pack_action_id` of their
own. `encode_state_header` and `encode_state_for` pack the envelope once and
the view per recipient, and `state_with_action_id` swaps the action id of a
whole message, for other senders.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgpack

from vinom.games.interfaces import Seat
from vinom.protocol.reliability import MAX_ACK_DELAY_S
from vinom.rooms.schema import zigzag
from vinom.rooms.schema_frames import write_uvar


class Phase(enum.StrEnum):
    """A room's phase; the value is what travels in ``p``."""

    WAITING = "waiting"
    COUNTDOWN = "countdown"
    PLAYING = "playing"
    FINISHED = "finished"
    ABORTED = "aborted"


# One packer for the module: reusing it avoids building one per message (the
# reactor is single-threaded, and the packer resets itself on error).
_packer = msgpack.Packer()
_pack = _packer.pack


# The fixed parts of a state message: a map of 8 entries, then "t": "state".
_STATE_PREFIX = b"\x88" + _pack("t") + _pack("state")
_KEY_V = _pack("v")
_KEY_P = _pack("p")
_KEY_R = _pack("r")
_KEY_K = _pack("k")
_KEY_TS = _pack("ts")
_KEY_S = _pack("s")
_KEY_I = _pack("i")
_STATE_PREFIX_V = _STATE_PREFIX + _KEY_V
# "p": phase, packed once per phase (the phase is a str enum: packed as its value).
_PHASE_PACKED: dict[str, bytes] = {phase.value: _KEY_P + _pack(phase.value) for phase in Phase}


def encode_state_header(
    version: int, phase: str, remaining: float | None, tick: int = 0, server_time: int = 0
) -> bytes:
    """The part of a ``state`` message shared by every recipient of one snapshot."""
    packed_phase = _PHASE_PACKED.get(phase)
    if packed_phase is None:
        packed_phase = _KEY_P + _pack(str(phase))
    return b"".join(
        (
            _STATE_PREFIX_V,
            _pack(version),
            packed_phase,
            _KEY_R,
            _pack(remaining),
            _KEY_K,
            _pack(tick),
            _KEY_TS,
            _pack(server_time),
        )
    )


def encode_state_for(header: bytes, view: Mapping[str, Any], action_id: int | None) -> bytes:
    """A whole ``state`` message: `header` plus this recipient's view and action id.

    Raises TypeError if the view holds something msgpack cannot encode.
    """
    return b"".join((header, _KEY_S, _pack(view), _KEY_I, _pack(action_id)))


def encode_state(
    version: int,
    phase: str,
    remaining: float | None,
    view: Mapping[str, Any],
    action_id: int | None = None,
    tick: int = 0,
    server_time: int = 0,
) -> bytes:
    """A ``state`` message for one recipient (one msgpack call: the cheapest way).

    `tick` is the room's tick number, `server_time` its milliseconds since it
    opened. Raises TypeError if the view holds something msgpack cannot encode.
    """
    return _pack(
        {
            "t": "state",
            "v": version,
            "p": phase,
            "r": remaining,
            "k": tick,
            "ts": server_time,
            "s": view,
            "i": action_id,
        }
    )


def encode_shared_state(
    version: int,
    phase: str,
    remaining: float | None,
    view: Mapping[str, Any],
    tick: int = 0,
    server_time: int = 0,
) -> bytes:
    """A ``state`` message without its action id, for a view many recipients share.

    Each recipient's message is this plus `pack_action_id` of their own action id:
    byte for byte what `encode_state` gives them. Raises TypeError if the view
    holds something msgpack cannot encode.
    """
    header = encode_state_header(version, phase, remaining, tick, server_time)
    return b"".join((header, _KEY_S, _pack(view), _KEY_I))


def pack_action_id(action_id: int | None) -> bytes:
    """The last value of a ``state`` message: a recipient's action id (see
    `encode_shared_state`)."""
    return _pack(action_id)


def state_with_action_id(message: bytes, action_id: int | None, other: int | None) -> bytes:
    """`message` (from `encode_state` with `action_id`) for a recipient whose id is `other`.

    The action id is the message's last value, so everything before it (the
    view included) is reused as packed.
    """
    if other == action_id and type(other) is type(action_id):
        return message
    return message[: len(message) - len(_pack(action_id))] + _pack(other)


def encode_welcome(
    match_id: str,
    game: str,
    seat: int,
    seats: Sequence[Seat],
    reconnected: bool,
    title: str | None = None,
    tick_rate: float | None = None,
    snapshot_rate: float | None = None,
    quantisation: Sequence[tuple[str, float | str]] = (),
    schema: Sequence[Any] = (),
) -> bytes:
    """The ``welcome`` message opening a session; `title` is the game's display name,
    `tick_rate` and `snapshot_rate` its ticks and states per second (0: no tick),
    `quantisation` the game's rules (``q``, sent only when there are some), `schema`
    its view schema's declaration (``vs``, only when snaps may use it)."""
    message: dict[str, Any] = {
        "t": "welcome",
        "match": match_id,
        "game": game,
        "seat": seat,
        "players": [{"id": s.player_id, "name": s.name, "seat": s.index} for s in seats],
        "reconnected": reconnected,
    }
    if title is not None:
        message["title"] = title
    if tick_rate is not None:
        message["tick_rate"] = tick_rate
    if snapshot_rate is not None:
        message["snapshot_rate"] = snapshot_rate
    if quantisation:
        message["q"] = [[pattern, rule] for pattern, rule in quantisation]
    if schema:
        message["vs"] = list(schema)
    return _pack(message)


# A snap (docs/protocol.md §14): the one server message that is not a msgpack map, since
# it goes to every player every tick. Its first byte is the one msgpack never uses, so
# no reader takes it for msgpack; its numbers are LEB128, each below 2^53 (exact in a
# JavaScript number), written against the snap of the snapshot's baseline tick.
SNAP_MARKER: Final = 0xC1
_SNAP_MARKER: Final = bytes((SNAP_MARKER,))
SNAP_NUMBER_LIMIT: Final = 1 << 53

#: A snap's own numbers, kept by tick for the snaps against it: ``v``, ``ts`` and ``r``
#: in whole milliseconds (None: nil).
SnapFields = tuple[int, int, int | None]


def remaining_ms(remaining: float | None) -> int | None:
    """``r`` in whole milliseconds, as snaps carry it (None: nil): never below 0, as a
    phase's end may be a hair past when its last snap goes."""
    return None if remaining is None else max(0, round(remaining * 1000.0))


def encode_snap(
    fields: SnapFields,
    action_id: int | None,
    input_tick: int | None,
    tick: int,
    base: SnapFields | None,
    snapshot: bytes,
) -> bytes:
    """A ``snap`` (docs/protocol.md §14): byte ``c1``, then as LEB128 ``v``, ``ts``,
    ``r`` (0: nil), ``i`` (zigzag plus one; 0: nil) and ``ik`` as ``zigzag(ik - tick)
    + 1`` (0: nil), then `snapshot`, of `tick`. With `base`, the fields of the snap
    of the tick `snapshot` is a delta against: ``v - v_b``, ``ts - ts_b`` and ``r``
    as ``zigzag((ts + r) - (ts_b + r_b)) + 1`` (``r_b`` nil counting as 0); else
    ``v``, ``ts`` and ``r + 1``. ValueError for a number that does not fit (2^53:
    a version or a clock no room reaches)."""
    version, server_time, left = fields
    if base is None:
        if left is not None and left < 0:
            raise ValueError(f"a snap's time left below 0: {left}")
        v, ts = version, server_time
        r = 0 if left is None else left + 1
    else:
        v_b, ts_b, left_b = base
        v, ts = version - v_b, server_time - ts_b
        r = 0 if left is None else zigzag(server_time + left - ts_b - (left_b or 0)) + 1
    action = 0 if action_id is None else zigzag(action_id) + 1
    newest = 0 if input_tick is None else zigzag(input_tick - tick) + 1
    if not (0 <= v < SNAP_NUMBER_LIMIT and 0 <= ts < SNAP_NUMBER_LIMIT
            and 0 <= r < SNAP_NUMBER_LIMIT and action < SNAP_NUMBER_LIMIT
            and newest < SNAP_NUMBER_LIMIT):  # fmt: skip
        raise ValueError(f"a snap's numbers beyond 2^53: {fields}, {action_id}, {input_tick}")
    return b"".join((_SNAP_MARKER, write_uvar(v), write_uvar(ts), write_uvar(r),
                     write_uvar(action), write_uvar(newest), snapshot))  # fmt: skip


#: Snaps whose fields a host (by tick sent) and a client (by tick applied) keep for
#: the snaps against them: more than a snapshot history's baselines.
SNAP_FIELDS_KEPT: Final = 64


def encode_phase(
    phase: str,
    version: int,
    remaining: float | None,
    result: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> bytes:
    """A ``phase`` message; `result` for ``finished``, `reason` for ``aborted``."""
    message: dict[str, Any] = {"t": "phase", "p": phase, "v": version, "r": remaining}
    if result is not None:
        message["result"] = result
    if reason is not None:
        message["reason"] = reason
    return _pack(message)


def encode_event(version: int, name: str, data: Mapping[str, Any]) -> bytes:
    """An ``event`` message."""
    return _pack({"t": "event", "v": version, "e": name, "d": data})


def encode_error(code: str, message: str, action_id: int | None) -> bytes:
    """An ``error`` message answering a rejected action."""
    return _pack({"t": "error", "code": code, "message": message, "i": action_id})


def encode_presence(player_id: str, status: str) -> bytes:
    """A ``presence`` message: `status` is ``connected``, ``disconnected`` or ``left``."""
    return _pack({"t": "presence", "id": player_id, "status": status})


def ticking_ack_delays(tick_rate: float, snapshot_rate: float) -> tuple[float, float]:
    """How long each side of a ticking room's session holds an owed ack: (the host's,
    the client's). The host's acks ride on its next snap (a snapshot interval), the
    client's on its next input (a tick), so neither sends an ack-only datagram; each
    at most the transport's bound (`MAX_ACK_DELAY_S`)."""
    return min(MAX_ACK_DELAY_S, 1.0 / snapshot_rate), min(MAX_ACK_DELAY_S, 1.0 / tick_rate)
