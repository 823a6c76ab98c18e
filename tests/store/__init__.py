"""Tests of vinom.store: the player stores, in memory and in Redis, against one contract."""
