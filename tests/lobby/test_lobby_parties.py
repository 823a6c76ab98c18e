"""Parties in the lobby (docs/lobby.md, "Parties"): create, join by code, leave, the
leader queues the party as one ticket, members follow it in and out of the queue."""

from __future__ import annotations

from typing import Any

from tests.cluster.test_remote_placement import ScriptedHosting
from tests.lobby.test_lobby import Client, LobbyHarness
from vinom.codes import CODE_ALPHABET, CODE_LENGTH
from vinom.games.rules import GameCatalogue, GameRules
from vinom.hosting.interfaces import NoHostAvailable
from vinom.lobby import errors
from vinom.lobby.server import PlayerState
from vinom.match import Match
from vinom.matchmaking.memory import MemoryMatchmaker
from vinom.parties.memory import MemoryPartyStore
from vinom.store.memory import MemoryPlayerStore

PARTY_GAMES = {"tictactoe": 2, "maze": 4}
PARTY_RULES = GameCatalogue.sized(PARTY_GAMES)


class PartyHarness(LobbyHarness):
    """A lobby whose maze seats four, and helpers to form parties."""

    ports = (7400, 7401, 7402)

    def setUp(self) -> None:
        super().setUp()
        # A four-player maze, where a party of two meets two solo players.
        self.matchmaker = MemoryMatchmaker(PARTY_RULES, self.clock)
        self.matches: list[Match] = []
        self.matchmaker.add_listener(self.matches.append)
        self.factory = self.make_factory(games=PARTY_RULES, matchmaker=self.matchmaker)
        self.factory.startService()

    def player(self, name: str) -> Client:
        client = self.connect()
        client.hello(name)
        return client

    def party_of(self, leader: Client, *others: Client) -> dict[str, Any]:
        party = leader.request({"type": "party_create"})["party"]
        for other in others:
            joined = other.request({"type": "party_join", "code": party["code"]})
            assert joined["type"] == "party", joined
            party = joined["party"]
        for client in (leader, *others):
            client.frames()
        return party


class PartyTests(PartyHarness):
    def test_a_member_taken_out_without_asking_is_told_and_unqueued(self) -> None:
        # With Redis, another lobby takes out a member whose lobby's lease lapsed
        # (vinom.cluster.parties, "check"): the store's change is all this lobby hears.
        store = MemoryPartyStore(4)
        self.factory = self.make_factory(games=PARTY_RULES, matchmaker=self.matchmaker,
                                         parties=store)  # fmt: skip
        self.factory.startService()
        ann, bob = self.player("Ann"), self.player("Bob")
        party = self.party_of(ann, bob)
        ann.request({"type": "queue", "game": "maze"})
        bob.frames()
        for taken, other in ((ann, bob), (bob, ann)):
            with self.subTest(taken="leader" if taken is ann else "member"):
                store.leave(taken.player_id)
                frames = taken.frames()
                if taken is ann:
                    self.assertEqual([(f["type"], f.get("reason")) for f in frames],
                                     [("cancelled", "member_left"),
                                      ("party_left", "lobby_lapsed")])  # fmt: skip
                    self.assertEqual(frames[1]["party_id"], party["party_id"])
                    # The party's ticket went: a solo player is not matched with it.
                    other.frames()
                    self.assertEqual(self.matchmaker.queue_length("maze"), 0)
                else:
                    self.assertEqual([(f["type"], f.get("reason")) for f in frames],
                                     [("party_left", "lobby_lapsed")])  # fmt: skip
        # Both may queue alone now.
        for player in (ann, bob):
            self.assertEqual(player.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_party_create_gives_an_id_a_join_code_and_the_lead(self) -> None:
        ann = self.player("Ann")
        reply = ann.request({"type": "party_create", "id": 7})
        self.assertEqual((reply["type"], reply["id"]), ("party", 7))
        party = reply["party"]
        self.assertRegex(party["party_id"], r"^p-[0-9a-f]{16}$")
        self.assertEqual(len(party["code"]), CODE_LENGTH)
        self.assertTrue(set(party["code"]) <= set(CODE_ALPHABET))
        self.assertEqual(party["leader"], ann.player_id)
        self.assertEqual(party["members"], [{"player_id": ann.player_id, "name": "Ann"}])
        self.assertIsNone(party["queued_for"])

    def test_friends_join_with_the_code_and_the_others_see_party_update(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        code = ann.request({"type": "party_create"})["party"]["code"]
        joined = bob.request({"type": "party_join", "code": code.lower()})
        self.assertEqual(joined["type"], "party")
        self.assertEqual([m["name"] for m in joined["party"]["members"]], ["Ann", "Bob"])
        [update] = ann.frames()
        self.assertEqual(update["type"], "party_update")
        self.assertEqual((update["event"], update["player_id"]), ("joined", bob.player_id))
        self.assertEqual(update["party"], joined["party"])
        cat.request({"type": "party_join", "code": code})
        self.assertEqual([f["event"] for f in ann.frames() + bob.frames()], ["joined", "joined"])

    def test_a_party_of_two_queued_for_a_four_player_maze_is_matched_with_two_solos(
        self,
    ) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        party = self.party_of(ann, bob)
        queued = ann.request({"type": "queue", "game": "maze", "id": 1})
        self.assertEqual(
            queued,
            {"type": "queued", "id": 1, "game": "maze", "queue": "normal", "position": 1,
             "status": "searching",
             "party_id": party["party_id"]},
        )  # fmt: skip
        frames = bob.frames()
        self.assertEqual([f["type"] for f in frames], ["party_update", "queued"])
        self.assertEqual(frames[0]["event"], "queued")
        self.assertEqual(frames[0]["party"]["queued_for"], "maze")
        self.assertEqual(
            frames[1],
            {"type": "queued", "game": "maze", "queue": "normal", "position": 1,
             "status": "searching", "party_id": party["party_id"]},
        )  # fmt: skip
        self.assertIs(self.factory.state_of(bob.player_id or ""), PlayerState.QUEUED)
        solo1 = self.queued_player("Sol", "maze")
        solo2 = self.queued_player("Sue", "maze")
        found = {}
        for client in (ann, bob, solo1, solo2):
            [frame] = [f for f in client.frames() + client.unread if f["type"] == "match_found"]
            found[client.player_id] = frame
            self.assertTrue(client.closed)
        self.assertEqual(len({f["game_id"] for f in found.values()}), 1)
        # The party sits together, the leader first.
        self.assertEqual(
            (found[ann.player_id]["seat"], found[bob.player_id]["seat"]), (0, 1)
        )
        [match] = self.matches
        self.assertEqual(match.game, "maze")
        self.assertEqual(len(match.players), 4)

    def test_only_the_leader_queues_and_cancels(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        self.assert_error(bob.request({"type": "queue", "game": "maze", "id": 2}),
                          errors.NOT_PARTY_LEADER, 2)  # fmt: skip
        ann.request({"type": "queue", "game": "maze"})
        bob.frames()
        self.assert_error(bob.request({"type": "cancel"}), errors.NOT_PARTY_LEADER)
        self.assertEqual(self.matchmaker.queue_length("maze"), 1)
        self.assert_uncounted(bob)

    def test_the_leader_cancels_for_the_party(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        party = self.party_of(ann, bob)
        ann.request({"type": "queue", "game": "maze"})
        bob.frames()
        self.assertEqual(
            ann.request({"type": "cancel"}),
            {"type": "cancelled", "game": "maze", "party_id": party["party_id"]},
        )
        frames = bob.frames()
        self.assertEqual([f["type"] for f in frames], ["party_update", "cancelled"])
        self.assertEqual(frames[1]["reason"], "leader_cancelled")
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        # Queued no more: they may queue again.
        self.assertEqual(ann.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_a_party_larger_than_the_game_is_refused(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        self.party_of(ann, bob, cat)
        self.assert_error(ann.request({"type": "queue", "game": "tictactoe"}),
                          errors.PARTY_TOO_LARGE)  # fmt: skip
        self.assertEqual(self.matchmaker.queue_length("tictactoe"), 0)
        self.assertEqual(bob.frames(), [])
        self.assertEqual(ann.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_a_party_is_full_at_the_largest_match_size(self) -> None:
        players = [self.player(f"P{i}") for i in range(5)]
        code = self.party_of(*players[:4])["code"]
        # Answered as an unknown code: a guess learns nothing from a full party.
        self.assert_error(players[4].request({"type": "party_join", "code": code}),
                          errors.UNKNOWN_PARTY)  # fmt: skip

    def test_the_longest_standing_member_leads_when_the_leader_leaves(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        party = self.party_of(ann, bob, cat)
        self.assertEqual(ann.request({"type": "party_leave"}),
                         {"type": "party_left", "party_id": party["party_id"]})  # fmt: skip
        for client in (bob, cat):
            [update] = client.frames()
            self.assertEqual((update["event"], update["player_id"]), ("left", ann.player_id))
            self.assertEqual(update["party"]["leader"], bob.player_id)
            self.assertEqual([m["name"] for m in update["party"]["members"]], ["Bob", "Cat"])
        self.assert_error(cat.request({"type": "queue", "game": "maze"}), errors.NOT_PARTY_LEADER)
        self.assertEqual(bob.request({"type": "queue", "game": "maze"})["type"], "queued")
        # Ann is on her own again.
        self.assertEqual(ann.request({"type": "queue", "game": "tictactoe"})["type"], "queued")

    def test_the_party_is_gone_when_its_last_member_leaves(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        code = self.party_of(ann, bob)["code"]
        bob.request({"type": "party_leave"})
        ann.frames()
        ann.request({"type": "party_leave"})
        self.assert_error(bob.request({"type": "party_join", "code": code}),
                          errors.UNKNOWN_PARTY)  # fmt: skip
        self.assert_error(ann.request({"type": "party_leave"}), errors.NOT_IN_PARTY)

    def test_a_member_who_disconnects_leaves_and_withdraws_the_queued_ticket(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        self.party_of(ann, bob, cat)
        ann.request({"type": "queue", "game": "maze"})
        bob.frames()
        cat.frames()
        cat.drop()
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        for client in (ann, bob):
            frames = client.frames()
            self.assertEqual([f["type"] for f in frames], ["party_update", "cancelled"])
            self.assertEqual(frames[0]["event"], "left")
            self.assertEqual(frames[1]["reason"], "member_left")
        # The two left are matched with two solo players, without Cat.
        ann.request({"type": "queue", "game": "maze"})
        self.queued_player("Sol", "maze")
        self.queued_player("Sue", "maze")
        [match] = self.matches
        self.assertEqual(match.player_ids[:2], (ann.player_id, bob.player_id))

    def test_a_leader_who_disconnects_hands_the_party_on(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        ann.request({"type": "queue", "game": "maze"})
        bob.frames()
        ann.drop()
        self.assertEqual(self.matchmaker.queue_length("maze"), 0)
        frames = bob.frames()
        self.assertEqual([f["type"] for f in frames], ["party_update", "cancelled"])
        self.assertEqual(frames[0]["party"]["leader"], bob.player_id)
        self.assertEqual(bob.request({"type": "queue", "game": "maze"})["type"], "queued")

    def test_party_request_errors(self) -> None:
        new = self.connect()
        self.assert_error(new.request({"type": "party_create"}), errors.HELLO_REQUIRED)
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        self.assert_error(bob.request({"type": "party_join", "code": "ZZZZZZ"}),
                          errors.UNKNOWN_PARTY)  # fmt: skip
        self.assert_error(bob.request({"type": "party_join"}), errors.MISSING_FIELD)
        self.assert_error(bob.request({"type": "party_join", "code": 7}), errors.INVALID_FIELD)
        self.assert_error(bob.request({"type": "party_leave"}), errors.NOT_IN_PARTY)
        code = ann.request({"type": "party_create"})["party"]["code"]
        self.assert_error(ann.request({"type": "party_create"}), errors.ALREADY_IN_PARTY)
        self.assert_error(ann.request({"type": "party_join", "code": code}),
                          errors.ALREADY_IN_PARTY)  # fmt: skip
        # Queued alone, or in a room: no party.
        bob.request({"type": "queue", "game": "maze"})
        self.assert_error(bob.request({"type": "party_join", "code": code}),
                          errors.ALREADY_QUEUED)  # fmt: skip
        cat.request({"type": "create_room", "game": "maze", "size": 4})
        self.assert_error(cat.request({"type": "party_create"}), errors.ALREADY_IN_ROOM)
        # A queued party takes nobody in.
        ann.request({"type": "queue", "game": "tictactoe"})
        dan = self.player("Dan")
        self.assert_error(dan.request({"type": "party_join", "code": code}),
                          errors.UNKNOWN_PARTY)  # fmt: skip
        # Party errors follow from what others did: none counts against the client.
        self.assert_uncounted(dan)


class PartyNoHostTests(PartyHarness):
    """A party whose match no game host takes is not split up by the requeue."""

    def setUp(self) -> None:
        super().setUp()
        self.remote = ScriptedHosting()
        self.factory = self.make_factory(games=PARTY_RULES, matchmaker=self.matchmaker,
                                         hosting=self.remote,
                                         store=MemoryPlayerStore())  # fmt: skip
        self.factory.startService()

    def test_party_members_get_match_failed_and_the_solos_go_back_to_the_queue(self) -> None:
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        ann.request({"type": "queue", "game": "maze"})
        bob.frames()
        solos = [self.queued_player("Sol", "maze"), self.queued_player("Sue", "maze")]
        [(_, placing)] = self.remote.asked
        placing.errback(NoHostAvailable("no live game host with free capacity"))
        for solo in solos:
            [frame] = solo.frames() + solo.unread
            self.assertEqual((frame["type"], frame["reason"]), ("queued", "no_host"))
        for member in (ann, bob):
            [frame] = member.frames()
            self.assertEqual((frame["type"], frame["code"]), ("error", errors.MATCH_FAILED))
        # Still a party: the leader queues it again, whole, and it meets the solos
        # (back at the head of the queue) at once.
        self.assertEqual(ann.request({"type": "queue", "game": "maze"})["type"], "queued")
        self.assertEqual(len(self.remote.asked), 2)
        again, _ = self.remote.asked[1]
        self.assertEqual(again.player_ids[2:], (ann.player_id, bob.player_id))
        self.assertIs(self.factory.state_of(bob.player_id or ""), PlayerState.MATCHED)


class TeamTests(PartyHarness):
    """A game with teams: a party plays on one team, and every token says which."""

    def setUp(self) -> None:
        super().setUp()
        games = GameCatalogue([GameRules("duo", 4, team_size=2)])
        self.matchmaker = MemoryMatchmaker(games, self.clock)
        self.matches = []
        self.matchmaker.add_listener(self.matches.append)
        self.factory = self.make_factory(
            games=games, matchmaker=self.matchmaker
        )
        self.factory.startService()

    def test_a_party_queued_between_solo_players_is_one_team(self) -> None:
        sol = self.queued_player("Sol", "duo")
        ann, bob = self.player("Ann"), self.player("Bob")
        self.party_of(ann, bob)
        self.assertEqual(ann.request({"type": "queue", "game": "duo"})["type"], "queued")
        sue = self.queued_player("Sue", "duo")
        seats, teams = {}, {}
        for name, client in (("Sol", sol), ("Ann", ann), ("Bob", bob), ("Sue", sue)):
            [frame] = [f for f in client.frames() + client.unread if f["type"] == "match_found"]
            seats[name] = frame["seat"]
            # The placeholder token carries the team the issuer was given.
            teams[name] = frame["token"]["seat"]
        # Seats 0-1 are team 0 and seats 2-3 team 1: the party is not split.
        self.assertEqual(seats, {"Sol": 0, "Sue": 1, "Ann": 2, "Bob": 3})
        self.assertEqual(teams, {"Sol": 0, "Sue": 0, "Ann": 1, "Bob": 1})

    def test_a_party_larger_than_a_team_is_refused(self) -> None:
        ann, bob, cat = self.player("Ann"), self.player("Bob"), self.player("Cat")
        self.party_of(ann, bob, cat)
        reply = ann.request({"type": "queue", "game": "duo"})
        self.assert_error(reply, errors.PARTY_TOO_LARGE)
        self.assertIn("teams of 2", reply["message"])
        self.assertEqual(self.matchmaker.queue_length("duo"), 0)
        self.assertEqual(bob.frames(), [])
