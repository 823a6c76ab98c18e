"""Player stores: players, secrets and match placements (in memory, Redis)."""
