"""The TLS lobby: hello, queue, match_found."""
