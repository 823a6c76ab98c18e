"""twistd plugin: `twistd vinom` runs a vinom game server (see vinom.server.tap)."""

from twisted.application.service import ServiceMaker

vinom = ServiceMaker(
    "vinom",
    "vinom.server.tap",
    "A real-time multiplayer game server: TLS lobby, matchmaking and secure UDP game hosts.",
    "vinom",
)
