"""The party rule (vinom/parties/rules.py), sans-I/O: each request on a party as a store
has it answers the step to make or the PartyError to fail with. Both stores run it
(tests/parties/test_parties.py runs the stores' shared suite on each)."""

from __future__ import annotations

from collections.abc import Callable

from twisted.trial.unittest import SynchronousTestCase

from vinom.parties import rules
from vinom.parties.interfaces import Party, PartyError, PartyMember


def member(player_id: str) -> PartyMember:
    return PartyMember(player_id, player_id.upper())


PARTY = Party("p-1", "ABCDEF", (member("a"), member("b")))


class PartyRuleTests(SynchronousTestCase):
    def code_of(self, decide: Callable[..., rules.Step], *args: object) -> str:
        """The code of the PartyError `decide(*args)` raises."""
        try:
            step = decide(*args)
        except PartyError as error:
            return error.code
        raise AssertionError(f"not refused: {step}")

    def test_create_puts_the_leader_alone_in_a_new_party(self) -> None:
        step = rules.create(None, "p-2", "GHJKMN", member("c"))
        self.assertEqual(step.party, Party("p-2", "GHJKMN", (member("c"),)))
        self.assertEqual((step.event, step.player_id, step.joined, step.left),
                         ("created", "c", "c", None))  # fmt: skip
        self.assertEqual(self.code_of(rules.create, PARTY, "p-2", "X", member("a")),
                         "already_in_party")  # fmt: skip

    def test_join_refuses_in_order_unknown_already_full_queued(self) -> None:
        queued = Party("p-1", "ABCDEF", (member("a"),), "maze", "normal")
        cases = [
            (None, PARTY, 8, "unknown_party"),
            (PARTY, PARTY, 2, "already_in_party"),
            (queued, None, 1, "party_full"),
            (queued, None, 8, "party_queued"),
        ]
        for party, own, size, code in cases:
            self.assertEqual(self.code_of(rules.join, party, own, member("c"), size),
                             code)  # fmt: skip
        step = rules.join(PARTY, None, member("c"), 3)
        self.assertEqual(step.party.player_ids, ("a", "b", "c"))
        self.assertEqual((step.event, step.joined), ("joined", "c"))

    def test_leave_hands_the_lead_on_and_unqueues(self) -> None:
        queued = Party("p-1", "ABCDEF", PARTY.members, "maze", "ranked")
        step = rules.leave(queued, "a")
        self.assertEqual(step.party, Party("p-1", "ABCDEF", (member("b"),)))
        self.assertEqual((step.event, step.player_id, step.left), ("left", "a", "a"))
        self.assertEqual(rules.leave(step.party, "b").party.members, ())
        for party in (None, queued):
            self.assertEqual(self.code_of(rules.leave, party, "z"), "not_in_party")

    def test_set_queued_checks_the_members_and_clearing_a_clear_party_is_nothing(self) -> None:
        step = rules.set_queued(PARTY, "maze", ("a", "b"), 2, queue="ranked")
        self.assertEqual((step.party.queued_for, step.party.queue), ("maze", "ranked"))
        self.assertEqual((step.event, step.player_id, step.position), ("queued", "a", 2))
        matched = rules.set_queued(step.party, None, matched=True)
        self.assertEqual((matched.event, matched.party.queued_for), ("matched", None))
        self.assertIsNone(rules.set_queued(PARTY, None).event)
        self.assertEqual(self.code_of(rules.set_queued, PARTY, "maze", ("a",)),
                         "party_changed")  # fmt: skip
        self.assertEqual(self.code_of(rules.set_queued, None, None), "unknown_party")
