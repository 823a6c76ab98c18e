"""The one error every shared backend raises when its state is out of reach.

The matchmaker, party store, player store, host registry and placement
channel each have an in-process implementation and one that lives in Redis
(vinom.cluster). Callers above them (rooms, the lobby) catch
`BackendUnavailable` without knowing which one they hold.
"""


class BackendUnavailable(Exception):
    """A shared backend did not answer in time, or the connection to it is down.

    The call it failed did nothing, unless the backend's documentation says
    otherwise (docs/scaling.md, "A call Redis runs late").
    """
