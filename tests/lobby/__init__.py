"""Tests of vinom.lobby: frames, connections, requests, limits, parties and rooms."""
