"""The gateway: one public TCP port in front of many lobbies (docs/gateway.md).

It sniffs what a connection speaks (sniff), picks a backend by the rule set in
force (rules, router), replays the bytes it read behind a PROXY protocol v2
header and splices both ways (proxy), checks its backends' health (health),
and takes new rule sets whole or not at all (service). Where the rules come
from (a file, Redis) is the server wiring's and the Redis wing's business.

The UDP relay (relay_core, the sans-I/O core; relay, its Twisted side) is one
public UDP port range in front of game hosts without public addresses.
"""
