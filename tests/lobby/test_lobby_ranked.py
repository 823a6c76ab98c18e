"""Ranked queueing through the lobby (docs/lobby.md, "queue → queued"): the `queue`
field, ratings checked by the codec and decided by the rating source, windows that
widen while players wait, and a party matched at its members' mean rating.
Driven through StringTransport and Clock, with the in-memory matchmaker."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.lobby.test_lobby import Client, LobbyHarness
from tests.lobby.test_lobby_parties import PARTY_GAMES
from vinom.games.rules import GameCatalogue
from vinom.lobby import errors
from vinom.lobby.ratings import IRatingSource, RatingRefused, party_rating
from vinom.lobby.server import PlayerState
from vinom.match import Match
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.matchmaking.windows import RatingWindow

# Two ratings 400 apart fit each other's windows after 3 s of waiting (100 + 100 * 3).
WINDOW = RatingWindow(base=100, growth=100)


@implementer(IRatingSource)
class ServerRatings:
    """A game server's own ratings: the client's claim is ignored; `refused` players are
    turned away; a player in `slow` is answered only when the test fires their Deferred."""

    def __init__(self, ratings: dict[str, float | None]) -> None:
        self.ratings = ratings
        self.refused: set[str] = set()
        self.slow: dict[str, Deferred[float | None]] = {}
        self.asked: list[tuple[str, str, float | None]] = []

    def rating(self, player_id: str, game: str, claimed: float | None) -> Deferred[float | None]:
        self.asked.append((player_id, game, claimed))
        if player_id in self.refused:
            raise RatingRefused("no ranked play before ten normal matches")
        if player_id in self.slow:
            return self.slow[player_id]
        return succeed(self.ratings.get(player_id))


class RankedHarness(LobbyHarness):
    """A lobby whose matchmaker keeps ranked queues with `WINDOW`, and `source` as its
    rating source (None: the default, the client's claim)."""

    source: ServerRatings | None = None

    def setUp(self) -> None:
        super().setUp()
        self.use(self.lobby_match_sizes())

    def lobby_match_sizes(self) -> dict[str, int]:
        return {"tictactoe": 2, "maze": 3}

    # Games with teams, by name (a ranked party fills at most one team).
    team_sizes: dict[str, int] = {}

    def use(self, match_sizes: dict[str, int], source: IRatingSource | None = None) -> None:
        games = GameCatalogue.sized(match_sizes, team_sizes=self.team_sizes,
                                    windows=dict.fromkeys(match_sizes, WINDOW))  # fmt: skip
        self.matchmaker = MemoryMatchmaker(games, self.clock)  # type: ignore[assignment]
        self.addCleanup(self.matchmaker.stop)
        self.matches: list[Match] = []
        self.matchmaker.add_listener(self.matches.append)
        self.factory = self.make_factory(
            games=games, matchmaker=self.matchmaker, ratings=source or self.source
        )
        self.factory.startService()

    def player(self, name: str) -> Client:
        client = self.connect()
        client.hello(name)
        return client

    def ranked(self, client: Client, rating: float | None, game: str = "tictactoe",
               **extra: Any) -> dict[str, Any]:  # fmt: skip
        """`client`'s ranked queue request, answered with one frame (queued or error)."""
        frame: dict[str, Any] = {"type": "queue", "game": game, "queue": "ranked", **extra}
        if rating is not None:
            frame["rating"] = rating
        client.send(frame)
        frames = client.frames()
        client.unread = frames[1:]
        return frames[0]


class RankedQueueTests(RankedHarness):
    def test_close_ratings_are_matched_at_once_and_queued_echoes_the_queue(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        queued = self.ranked(ann, 1500, id="r")
        self.assertEqual(
            queued,
            {"type": "queued", "id": "r", "game": "tictactoe", "queue": "ranked", "position": 1,
             "status": "searching"},
        )  # fmt: skip
        self.ranked(bob, 1580)
        self.assertEqual([f["type"] for f in bob.frames()], ["match_found"])
        [match] = self.matches
        self.assertEqual([t.queue for t in match.players], ["ranked", "ranked"])
        self.assertEqual([t.rating for t in match.players], [1500.0, 1580.0])
        self.assertEqual(ann.frames()[0]["type"], "match_found")

    def test_far_ratings_wait_until_their_windows_have_widened(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.ranked(ann, 1500)
        self.assertEqual(self.ranked(bob, 1900)["type"], "queued")
        # 400 apart: Ann's window is 100 + 100 t, Bob's the same; both reach 400 at t = 3 s.
        self.wait(2, ann, bob)
        self.assertEqual(self.matches, [])
        self.assertIs(self.factory.state_of(ann.player_id or ""), PlayerState.QUEUED)
        self.wait(2, ann, bob)
        [match] = self.matches
        self.assertEqual({t.player_id for t in match.players}, {ann.player_id, bob.player_id})
        for client in (ann, bob):
            self.assertIn("match_found", [f["type"] for f in client.frames()])

    def test_a_ranked_player_is_not_matched_with_a_normal_one(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.ranked(ann, 1500)
        normal = bob.request({"type": "queue", "game": "tictactoe", "rating": 1500})
        self.assertEqual((normal["type"], normal["queue"]), ("queued", "normal"))
        self.wait(3, ann, bob)
        self.assertEqual(self.matches, [])
        self.assertEqual(self.matchmaker.queue_length("tictactoe", "ranked"), 1)
        self.assertEqual(self.matchmaker.queue_length("tictactoe", "normal"), 1)

    def test_queue_null_is_the_normal_queue(self) -> None:
        ann = self.player("Ann")
        queued = ann.request({"type": "queue", "game": "tictactoe", "queue": None})
        self.assertEqual(queued["queue"], "normal")
        self.assertEqual(self.matchmaker.queue_length("tictactoe", "normal"), 1)

    def test_an_unrated_ranked_player_fits_any_window(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.ranked(ann, 1500)
        self.ranked(bob, None)
        self.assertEqual([f["type"] for f in bob.frames()], ["match_found"])
        self.assertEqual([t.rating for t in self.matches[0].players], [1500.0, None])

    def test_unknown_queue(self) -> None:
        ann = self.player("Ann")
        reply = ann.request({"type": "queue", "game": "tictactoe", "queue": "casual", "id": 4})
        self.assert_error(reply, errors.UNKNOWN_QUEUE, 4)
        self.assertIn('"casual"', reply["message"])
        self.assertIn("ranked", reply["message"])
        self.assertIs(self.factory.state_of(ann.player_id or ""), PlayerState.IDLE)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        # The player may queue at once in a queue that exists.
        self.assertEqual(self.ranked(ann, 1500)["type"], "queued")

    def test_a_queue_that_is_not_a_name_is_an_invalid_field(self) -> None:
        ann = self.player("Ann")
        for queue in (5, True, "", "r" * 33, ["ranked"]):
            with self.subTest(queue=queue):
                reply = ann.request({"type": "queue", "game": "tictactoe", "queue": queue})
                self.assert_error(reply, errors.INVALID_FIELD)
                self.assertIn("'queue'", reply["message"])
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)

    def test_bad_ratings_are_refused_with_invalid_field(self) -> None:
        ann = self.player("Ann")
        for rating in ("1500", True, 1e300, -1e10, 1_000_000_001, [1500], {"mu": 25}):
            with self.subTest(rating=rating):
                reply = ann.request(
                    {"type": "queue", "game": "tictactoe", "queue": "ranked", "rating": rating}
                )
                self.assert_error(reply, errors.INVALID_FIELD)
                self.assertIn("'rating' must be a finite number", reply["message"])
        # JSON has no NaN or Infinity: the frame is not JSON at all.
        ann.send(b'{"type":"queue","game":"tictactoe","queue":"ranked","rating":NaN}\n')
        self.assert_error(ann.frames()[0], errors.MALFORMED_JSON)
        self.assertIs(self.factory.state_of(ann.player_id or ""), PlayerState.IDLE)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)

    def test_ratings_at_the_ends_of_the_range_are_taken(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.assertEqual(self.ranked(ann, -1_000_000_000)["type"], "queued")
        self.assertEqual(self.ranked(bob, 1e9)["type"], "queued")
        self.assertEqual(self.matches, [])


class RatingSourceTests(RankedHarness):
    source = None

    def setUp(self) -> None:
        self.source = ServerRatings({})
        super().setUp()

    def test_the_servers_rating_replaces_the_claim(self) -> None:
        assert self.source is not None
        ann, bob = self.player("Ann"), self.player("Bob")
        self.source.ratings.update({ann.player_id or "": 1500.0, bob.player_id or "": 1520.0})
        # Bob claims 3000; the server knows better, and matches him with Ann at once.
        self.ranked(ann, 1500)
        self.ranked(bob, 3000)
        self.assertEqual([f["type"] for f in bob.frames()], ["match_found"])
        self.assertEqual([t.rating for t in self.matches[0].players], [1500.0, 1520.0])
        self.assertEqual(self.source.asked[1], (bob.player_id, "tictactoe", 3000.0))

    def test_the_normal_queue_does_not_ask_the_source(self) -> None:
        assert self.source is not None
        ann = self.player("Ann")
        ann.request({"type": "queue", "game": "tictactoe", "rating": 1200})
        self.assertEqual(self.source.asked, [])

    def test_a_refused_rating_is_rating_refused_and_not_counted(self) -> None:
        assert self.source is not None
        ann = self.player("Ann")
        self.source.refused.add(ann.player_id or "")
        for _ in range(self.config.max_protocol_errors + 1):
            reply = self.ranked(ann, 1500, id="q")
            self.assert_error(reply, errors.RATING_REFUSED, "q")
            self.assertEqual(reply["message"], "no ranked play before ten normal matches")
        self.assertFalse(ann.closed)
        self.assertIs(self.factory.state_of(ann.player_id or ""), PlayerState.IDLE)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)
        # The normal queue is still open to them.
        queued = ann.request({"type": "queue", "game": "tictactoe"})
        self.assertEqual((queued["type"], queued["queue"]), ("queued", "normal"))

    def test_a_rating_the_source_gets_wrong_is_an_internal_error(self) -> None:
        assert self.source is not None
        ann = self.player("Ann")
        self.source.ratings[ann.player_id or ""] = float("nan")
        self.assert_error(self.ranked(ann, None), errors.INTERNAL_ERROR)
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)
        self.assertIs(self.factory.state_of(ann.player_id or ""), PlayerState.IDLE)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)

    def test_frames_wait_while_the_source_looks_the_rating_up(self) -> None:
        assert self.source is not None
        ann = self.player("Ann")
        lookup: Deferred[float | None] = Deferred()
        self.source.slow[ann.player_id or ""] = lookup
        ann.send({"type": "queue", "game": "tictactoe", "queue": "ranked", "id": 1})
        ann.send({"type": "ping", "id": 2})
        self.assertEqual(ann.frames(), [])
        lookup.callback(1500.0)
        self.assertEqual(
            [(f["type"], f["id"]) for f in ann.frames()], [("queued", 1), ("pong", 2)]
        )
        self.assertEqual(self.matchmaker.queue_length("tictactoe", "ranked"), 1)

    def test_a_player_who_leaves_during_the_lookup_is_not_queued(self) -> None:
        assert self.source is not None
        ann = self.player("Ann")
        lookup: Deferred[float | None] = Deferred()
        self.source.slow[ann.player_id or ""] = lookup
        ann.send({"type": "queue", "game": "tictactoe", "queue": "ranked"})
        ann.drop()
        lookup.callback(1500.0)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        self.assertEqual(self.factory.pending_from("192.0.2.1"), 0)

    def test_a_drain_during_the_lookup_refuses_the_ticket(self) -> None:
        assert self.source is not None
        ann = self.player("Ann")
        lookup: Deferred[float | None] = Deferred()
        self.source.slow[ann.player_id or ""] = lookup
        ann.send({"type": "queue", "game": "tictactoe", "queue": "ranked", "id": 3})
        self.factory.drain()
        lookup.callback(1500.0)
        self.assert_error(ann.frames()[0], errors.SERVER_DRAINING, 3)
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)


class RankedPartyTests(RankedHarness):
    ports = (7400, 7401, 7402)
    # The maze of these tests seats two teams of two.
    team_sizes = {"maze": 2}

    def lobby_match_sizes(self) -> dict[str, int]:
        return PARTY_GAMES

    def party_of(self, leader: Client, *others: Client) -> dict[str, Any]:
        party = leader.request({"type": "party_create"})["party"]
        for other in others:
            party = other.request({"type": "party_join", "code": party["code"]})["party"]
        for client in (leader, *others):
            client.frames()
        return party

    def test_the_leader_queues_the_party_ranked_and_the_members_are_told_the_queue(
        self,
    ) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        party = self.party_of(ann, bob)
        queued = self.ranked(ann, 1500, game="maze")
        self.assertEqual((queued["queue"], queued["party_id"]), ("ranked", party["party_id"]))
        update, told = bob.frames()
        self.assertEqual((update["event"], update["party"]["queue"]), ("queued", "ranked"))
        self.assertEqual(
            told,
            {"type": "queued", "game": "maze", "queue": "ranked", "position": 1,
             "status": "searching", "party_id": party["party_id"]},
        )  # fmt: skip
        self.assertEqual(self.matchmaker.queue_length("maze", "ranked"), 1)

    def test_by_default_every_member_carries_the_leaders_claim(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        self.ranked(ann, 1500, game="maze")
        far, near = self.player("Far"), self.player("Near")
        self.assertEqual(self.ranked(far, 2500, game="maze")["type"], "queued")
        self.ranked(near, 1550, game="maze")
        self.assertEqual(self.matches, [])
        self.ranked(self.player("Nia"), 1450, game="maze")
        [match] = self.matches
        self.assertEqual([t.name for t in match.players], ["Ann", "Bob", "Near", "Nia"])
        self.assertEqual([t.rating for t in match.players], [1500.0, 1500.0, 1550.0, 1450.0])
        self.assertEqual(self.matchmaker.queue_length("maze", "ranked"), 1)  # Far waits

    def test_a_party_is_matched_at_its_members_mean_rating(self) -> None:
        source = ServerRatings({})
        self.use(PARTY_GAMES, source)
        ann, bob = self.player("Ann"), self.player("Bob")
        source.ratings.update({ann.player_id or "": 1200.0, bob.player_id or "": 1800.0})
        self.party_of(ann, bob)
        self.ranked(ann, 9999, game="maze")
        self.assertEqual(
            [a[0] for a in source.asked], [ann.player_id, bob.player_id]
        )
        self.assertEqual({a[2] for a in source.asked}, {9999.0})
        # Near the mean (1500), far from both members: matched at once.
        for name, rating in (("Sol", 1540.0), ("Sue", 1460.0)):
            client = self.player(name)
            source.ratings[client.player_id or ""] = rating
            self.ranked(client, None, game="maze")
        [match] = self.matches
        self.assertEqual([t.rating for t in match.players], [1500.0, 1500.0, 1540.0, 1460.0])
        self.assertEqual(match.players[0].party_id, match.players[1].party_id)

    def test_a_party_never_queues_ranked_against_itself(self) -> None:
        # A party of two in tictactoe's two seats would be each other's opponent: a
        # ranked win for the leader when the partner leaves, over and over.
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        reply = self.ranked(ann, 1500, id=3)
        self.assert_error(reply, errors.PARTY_TOO_LARGE, 3)
        self.assertEqual(reply["largest"], 1)
        self.assertIn("never seats a party's members against each other", reply["message"])
        self.assertEqual((self.matches, bob.frames()), ([], []))
        for client in (ann, bob):
            self.assertIs(self.factory.state_of(client.player_id or ""), PlayerState.IDLE)
        # Together in the normal queue they may play each other, unrated.
        ann.send({"type": "queue", "game": "tictactoe"})
        [match] = self.matches
        self.assertEqual((match.ranked, match.player_ids), (False, (ann.player_id, bob.player_id)))

    def test_a_refused_member_refuses_the_partys_queue(self) -> None:
        source = ServerRatings({})
        self.use(PARTY_GAMES, source)
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        source.refused.add(bob.player_id or "")
        self.assert_error(self.ranked(ann, 1500, game="maze", id=8), errors.RATING_REFUSED, 8)
        self.assertEqual(bob.frames(), [])
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        for client in (ann, bob):
            self.assertIs(self.factory.state_of(client.player_id or ""), PlayerState.IDLE)


class PartyRatingTests(SynchronousTestCase):
    def test_the_mean_leaves_out_the_unrated(self) -> None:
        self.assertEqual(party_rating([1200.0, 1800.0]), 1500.0)
        self.assertEqual(party_rating([1200.0, None, 1500.0]), 1350.0)
        self.assertIsNone(party_rating([None, None]))
