"""Game hosts in child processes: supervised workers (`pool`), or a child per match
(`per_match`), each a `WorkerProcess` (`child`) running `main` over AMP (`commands`).

Both factories here are `IGameHostFactory`s for the hosting service, so the
lobby, the port allocator and the hosting service work as with inline hosts:

- `WorkerPool` (`--host-workers N`) keeps N long-lived worker processes
  (vinom.hosting.workers.main) and starts each match's host on the live worker with
  the fewest hosts. A worker that exits, is killed, or misses its heartbeats
  (a stopped process counts) is killed and replaced after a back-off.
- `ProcessPerMatch` (`--matches per-match`) gives each match a child of its
  own, taken from a small pool of pre-started children so that a match does
  not wait for a Python process to start; the child exits when its host stops.

Either way a host whose process is gone fires `when_idle` with its matches
recorded as aborted (reason `host_crashed`, or `shutdown` while the server
stops), so the hosting service returns its port to the allocator and the
lobby tells the players when they ask (`reconnect`).

Each child is configured over AMP on its pipes (vinom.hosting.workers.commands): the
token key never appears on its command line or in its environment.
"""

