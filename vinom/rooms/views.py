"""What a room sends its players: each one's view, encoded, and its notices (sans-I/O).

A `Room` decides when states go out (vinom.rooms.room: after a change, at a
tick's snapshot, periodically); `RoomViews` builds and sends them, one
unreliable message per connected player through the room's `Outbox`:

- `send_states`: a `state` (a game without a tick, or any game outside play).
  With a shared view (`GameRules.shared_view`) the view is built and encoded
  once for everyone, and each player's message is those bytes plus their own
  last action id (what `encode_state` would give them).
- `send_snaps`: a ticking room while playing, a `snap` per player, delta-encoded
  against the newest one they acknowledged (docs/protocol.md §14, §16); a shared
  view is built and quantised once, and a body encoded once per (baseline, view)
  pair, so that players who acknowledged the same tick get the same bytes. With a
  view schema, a row tuple the game puts in many views is made wire once a tick,
  and its change written once while the bodies share its baseline row
  (`SharedRows`, `SharedChanges`): players' views that overlap share that work.
- `shared_view_difference`: the debug check that a game which says it shares
  its view gives every seat the same one (`RoomConfig.check_views`, on while
  `check`); the room logs what it finds and turns `shared` and `check` off.

Neither sends to the `joining` member (see the attribute), and every state's
``ts`` counts from `started_at` (`server_time`). The reliable messages go out
here too: a player's own `state` (`send_state`), the room's notices to every
connected player or some of them (`send_reliably`), and `error`s (`send_error`).

Both run per recipient per state, the busiest code of a room. An error raised by
the game's `view` propagates: the room counts and logs it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from attrs import define, field

from vinom.games.interfaces import IGame
from vinom.protocol.events import RELIABLE, UNRELIABLE
from vinom.rooms.budget import PriorityQueue
from vinom.rooms.delta import Prepared, Quantisation
from vinom.rooms.member import Member
from vinom.rooms.messages import (
    SNAP_FIELDS_KEPT,
    Phase,
    SnapFields,
    encode_error,
    encode_shared_state,
    encode_snap,
    encode_state,
    pack_action_id,
    remaining_ms,
)
from vinom.rooms.outbox import Outbox
from vinom.rooms.realtime import SeatFeed
from vinom.rooms.schema import SharedChanges, SharedRows
from vinom.rooms.schema_frames import SchemaHistory, frame_header_bytes

# No action id at all (a broadcast's recipients' ids are int or None).
_NO_ACTION_ID = object()


@define(eq=False)
class RoomViews:
    """One room's way from its state to its players' messages."""

    game: IGame
    outbox: Outbox
    # The game's quantisation of its views, for snaps.
    quantisation: Quantisation
    # Every player gets the same view: the game's `shared_view`, until the debug
    # check finds that it does not.
    shared: bool
    # Each `snap` carries the CRC-32 of its view (RoomConfig.snapshot_checksums).
    checksums: bool
    # The debug check of `shared` is on (RoomConfig.check_views).
    check: bool = False
    # When the room opened: a state's time (its ``ts``) counts from it.
    started_at: float = 0.0
    # A game with a snapshot budget: the changed entities sent, and their waits.
    entity_counts: Counter[str] = field(factory=Counter)
    # The member whose session is being set up: left out of unreliable state
    # broadcasts until its welcome and its first state (both reliable) are queued,
    # since a body carries its unreliable messages before its reliable ones.
    joining: Member | None = None
    # The fields of the snaps of the last SNAP_FIELDS_KEPT ticks snaps went out at, by
    # tick: every snap (docs/protocol.md §14) is written against its baseline's.
    snap_fields: dict[int, SnapFields] = field(factory=dict)

    def server_time(self, now: float) -> int:
        """A state's ``ts`` at `now`: whole milliseconds since `started_at`."""
        return round((now - self.started_at) * 1000.0)

    def send_state(
        self,
        member: Member,
        version: int,
        phase: Phase,
        remaining: float | None,
        state: Any,
        tick: int,
        now: float,
    ) -> None:
        """This member's `state` on the reliable channel (joining, `sync`, the end).
        The member has a session; an error of the game's view propagates, unsent."""
        assert member.session_id is not None
        data = encode_state(
            version,
            phase,
            remaining,
            self.game.view(state, member.seat.player_id),
            member.last_action_id,
            tick,
            self.server_time(now),
        )
        self.outbox.send_message(member.session_id, RELIABLE, data)

    def send_reliably(
        self,
        members: Sequence[Member],
        data: bytes,
        to: Collection[str] | None = None,
        but: Member | None = None,
    ) -> None:
        """`data` on the reliable channel to every member with a session (of the
        players `to`, if given), but `but`."""
        send = self.outbox.send_message
        for member in members:
            session_id = member.session_id
            if (
                session_id is not None
                and member is not but
                and (to is None or member.seat.player_id in to)
            ):
                send(session_id, RELIABLE, data)

    def send_error(self, member: Member, code: str, message: str, action_id: int | None) -> None:
        """An `error` to this member, if it has a session."""
        if member.session_id is not None:
            self.outbox.send_message(
                member.session_id, RELIABLE, encode_error(code, message, action_id)
            )

    def send_states(
        self,
        members: Sequence[Member],
        version: int,
        phase: Phase,
        remaining: float | None,
        state: Any,
        tick: int,
        server_time: int,
    ) -> None:
        """A `state` to every member with a session but `joining` (unreliably)."""
        send = self.outbox.send_message
        joining = self.joining
        if self.shared:
            shared = b""
            data = b""
            last_id: object = _NO_ACTION_ID
            for member in members:
                session_id = member.session_id
                if session_id is None or member is joining:
                    continue
                if not shared:
                    view = self.game.view(state, member.seat.player_id)
                    shared = encode_shared_state(version, phase, remaining, view, tick, server_time)
                action_id = member.last_action_id
                if action_id is not last_id:
                    # Re-packed only when it differs from the last recipient's.
                    last_id = action_id
                    data = shared + pack_action_id(action_id)
                send(session_id, UNRELIABLE, data)
            return
        view_for = self.game.view
        for member in members:
            session_id = member.session_id
            if session_id is not None and member is not joining:
                view = view_for(state, member.seat.player_id)
                send(
                    session_id,
                    UNRELIABLE,
                    encode_state(
                        version, phase, remaining, view, member.last_action_id, tick, server_time
                    ),
                )

    def send_snaps(
        self,
        feeds: Iterable[SeatFeed],
        version: int,
        remaining: float | None,
        state: Any,
        tick: int,
        server_time: int,
    ) -> None:
        """A `snap` of tick `tick` to every seat (`SeatFeed`, in seat order) with a
        session and a snapshot history but `joining` (unreliably), each against their
        own baseline."""
        send = self.outbox.send_message
        quantisation, checksum = self.quantisation, self.checksums
        view_for = self.game.view
        shared, joining = self.shared, self.joining
        common: Prepared | None = None
        common_view: Any = None
        cache: dict[tuple[Prepared, Prepared], bytes] = {}
        schema_cache: dict[tuple[int, int], tuple[Any, Any, bytes]] = {}
        # The rows the views share and their changes: each made wire and written once.
        shared_rows: SharedRows = {}
        changes: SharedChanges = {}
        common_wire: tuple[Any, ...] | None = None
        common_crc: int | None = None
        fields: SnapFields = (version, server_time, remaining_ms(remaining))
        known = self.snap_fields
        known[tick] = fields
        if len(known) > SNAP_FIELDS_KEPT:
            del known[next(iter(known))]
        for feed in feeds:
            member = feed.member
            session_id = member.session_id
            history = feed.snapshots
            if session_id is None or member is joining or history is None:
                continue
            inputs = feed.inputs
            input_tick = None if inputs is None else inputs.newest
            if isinstance(history, SchemaHistory):
                # A session that reads schema snapshots (vinom.rooms.schema).
                schema = history.schema
                if shared and common_wire is not None:
                    wire, crc = common_wire, common_crc
                else:
                    if shared and common_view is not None:
                        view = common_view
                    else:
                        view = view_for(state, member.seat.player_id)
                    wire = schema.wire(view, shared_rows)
                    crc = schema.checksum(wire) if checksum else None
                    if shared:
                        common_view, common_wire, common_crc = view, wire, crc
                queue = feed.priorities
                if queue is None:
                    snapshot = history.encode_for(tick, wire, crc, schema_cache, None, changes)
                else:
                    # Cut to the game's byte budget (vinom.rooms.budget): this client's own.
                    known_base = history.baseline(tick)
                    base_tick, base_wire = (None, None) if known_base is None else known_base
                    before = queue.sent, queue.deferred, queue.overdue
                    header_bytes = frame_header_bytes(tick, base_tick, checksum)
                    cut, waiting = queue.fit_rows(common_view if shared else view, wire,
                                                  base_wire, schema, header_bytes)  # fmt: skip
                    self.count_entities(queue, before)
                    if cut is not wire and checksum:
                        crc = schema.checksum(cut)
                    snapshot = history.encode_for(tick, cut, crc, None, waiting, changes)
            else:
                if shared:
                    if common is None:
                        if common_view is None:
                            common_view = view_for(state, member.seat.player_id)
                        common = quantisation.prepare(common_view, checksum=checksum)
                    prepared, view = common, common_view
                else:
                    view = view_for(state, member.seat.player_id)
                    prepared = quantisation.prepare(view, checksum=checksum)
                snapshot = history.encode_for(tick, prepared, None, cache)
            # Its numbers against those of its baseline's snap, which the fields kept
            # always hold: snaps go out at most once a tick, and a history holds fewer
            # ticks than SNAP_FIELDS_KEPT.
            base_tick = history.base_tick
            against = None if base_tick is None else known[base_tick]
            send(session_id, UNRELIABLE, encode_snap(fields, member.last_action_id, input_tick,
                                                     tick, against, snapshot))  # fmt: skip

    def count_entities(self, queue: PriorityQueue, before: tuple[int, int, int]) -> None:
        """Add what `queue` sent, deferred and sent overdue since `before` (its three
        counts then) to `entity_counts`."""
        counts = self.entity_counts
        sent, deferred, overdue = before
        counts["sent"] += queue.sent - sent
        counts["deferred"] += queue.deferred - deferred
        if queue.overdue != overdue:
            counts["overdue"] += queue.overdue - overdue

    def shared_view_difference(
        self, state: Any, members: Sequence[Member]
    ) -> tuple[str, str] | None:
        """Two players whose views of `state` differ (the first seat's and another's),
        or None when every seat sees the same."""
        view_for = self.game.view
        first = members[0].seat.player_id
        expected = view_for(state, first)
        for member in members[1:]:
            player_id = member.seat.player_id
            if view_for(state, player_id) != expected:
                return first, player_id
        return None
