"""The in-memory matchmaker under its first name (vinom.matchmaking.memory).

Its `normal` queues are the FIFO queues this module used to hold; the name
stays for the code that imports it.
"""

from vinom.matchmaking.interfaces import UnknownGame
from vinom.matchmaking.memory import MemoryMatchmaker

FifoMatchmaker = MemoryMatchmaker

__all__ = ["FifoMatchmaker", "MemoryMatchmaker", "UnknownGame"]
