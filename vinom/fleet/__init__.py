"""vinom's fleet: what spreads the server over processes and machines, found by the server
as a Twisted plugin (vinom.server.fleet.IFleet; `plugin.py`).

`options.py` (its option groups, `twistd vinom gateway` and `relay`'s commands
and their checks), `redis.py` (`--redis` read, the Redis checked at start),
`shared.py` (the shared state on Redis, a cluster's game host parts),
`gateway.py` (`twistd vinom gateway`), `relay.py` (`twistd vinom relay`),
`agones.py` (a game host's Agones lifecycle), `record_fetch.py` (`vinom replay
--redis`). It uses the Redis wing (vinom.cluster) and the gateway
(vinom.gateway); nothing of the core imports any of them (tests/test_layers.py).
"""
