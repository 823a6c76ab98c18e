"""`RoomConfig`: the timing and the options of a host's rooms.

A game host passes one to every room it makes (a match may bring its own);
`twistd vinom`'s options set it (docs/operations.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

#: The environment variable that turns on the check of games' `shared_view`
#: (`RoomConfig.check_views`): "1", "true", "yes" or "on".
CHECK_VIEWS_ENV = "VINOM_CHECK_VIEWS"


def check_views_from_env() -> bool:
    """Whether `VINOM_CHECK_VIEWS` asks rooms to check games' `shared_view`."""
    return os.environ.get(CHECK_VIEWS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@frozen
class RoomConfig:
    """Timing of a room's lifecycle, in seconds."""

    # Every player must connect within this time of the room's creation.
    connect_deadline: float = 30.0
    # A player whose session closes keeps the seat this long.
    reconnect_grace: float = 30.0
    # A state is also sent when none was sent for this long (0: only on change).
    state_interval: float = 1.0
    # Passed to the game's `create`.
    options: Mapping[str, Any] = field(factory=dict)
    # Seconds a bot seat waits after a change before it acts (as a person would).
    bot_think_time: float = 0.5
    # Debug: for a game that says `shared_view = True`, build every seat's view
    # on each change and compare them (a game that hides something must not
    # say it shares its view). Default: the VINOM_CHECK_VIEWS environment variable.
    check_views: bool = field(factory=check_views_from_env)
    # Each `snap` carries the CRC-32 of the view (docs/protocol.md §16.4), so that
    # a client proves the view it rebuilt is the server's (tests; costs host CPU).
    snapshot_checksums: bool = False
