"""Tests of vinom.games: the Game base, the registry and each built-in game."""
