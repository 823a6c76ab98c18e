"""benchmarks.tls_layers: each server TLS layer it compares carries the duel's frames
both ways on real TLS 1.3 connections (standard-library clients), in memory."""

from __future__ import annotations

import ssl

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from benchmarks import tls_layers


class TlsLayersTests(SynchronousTestCase):
    def test_each_layer_delivers_a_move_and_both_states(self) -> None:
        paths = tls_layers.credentials()
        for layer in tls_layers.LAYERS:
            # run_layer raises if a move's state did not reach both seats.
            self.assertGreater(tls_layers.run_layer(layer, 2, 20, paths), 0, layer)

    def test_the_client_reads_the_states_the_layers_send(self) -> None:
        paths = tls_layers.credentials()
        for layer in ("twisted", "vinom"):
            a, b = tls_layers.Seat(), tls_layers.Seat()
            a.other, b.other = b, a
            clock = Clock()
            mover = tls_layers.Connection(layer, a, paths, clock)
            other = tls_layers.Connection(layer, b, paths, clock)
            mover.server.dataReceived(mover.record(tls_layers.MOVE))
            clock.advance(0)
            for connection in (mover, other):
                assert connection.client is not None
                connection.c_in.write(connection.sink.take())
                self.assertEqual(connection.client.read(65536), tls_layers.STATE, layer)
                self.assertEqual(connection.client.version(), "TLSv1.3")
                self.assertIsInstance(connection.client, ssl.SSLObject)

    def test_usage(self) -> None:
        self.assertEqual(tls_layers.main(["--rooms", "0"]), 2)
