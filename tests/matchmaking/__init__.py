"""Tests of vinom.matchmaking: the in-memory matchmaker and its rules."""
