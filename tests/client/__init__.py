"""Tests of vinom.client and the `vinom` command: the game client, the terminal UI, the CLI."""
