"""Tests of vinom.cluster: the Redis wing on a real Redis, and lobbies and hosts sharing one."""
