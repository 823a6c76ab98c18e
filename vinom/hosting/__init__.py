"""Game hosting: ports, game hosts (inline or child process) and their lifecycle."""
