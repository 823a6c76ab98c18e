"""twistd plugins: `twistd vinom` runs a vinom game server (vinom.server.tap), `twistd
vinom-relay` its UDP relay alone (vinom.server.relay)."""

from twisted.application.service import ServiceMaker

vinom = ServiceMaker(
    "vinom",
    "vinom.server.tap",
    "A real-time multiplayer game server: TLS lobby, matchmaking and secure UDP game hosts.",
    "vinom",
)

vinom_relay = ServiceMaker(
    "vinom-relay",
    "vinom.server.relay",
    "vinom's UDP relay alone: players' game datagrams forwarded by route token.",
    "vinom-relay",
)
