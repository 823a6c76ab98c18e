"""Rooms and the seat router: matches played on a game host, sans-I/O.

- `vinom.rooms.messages`: the application messages on the UDP channels.
- `vinom.rooms.room`: `Room`, one match's lifecycle around the game's state;
  its seats and sessions in `vinom.rooms.seating`, its actions and inputs in
  `vinom.rooms.acting`, what it sends in `vinom.rooms.sending`.
- `vinom.rooms.realtime`: `RealTimeLoop`, a ticking room's fixed step, inputs,
  snapshot schedule and tick history (a turn-based room holds none).
- `vinom.rooms.registry`: `RoomRegistry`, a game host's rooms by match id.
- `vinom.rooms.router`: `SeatRouter`, admission, binding sessions to seats
  and per-player rate limits.
- `vinom.rooms.timers`: `TimerQueue`, every deadline of the rooms and the
  router in one heap.
- `vinom.rooms.outbox`: `Outbox`, where rooms queue what they send.
- `vinom.net.ratelimit`: `TokenBucket`, behind the rate limits.
"""

from vinom.rooms.registry import RoomExists, RoomRegistry
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.router import SeatRouter
from vinom.rooms.timers import TimerQueue

__all__ = ["Room", "RoomConfig", "RoomExists", "RoomRegistry", "SeatRouter", "TimerQueue"]
