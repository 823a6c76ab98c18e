"""The watch guard: survivors judge nobody dead for an outage of Redis itself.

A host is judged dead when its key has expired, a lobby when its lease has:
both live a few seconds past their last renewal. When Redis itself is away
for longer (a Sentinel failover, a restart with persistence, an outage), every
key and lease has expired when it is back, although the hosts and lobbies
lived on and simply could not renew: the first survivor to reach it would end
every running match as `host_crashed`, take every member of another lobby out
of their party and drop other lobbies' tickets.

So every script that judges a death first runs `watch.lua` (beside this
module) on one key, `<key_prefix>watch` (`watch_key`): it says since when
Redis has been watched without a break, that is with some process calling it
at least every `WATCH_BREAK` seconds (each lobby calls it every 0.5 s to read
the hosts, each host every 0.5 s to renew its registration). A missing key
or lease proves a death only once the watch has lasted the lease and the
interval of its renewals (`settle`: `host_ttl + heartbeat_every` for a host,
`lobby_lease + tick_every` for a lobby); until then a missing host is left in
the registry unclaimed, a lobby without a lease is `away` (its tickets wait,
its party members stay). docs/scaling.md, "Redis keys" and "When something
fails", has the rule.
"""

from __future__ import annotations

from importlib import resources

from vinom.cluster.client import Script, milliseconds

# Redis is thought to have been away once nobody has called it for this long. Longer
# than the longest interval between one lobby's calls (its matchmaker's tick, 1 s),
# shorter than the time a lease has left after a renewal missed (lease less interval).
WATCH_BREAK = 1.5

_SOURCE = resources.files("vinom.cluster").joinpath("watch.lua").read_text("utf-8")


def watch_key(key_prefix: str) -> str:
    """The guard's key under a process's `key_prefix` (one for the whole cluster)."""
    return key_prefix + "watch"


def guarded(source: str, settle: float, break_after: float = WATCH_BREAK) -> Script:
    """`source` with the guard before it: a Lua function `watch(key)` that renews the
    watch and answers whether it has lasted `settle` seconds (deaths may be judged)."""
    prelude = (
        f"local WATCH_BREAK_MS, WATCH_SETTLE_MS = {milliseconds(break_after)}, "
        f"{round(settle * 1000)}\n"
    )
    return Script(prelude + _SOURCE + source)
