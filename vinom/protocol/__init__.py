"""Secure UDP session protocol, sans-I/O: bytes, addresses and `now` in; bytes, events out."""
