"""Rooms and the session manager: matches played on a game host."""
