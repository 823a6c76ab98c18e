"""The gateway: one public entry for many lobbies and game hosts (docs/gateway.md)."""
