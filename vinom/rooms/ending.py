"""How a room's match ends: finished, with the game's result, or aborted, with a reason.

`MatchEnd` is a part a `Room` (vinom.rooms.room) makes and holds (`ending`). It
owns the result or the reason and when the match ended, and does the end, once:
the room closes its last phase (`EndingMatch`), the recorder hears of it, the
players get the end and, reliably, the final state, and the owner's `on_end` is
called (it keeps the room a while, so that those messages are delivered).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from attrs import define

from vinom.games.interfaces import IGame
from vinom.rooms.messages import Phase, encode_phase
from vinom.rooms.realtime import RealTimeLoop
from vinom.rooms.record import MatchRecorder
from vinom.rooms.sending import RoomSending


class EndingMatch(Protocol):
    """What `MatchEnd` reads of its room, and how it closes the room's last phase."""

    state: Any
    version: int

    def end_in(self, phase: Phase) -> None: ...


@define(eq=False)
class MatchEnd:
    """The end of a `Room`'s match (module docstring)."""

    match: EndingMatch
    game: IGame
    sending: RoomSending
    # A ticking room's loop (None: turn-based), for the tick the recorder notes.
    loop: RealTimeLoop | None
    recorder: MatchRecorder | None
    # Called once, with the room, when it has ended.
    on_end: Callable[[Any], object] | None = None
    # The game's result once finished; the reason once aborted.
    result: Mapping[str, Any] | None = None
    abort_reason: str | None = None
    # When the match finished or was aborted.
    ended_at: float | None = None

    def finish(self, now: float) -> None:
        """End with the game's result (a game that fails to give one wins nobody)."""
        try:
            result = dict(self.game.result(self.match.state))
            # A result no room message can carry (an integer past 64 bits, say) is
            # the game's error too: found here, not while the end is being sent.
            encode_phase(Phase.FINISHED, self.match.version, None, result=result)
            self.result = result
        except Exception:
            self.sending.faults.failed("result")
            self.result = {"winners": [], "reason": "error"}
        self._end(Phase.FINISHED, now)

    def abort(self, reason: str, now: float) -> None:
        """End without a result, telling the connected players why (once: an ended
        match stays as it ended)."""
        if self.ended_at is None:
            self.abort_reason = reason
            self._end(Phase.ABORTED, now)

    def _end(self, phase: Phase, now: float) -> None:
        match, sending = self.match, self.sending
        self.ended_at = now
        match.end_in(phase)
        if self.recorder is not None:
            tick = 0 if self.loop is None else self.loop.tick_number
            self.recorder.end(phase.value, self.result, match.state, tick, match.version)
        sending.send_all(
            encode_phase(phase, match.version, None, result=self.result, reason=self.abort_reason)
        )
        # The final state goes on the reliable channel so that it is not lost.
        for member in sending.order:
            if member.session_id is not None:
                sending.send_state_reliably(member, now)
        if self.on_end is not None:
            self.on_end(match)
