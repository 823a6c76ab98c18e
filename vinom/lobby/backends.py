"""`LobbyBackends`: the services a lobby stands on, handed to `LobbyFactory` as one value.

The lobby keeps its own state (connections, limits, kept places) and asks
these for the rest: where tickets wait (`matchmaker`), where matches are
played (`hosting`), where player records are kept (`store`), who signs
connect tokens (`token_issuer`), and the optional ones: where parties are
kept, how `party_join` attempts are counted, where ranked ratings come from,
and the UDP relay in front of the game hosts. Whether other lobbies share
them is theirs to say (each hosting saves its own placements):
the server wiring chooses in memory or in Redis (vinom.server.roles), a test
its own, and the lobby is built the same way for each.
"""

from __future__ import annotations

from attrs import frozen

from vinom.accounts.interfaces import IAccountStore, IAuthenticator
from vinom.hosting.interfaces import IMatchHosting, IRankedResults
from vinom.lobby.delivery import RelayRouting
from vinom.lobby.ratings import IRatingSource
from vinom.matchmaking.interfaces import IMatchmaker
from vinom.net.limits import IAddressLimiter
from vinom.parties.interfaces import IPartyStore
from vinom.protocol.interfaces import ITokenIssuer
from vinom.store.interfaces import IPlayerStore


@frozen
class LobbyBackends:
    """What a lobby uses and does not own.

    `parties`: where parties are kept (None: in memory, for this lobby alone).
    `party_joins`: the limit of `party_join` attempts per address (None: counted
    in this process; lobbies sharing Redis share a `RedisAddressLimiter`).
    `ratings`: the rating of each ranked ticket (None: the client's claim,
    vinom.lobby.ratings). `authenticator`, `accounts`: vinom.lobby.auth. `relay`:
    the UDP relay the game hosts sit behind, if any (`match_found` then carries its
    address and a route token). `results`: vinom.lobby.match_ratings.
    """

    matchmaker: IMatchmaker
    hosting: IMatchHosting
    store: IPlayerStore
    token_issuer: ITokenIssuer
    parties: IPartyStore | None = None
    party_joins: IAddressLimiter | None = None
    ratings: IRatingSource | None = None
    relay: RelayRouting | None = None
    # Who proves the players' identities at `hello` (None: guests, as ever), and
    # where their accounts are kept (None: no accounts; a signed-in player's id is
    # derived from their identity).
    authenticator: IAuthenticator | None = None
    accounts: IAccountStore | None = None
    # With hosts elsewhere, every ranked match's end, whichever lobby followed it (a
    # lobby that died included): the lobby rates each it is handed (None: the ends it
    # hears through `hosting` are all there are).
    results: IRankedResults | None = None
