"""Client library: lobby client over TLS, game client over UDP, bots and the terminal UI."""
