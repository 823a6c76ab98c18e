"""Token delivery: the `match_found` frame that carries a player's connect token.

The one place the lobby asks its `ITokenIssuer` for a token, both when a
match is placed and when a player `reconnect`s to a running match. When the
game hosts sit behind a UDP relay (`RelayRouting`), the frame also carries the
relay's address and a fresh route token (docs/gateway.md, "UDP relay").
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from typing import Any

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

from vinom.games.rules import GameRules
from vinom.hosting.spectators import SPECTATOR_PREFIX
from vinom.lobby.codec import encode_frame
from vinom.match import Match, Ticket
from vinom.protocol.address import HostAddress
from vinom.protocol.interfaces import ITokenIssuer
from vinom.protocol.route_token import RouteTokenIssuer, relayable
from vinom.protocol.tokens import TokenIssuer
from vinom.store.interfaces import MatchPlacement


class UnroutableHost(ValueError):
    """The match's game host announces a name, which no route token can carry."""


@define
class RelayRouting:
    """Game hosts behind a UDP relay: the relay's public address and the route tokens.

    `ports` is the relay's public port range; each token names one of them,
    picked by its nonce's first byte, which is random: players spread over the
    range with no other source of randomness.
    """

    host: str
    ports: range
    issuer: RouteTokenIssuer

    def route_of(self, address: HostAddress, now: float) -> dict[str, Any]:
        """`match_found`'s `relay`: where to send, and the token routing to `address`."""
        if not relayable(address.host):
            raise UnroutableHost(
                f"game host {address.host!r} announces a name (its --public-host), not an IP "
                "address: no route token through the relay (--relay) can name it"
            )
        token = self.issuer.issue(address.host, address.port, now)
        port = self.ports[token[1] % len(self.ports)]
        return {"host": self.host, "port": port,
                "token": base64.b64encode(token).decode("ascii")}  # fmt: skip


@define
class TokenDelivery:
    """Issues connect tokens and wraps each in a `match_found` frame.

    `games`: the games' rules; a player's `team` is their seat // team size
    in a game with teams, their seat elsewhere.
    """

    issuer: ITokenIssuer
    clock: IReactorTime
    games: Mapping[str, GameRules] = field(factory=dict)
    relay: RelayRouting | None = None

    def match_found_frame(
        self, match: Match, ticket: Ticket, address: HostAddress
    ) -> dict[str, Any]:
        """The `match_found` frame of `ticket`'s player; raises if no token can be issued."""
        seat = match.player_ids.index(ticket.player_id)
        rules = self.games.get(match.game)
        team_size = None if rules is None else rules.team_size
        token = dict(
            self.issuer.issue(
                ticket.player_id,
                match.match_id,
                address,
                self.clock.seconds(),
                name=ticket.name,
                team=seat if team_size is None else seat // team_size,
                rating=ticket.rating,
            )
        )
        expires_at = token.get("expires_at")
        frame: dict[str, Any] = {
            "type": "match_found",
            "game": match.game,
            "game_id": match.match_id,
            "host": address.host,
            "port": address.port,
            "seat": seat,
            "token": token,
            "expires_at": expires_at if isinstance(expires_at, int | float) else None,
        }
        if self.relay is not None:
            # Players send to the relay, never to the host itself (the browser's
            # /game below is not relayed).
            relay = frame["relay"] = self.relay.route_of(address, self.clock.seconds())
            frame["host"], frame["port"] = relay["host"], relay["port"]
            # The token's public `hosts` only says where to send; the sealed part,
            # which the host checks, keeps the host's own address. Players are
            # told the relay's, never the host's private one.
            token["hosts"] = [{"host": relay["host"], "port": relay["port"]}]
        if address.game_url is not None:
            # Where a browser plays this match: the /game of the process hosting it.
            frame["game_url"] = address.game_url
        if not isinstance(self.issuer, TokenIssuer):
            # Another issuer's token may hold what JSON cannot: it fails here, not
            # mid-write. vinom's own are JSON by construction (PublicToken.to_json),
            # and encoding the 2 KB frame here and again when it is sent cost about
            # 20 us a player.
            encode_frame(frame)
        return frame

    def spectating_frame(self, placement: MatchPlacement) -> dict[str, Any]:
        """The `spectating` frame: a token of a fresh spectator id for the match's host,
        which feeds that session the game's public view (vinom.hosting.spectators)."""
        match, address = placement.match, placement.address
        spectator = SPECTATOR_PREFIX + secrets.token_hex(8)
        token = dict(self.issuer.issue(spectator, match.match_id, address, self.clock.seconds()))
        frame: dict[str, Any] = {
            "type": "spectating",
            "game": match.game,
            "game_id": match.match_id,
            "host": address.host,
            "port": address.port,
            "players": [{"id": t.player_id, "name": t.name} for t in match.players],
            "token": token,
        }
        if self.relay is not None:
            # As for a player (match_found): UDP goes through the relay.
            relay = frame["relay"] = self.relay.route_of(address, self.clock.seconds())
            frame["host"], frame["port"] = relay["host"], relay["port"]
            token["hosts"] = [{"host": relay["host"], "port": relay["port"]}]
        if address.game_url is not None:
            frame["game_url"] = address.game_url
        encode_frame(frame)
        return frame
