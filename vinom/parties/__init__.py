"""Parties: friends who queue together (vinom.parties.interfaces has the seam)."""
