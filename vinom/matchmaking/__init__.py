"""Matchmaking: queued players in, matches out."""
