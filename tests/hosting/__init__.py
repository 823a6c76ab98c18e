"""Tests of vinom.hosting: the host core, the UDP and WebSocket adapters, ports and workers."""
