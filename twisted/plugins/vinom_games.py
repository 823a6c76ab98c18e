"""vinom's built-in games as Twisted plugins providing `vinom.games.interfaces.IGame`."""

from vinom.games.arena import ArenaGame
from vinom.games.dice import DiceGame
from vinom.games.duel import DuelGame
from vinom.games.maze import MazeGame
from vinom.games.owedrahn import OweDrahnGame
from vinom.games.tictactoe import TicTacToeGame

maze = MazeGame()
tictactoe = TicTacToeGame()
dice = DiceGame()
owedrahn = OweDrahnGame()
duel = DuelGame()
# Two players: two windows that quick-match it play (the benchmarks seat eight).
arena = ArenaGame(2)
