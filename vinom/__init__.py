"""vinom: a Twisted framework for real-time multiplayer game servers."""

__version__ = "0.1.0"
