"""Tests of vinom.rooms: the seat router, rooms, bots and their messages."""
