"""twistd plugins: `twistd vinom` runs a vinom game server (vinom.server.tap), whole or one
role of a cluster (`twistd vinom lobby|host|gateway|relay`, the fleet's subcommands:
vinom_fleet.py); `twistd vinom-relay` is the previous spelling of `twistd vinom relay`
(vinom.fleet.relay, named here and imported only when it runs)."""

from twisted.application.service import ServiceMaker

vinom = ServiceMaker(
    "vinom",
    "vinom.server.tap",
    "A real-time multiplayer game server: TLS lobby, matchmaking and secure UDP game hosts.",
    "vinom",
)

vinom_relay = ServiceMaker(
    "vinom-relay",
    "vinom.fleet.relay",
    "vinom's UDP relay alone (now `twistd vinom relay`; this spelling goes in the next release).",
    "vinom-relay",
)
