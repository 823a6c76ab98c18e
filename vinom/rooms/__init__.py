"""Rooms and the session manager: matches played on a game host.

- `vinom.rooms.messages`: the application messages on the UDP channels.
- `vinom.rooms.room`: `Room`, one match's lifecycle around the game's state.
- `vinom.rooms.registry`: `RoomRegistry`, a game host's rooms by match id.
- `vinom.rooms.session_manager`: `SessionManager`, admission, routing and
  per-player rate limits.
- `vinom.ratelimit`: `TokenBucket`, behind those rate limits.
"""

from vinom.rooms.registry import RoomExists, RoomRegistry
from vinom.rooms.room import Room, RoomConfig
from vinom.rooms.session_manager import SessionManager

__all__ = ["Room", "RoomConfig", "RoomExists", "RoomRegistry", "SessionManager"]
