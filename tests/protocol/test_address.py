"""`HostAddress` as vinom's JSON records carry it: a match's placement record and the
placement events lobbies read (docs/scaling.md, the key tables)."""

from __future__ import annotations

import json

from twisted.trial.unittest import SynchronousTestCase

from vinom.protocol.address import HostAddress


class HostAddressJsonTests(SynchronousTestCase):
    def test_an_address_without_a_game_url_leaves_it_out(self) -> None:
        address = HostAddress("203.0.113.7", 7400)
        self.assertEqual(json.dumps(address.to_json()), '{"host": "203.0.113.7", "port": 7400}')
        self.assertEqual(HostAddress.from_json(address.to_json()), address)
        self.assertIsNone(HostAddress.from_json(address.to_json()).game_url)

    def test_a_game_url_goes_both_ways(self) -> None:
        url = "wss://play.example:8443/game"
        address = HostAddress.from_json(HostAddress("h", 1, game_url=url).to_json())
        self.assertEqual((address.host, address.port, address.game_url), ("h", 1, url))

    def test_records_of_earlier_versions_with_a_null_game_url_read(self) -> None:
        address = HostAddress.from_json({"host": "h", "port": "7401", "game_url": None})
        self.assertEqual((address.host, address.port, address.game_url), ("h", 7401, None))

    def test_a_record_that_is_no_address_raises_what_its_readers_catch(self) -> None:
        for data in ({"host": "h"}, {"host": "h", "port": "x"}, {"port": 1}):
            with self.assertRaises((KeyError, ValueError, TypeError)):
                HostAddress.from_json(data)
