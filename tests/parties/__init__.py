"""Tests of vinom.parties: the party stores, in memory and in Redis, against one contract."""
