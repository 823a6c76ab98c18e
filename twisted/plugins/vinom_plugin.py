"""twistd plugin: `twistd vinom` runs a vinom game server (see vinom.tap)."""

from twisted.application.service import ServiceMaker

vinom = ServiceMaker(
    "vinom",
    "vinom.tap",
    "A real-time multiplayer game server: TLS lobby, matchmaking and secure UDP game hosts.",
    "vinom",
)
