"""The shared empty containers that stand in for a session's unused tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from vinom.protocol.empty import EMPTY_DICT, EMPTY_LIST
from vinom.protocol.reliability import Reliability


def list_writes() -> list[Callable[[list[Any]], object]]:
    def iadd(lst: list[Any]) -> None:
        lst += [1]

    def imul(lst: list[Any]) -> None:
        lst *= 2

    def setitem(lst: list[Any]) -> None:
        lst[0:0] = [1]

    def delitem(lst: list[Any]) -> None:
        del lst[:]

    return [
        lambda lst: lst.append(1), lambda lst: lst.extend([1]), lambda lst: lst.insert(0, 1),
        lambda lst: lst.pop(), lambda lst: lst.remove(1), lambda lst: lst.clear(),
        lambda lst: lst.sort(), lambda lst: lst.reverse(), iadd, imul, setitem, delitem,
    ]


def dict_writes() -> list[Callable[[dict[Any, Any]], object]]:
    def setitem(d: dict[Any, Any]) -> None:
        d[1] = 2

    def delitem(d: dict[Any, Any]) -> None:
        del d[1]

    def ior(d: dict[Any, Any]) -> None:
        d |= {1: 2}

    return [
        lambda d: d.pop(1), lambda d: d.popitem(), lambda d: d.clear(),
        lambda d: d.update({1: 2}), lambda d: d.setdefault(1, 2), setitem, delitem, ior,
    ]


class EmptyContainerTests(SynchronousTestCase):
    def test_every_write_is_refused_and_they_stay_empty(self) -> None:
        for write in list_writes():
            self.assertRaises(TypeError, write, EMPTY_LIST)
        for dwrite in dict_writes():
            self.assertRaises(TypeError, dwrite, EMPTY_DICT)
        self.assertRaises(TypeError, EMPTY_LIST.__init__, [1])
        self.assertRaises(TypeError, EMPTY_DICT.__init__, {1: 2})
        self.assertRaises(TypeError, EMPTY_DICT.__init__, one=1)
        self.assertEqual((EMPTY_LIST, EMPTY_DICT), ([], {}))

    def test_they_read_as_a_list_and_a_dict(self) -> None:
        self.assertIsInstance(EMPTY_LIST, list)
        self.assertIsInstance(EMPTY_DICT, dict)
        self.assertEqual((len(EMPTY_LIST), list(EMPTY_LIST), EMPTY_LIST[:]), (0, [], []))
        self.assertEqual((len(EMPTY_DICT), EMPTY_DICT.get(1), 1 in EMPTY_DICT), (0, None, False))

    def test_a_new_session_shares_them_until_it_sends(self) -> None:
        first, second = Reliability(max_body=1200, now=0.0), Reliability(max_body=1200, now=0.0)
        self.assertIs(first._pending, EMPTY_LIST)
        self.assertIs(first._unacked, second._unacked)
        self.assertIs(first._unacked, EMPTY_DICT)
        first.send_reliable(b"hello")
        self.assertIsNot(first._pending, EMPTY_LIST)
        self.assertIs(second._pending, EMPTY_LIST)
        self.assertEqual(EMPTY_LIST, [])
