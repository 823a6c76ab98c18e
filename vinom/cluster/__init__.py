"""The Redis wing: every part of vinom that shares its state through Redis.

The settings of every part, with their one validator (`settings`), the
client, its script loader and its clock (`client`, `clock`), the shared matchmaker
(`matchmaker` with `matchmaker.lua`), parties (`parties`, its writes checked by
`checked` with `checked.lua`),
the player store (`players`), the host registry (`hosts`), match placement
across processes (`placement` in lobbies, `agent` in game hosts, `channel`
what both ends share), per-address limits (`address_limits`) and the
services that start and stop them (`services`). Each implements an interface
of the layer it serves (matchmaking, parties, store, hosting, lobby) and
fails with `vinom.errors.BackendUnavailable`; only the server wiring
(vinom.server.roles) builds them, so nothing below knows whether its state is shared.
"""
