"""Tests of vinom's fleet as the server finds it (vinom.fleet, vinom.server.fleet)."""
