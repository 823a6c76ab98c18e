"""Tests for the lobby's sans-I/O frame codec, request validation, rate limiter and ids."""

from __future__ import annotations

import ast
import json
import os
import re
from importlib.resources import files
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

import vinom
from vinom.identity import hash_secret, new_player_id, new_secret, secret_matches
from vinom.lobby import codec, errors, request_types
from vinom.lobby.codec import (
    FrameDecoder,
    FrameError,
    encode_frame,
    error_frame,
    parse_frame,
    request_id_of,
)
from vinom.lobby.config import LobbyConfig
from vinom.lobby.request_types import Cancel, Hello, Ping, Previous, Queue, Reconnect
from vinom.net.addresses import client_key
from vinom.net.limits import KeyedTokenBuckets, LogLimiter
from vinom.parties import interfaces as parties


def code_of(line: bytes) -> str:
    result = parse_frame(line)
    assert isinstance(result, FrameError), result
    return result.code


class ParseFrameTests(SynchronousTestCase):
    def test_requests(self) -> None:
        self.assertEqual(parse_frame(b'{"type":"hello","name":"Ann"}'), Hello(None, "Ann"))
        self.assertEqual(
            parse_frame(b'{"type":"hello","name":"Ann","previous":null}'), Hello(None, "Ann")
        )
        returning = parse_frame(
            b'{"type":"hello","name":"Ann","previous":{"player_id":"p-1","secret":"s"}}'
        )
        self.assertEqual(returning, Hello(None, "Ann", Previous("p-1", "s")))
        self.assertNotIn("'s'", repr(returning))
        self.assertEqual(
            parse_frame(b'{"type":"queue","game":"maze","rating":1500,"id":"q1"}'),
            Queue("q1", "maze", 1500.0),
        )
        self.assertEqual(parse_frame(b'{"type":"queue","game":"maze"}'), Queue(None, "maze", None))
        self.assertEqual(
            parse_frame(b'{"type":"queue","game":"maze","queue":"ranked","rating":-20.5}'),
            Queue(None, "maze", -20.5, "ranked"),
        )
        # The codec checks the queue's shape; the lobby says whether it exists.
        self.assertEqual(
            parse_frame(b'{"type":"queue","game":"maze","queue":"casual"}'),
            Queue(None, "maze", None, "casual"),
        )
        self.assertEqual(
            parse_frame(b'{"type":"queue","game":"maze","queue":null}'),
            Queue(None, "maze", None, "normal"),
        )
        self.assertEqual(parse_frame(b'{"type":"cancel","id":7}'), Cancel(7))
        self.assertEqual(parse_frame(b'{"type":"ping"}'), Ping(None))
        self.assertEqual(
            parse_frame(b'{"type":"reconnect","player_id":"p-1","secret":"s"}'),
            Reconnect(None, "p-1", "s"),
        )

    def test_protocol_is_the_clients_game_protocol_and_absent_means_1(self) -> None:
        # docs/lobby.md, "The game protocol": a client from before the key speaks 1.
        for absent in (b'{"type":"hello","name":"Ann"}',
                       b'{"type":"hello","name":"Ann","protocol":null}'):  # fmt: skip
            self.assertEqual(parse_frame(absent), Hello(None, "Ann", protocol=1))
        self.assertEqual(
            parse_frame(b'{"type":"hello","name":"Ann","protocol":7,"previous":{"player_id":"p-1","secret":"s"}}'),
            Hello(None, "Ann", Previous("p-1", "s"), protocol=7),
        )
        self.assertEqual(
            parse_frame(b'{"type":"reconnect","player_id":"p-1","secret":"s","protocol":3}'),
            Reconnect(None, "p-1", "s", protocol=3),
        )
        self.assertEqual(
            parse_frame(b'{"type":"reconnect","player_id":"p-1","secret":"s"}').protocol, 1  # type: ignore[union-attr]
        )
        for bad in (b'0', b'-1', b'"2"', b'true', b'2.0', b'4294967296', b'[2]'):
            for frame in (b'{"type":"hello","name":"Ann","protocol":' + bad + b'}',
                          b'{"type":"reconnect","player_id":"p","secret":"s","protocol":'
                          + bad + b'}'):  # fmt: skip
                self.assertEqual(code_of(frame), errors.INVALID_FIELD, frame)
        self.assertEqual(
            parse_frame(b'{"type":"hello","name":"Ann","protocol":4294967295}'),
            Hello(None, "Ann", protocol=request_types.MAX_PROTOCOL),
        )

    def test_unknown_fields_are_ignored(self) -> None:
        self.assertEqual(parse_frame(b'{"type":"ping","extra":[1,2]}'), Ping(None))

    def test_names_are_kept_in_nfc(self) -> None:
        decomposed = "Zoe\u0301"  # e + combining acute
        frame = json.dumps({"type": "hello", "name": decomposed}).encode()
        self.assertEqual(parse_frame(frame), Hello(None, "Zo\u00e9"))
        # Visible names with spaces inside, in any script, are kept as they are.
        for name in ("Ann Lee", "\u5f20\u3000\u4e09", "\u0645\u0631\u064a\u0645"):
            frame = json.dumps({"type": "hello", "name": name}).encode()
            self.assertEqual(parse_frame(frame), Hello(None, name))

    def test_a_name_shaped_like_an_id_is_refused(self) -> None:
        # Boards show ids beside names: nobody may pose as a-5096e1986945f85a.
        for name in ("a-5096e1986945f85a", "p-0123456789ABCDEF", "by a-5096e1986945f85a!",
                     "\uff41-5096e1986945f85a"):  # fmt: skip (a full-width a)
            frame = json.dumps({"type": "hello", "name": name}).encode()
            self.assertEqual(code_of(frame), errors.INVALID_FIELD, name)
        # Hex that is not an id's shape stays a name.
        for name in ("a-5096e1986945f85", "xa-5096e1986945f85a", "Ann-1234", "deadbeefdeadbeef"):
            frame = json.dumps({"type": "hello", "name": name}).encode()
            self.assertEqual(parse_frame(frame), Hello(None, name))

    def test_name_is_trimmed(self) -> None:
        self.assertEqual(
            parse_frame('{"type":"hello","name":"  Zoë "}'.encode()), Hello(None, "Zoë")
        )

    def test_malformed_json(self) -> None:
        self.assertEqual(code_of(b"{nope"), errors.MALFORMED_JSON)
        self.assertEqual(code_of(b"\xff\xfe"), errors.MALFORMED_JSON)
        self.assertEqual(code_of(b'{"type":"ping","x":NaN}'), errors.MALFORMED_JSON)
        self.assertEqual(code_of(b'{"type":"ping","id":0,"x":-Infinity}'), errors.MALFORMED_JSON)
        self.assertEqual(code_of(b"[" * 3000), errors.MALFORMED_JSON)
        self.assertEqual(code_of(b'{"type":"ping"} trailing'), errors.MALFORMED_JSON)

    def test_not_an_object(self) -> None:
        for line in (b"[]", b"1", b'"ping"', b"null", b"true"):
            self.assertEqual(code_of(line), errors.NOT_AN_OBJECT)

    def test_missing_type(self) -> None:
        result = parse_frame(b'{"id":3}')
        self.assertEqual(result, FrameError(errors.MISSING_FIELD, "a frame needs a 'type'", 3))

    def test_type_must_be_a_string(self) -> None:
        self.assertEqual(code_of(b'{"type":5}'), errors.INVALID_FIELD)

    def test_unknown_type_echoes_the_id(self) -> None:
        result = parse_frame(b'{"type":"dance","id":"x"}')
        assert isinstance(result, FrameError)
        self.assertEqual((result.code, result.request_id), (errors.UNKNOWN_TYPE, "x"))
        self.assertIn('"dance"', result.message)

    def test_invalid_ids(self) -> None:
        for raw in (b"true", b"1.5", b"[1]", b"{}", b'"' + b"x" * 65 + b'"', b"9007199254740992"):
            self.assertEqual(code_of(b'{"type":"ping","id":' + raw + b"}"), errors.INVALID_FIELD)

    def test_missing_fields(self) -> None:
        self.assertEqual(code_of(b'{"type":"hello"}'), errors.MISSING_FIELD)
        self.assertEqual(code_of(b'{"type":"queue"}'), errors.MISSING_FIELD)
        self.assertEqual(code_of(b'{"type":"reconnect","player_id":"p"}'), errors.MISSING_FIELD)
        self.assertEqual(code_of(b'{"type":"reconnect","secret":"s"}'), errors.MISSING_FIELD)
        for previous in (b'{"player_id":"p"}', b'{"secret":"s"}', b"{}"):
            frame = b'{"type":"hello","name":"Ann","previous":' + previous + b"}"
            self.assertEqual(code_of(frame), errors.MISSING_FIELD, frame)

    def test_invalid_fields(self) -> None:
        for frame in (
            b'{"type":"hello","name":""}',
            b'{"type":"hello","name":"   "}',
            b'{"type":"hello","name":7}',
            b'{"type":"hello","name":"' + b"n" * 33 + b'"}',
            b'{"type":"hello","name":"a\\u0000b"}',
            b'{"type":"hello","name":"a\\nb"}',
            b'{"type":"hello","name":"\\ud800"}',
            '{"type":"hello","name":"\u3164"}'.encode(),  # a Hangul filler: shows nothing
            '{"type":"hello","name":" \u3164\u2800\u200b "}'.encode(),
            '{"type":"hello","name":"Ann\u2028Bob"}'.encode(),  # line separator
            '{"type":"hello","name":"Ann\u2029"}'.encode(),  # paragraph separator
            '{"type":"hello","name":"\u202eevil"}'.encode(),  # right-to-left override
            '{"type":"hello","name":"a\u2066b"}'.encode(),  # left-to-right isolate
            b'{"type":"queue","game":5}',
            b'{"type":"queue","game":""}',
            b'{"type":"queue","game":"maze","rating":"high"}',
            b'{"type":"queue","game":"maze","rating":true}',
            b'{"type":"queue","game":"maze","rating":1e300}',
            b'{"type":"queue","game":"maze","rating":1000000000.5}',
            b'{"type":"queue","game":"maze","queue":7}',
            b'{"type":"queue","game":"maze","queue":""}',
            b'{"type":"reconnect","player_id":"","secret":"s"}',
            b'{"type":"reconnect","player_id":"p","secret":["s"]}',
            b'{"type":"hello","name":"Ann","previous":"p-1"}',
            b'{"type":"hello","name":"Ann","previous":["p-1","s"]}',
            b'{"type":"hello","name":"Ann","previous":{"player_id":"","secret":"s"}}',
            b'{"type":"hello","name":"Ann","previous":{"player_id":"p","secret":5}}',
        ):
            self.assertEqual(code_of(frame), errors.INVALID_FIELD, frame)


class FrameDecoderTests(SynchronousTestCase):
    def test_frames_split_across_chunks(self) -> None:
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(b'{"type":'), [])
        self.assertEqual(
            decoder.feed(b'"ping"}\r\n{"type":"cancel"}\n'), [Ping(None), Cancel(None)]
        )
        self.assertEqual(decoder.buffered, 0)

    def test_blank_lines_are_skipped(self) -> None:
        self.assertEqual(FrameDecoder().feed(b'\n\r\n  \n{"type":"ping"}\n'), [Ping(None)])

    def test_a_frame_of_exactly_the_limit_is_accepted(self) -> None:
        frame = b'{"type":"ping","pad":"' + b"x" * 100 + b'"}'
        decoder = FrameDecoder(max_frame_bytes=len(frame))
        self.assertEqual(decoder.feed(frame + b"\n"), [Ping(None)])
        decoder = FrameDecoder(max_frame_bytes=len(frame) - 1)
        [result] = decoder.feed(frame + b"\n")
        self.assertEqual(result.code, errors.FRAME_TOO_LARGE)  # type: ignore[union-attr]

    def test_a_carriage_return_does_not_count_against_the_limit(self) -> None:
        frame = b'{"type":"ping","pad":"' + b"x" * (4096 - 24) + b'"}'
        self.assertEqual(len(frame), 4096)
        self.assertEqual(FrameDecoder().feed(frame + b"\r\n"), [Ping(None)])
        # Also when the carriage return and the newline arrive apart.
        decoder = FrameDecoder()
        self.assertEqual(decoder.feed(frame + b"\r"), [])
        self.assertEqual(decoder.feed(b"\n"), [Ping(None)])
        # One byte more is too large, with or without the carriage return.
        for ending in (b"\n", b"\r\n"):
            [result] = FrameDecoder().feed(frame + b" " + ending)
            self.assertEqual(result.code, errors.FRAME_TOO_LARGE)  # type: ignore[union-attr]

    def test_too_large_is_reported_once_and_the_next_frame_decodes(self) -> None:
        decoder = FrameDecoder(max_frame_bytes=4096)
        results = decoder.feed(b"x" * 5000)
        self.assertEqual([r.code for r in results], [errors.FRAME_TOO_LARGE])  # type: ignore[union-attr]
        # The decoder holds nothing while it discards.
        self.assertEqual(decoder.buffered, 0)
        self.assertEqual(decoder.feed(b"y" * 100_000), [])
        self.assertEqual(decoder.buffered, 0)
        self.assertEqual(decoder.feed(b'zz\n{"type":"ping","id":1}\n'), [Ping(1)])

    def test_too_large_with_its_newline_in_one_chunk(self) -> None:
        decoder = FrameDecoder(max_frame_bytes=64)
        results = decoder.feed(b"a" * 65 + b'\n{"type":"ping"}\n')
        self.assertEqual(len(results), 2)
        self.assertEqual(results[0], FrameError(errors.FRAME_TOO_LARGE, results[0].message))  # type: ignore[union-attr]
        self.assertEqual(results[1], Ping(None))

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=12))
    def test_chunking_never_changes_the_result(self, data: bytes, cuts: list[int]) -> None:
        whole = FrameDecoder(max_frame_bytes=80).feed(data)
        decoder = FrameDecoder(max_frame_bytes=80)
        pieces: list[object] = []
        start = 0
        for cut in sorted(c % (len(data) + 1) for c in cuts):
            pieces.extend(decoder.feed(data[start:cut]))
            start = cut
        pieces.extend(decoder.feed(data[start:]))
        self.assertEqual(pieces, whole)
        self.assertLessEqual(decoder.buffered, 80)


class LazyDecodingTests(SynchronousTestCase):
    """`push` only buffers; `next_line` splits one line at a time and parses nothing."""

    def test_lines_come_one_at_a_time_and_the_rest_waits_as_bytes(self) -> None:
        decoder = FrameDecoder()
        decoder.push(b'{"type":"ping"}\r\n  \n\n{"type":"cancel"}\n{"type":')
        self.assertEqual(decoder.buffered, 47)
        self.assertEqual(decoder.next_line(), b'{"type":"ping"}')
        self.assertEqual(decoder.buffered, 30)
        self.assertEqual(decoder.next_line(), b"")
        self.assertEqual(decoder.next_line(), b"")
        self.assertEqual(decoder.next_line(), b'{"type":"cancel"}')
        self.assertIsNone(decoder.next_line())
        self.assertEqual(decoder.buffered, 8)
        decoder.push(b'"ping"}\n')
        self.assertEqual(decoder.next_line(), b'{"type":"ping"}')
        self.assertIsNone(decoder.next_line())
        self.assertEqual(decoder.buffered, 0)

    def test_splitting_parses_nothing(self) -> None:
        def no_parsing(line: bytes) -> object:
            raise AssertionError("next_line must not parse")

        self.patch(codec, "parse_frame", no_parsing)
        decoder = FrameDecoder()
        decoder.push(b"1\n" * 1000)
        self.assertEqual(decoder.next_line(), b"1")
        self.assertEqual(decoder.buffered, 2 * 999)

    def test_too_large_lines_come_as_one_error_each(self) -> None:
        decoder = FrameDecoder(max_frame_bytes=64)
        decoder.push(b"a" * 65 + b"\n" + b"b" * 10 + b"\n" + b"c" * 200)
        first = decoder.next_line()
        assert isinstance(first, FrameError)
        self.assertEqual(first.code, errors.FRAME_TOO_LARGE)
        self.assertEqual(decoder.next_line(), b"b" * 10)
        tail = decoder.next_line()
        assert isinstance(tail, FrameError)
        self.assertEqual(tail.code, errors.FRAME_TOO_LARGE)
        # The rest of the oversized frame is dropped as it arrives, up to its newline.
        decoder.push(b"c" * 10_000)
        self.assertEqual(decoder.buffered, 0)
        self.assertIsNone(decoder.next_line())
        decoder.push(b'cc\n{"type":"ping"}\n')
        self.assertEqual(decoder.next_line(), b'{"type":"ping"}')

    def test_clear_drops_everything(self) -> None:
        decoder = FrameDecoder()
        decoder.push(b"1\n2\n3")
        decoder.clear()
        self.assertEqual(decoder.buffered, 0)
        self.assertIsNone(decoder.next_line())

    def test_one_json_decoder_for_the_module(self) -> None:
        class NoNewDecoders(json.JSONDecoder):
            def __init__(self, *args: object, **kwargs: object) -> None:
                raise AssertionError("a JSONDecoder was built per frame")

        self.patch(json, "JSONDecoder", NoNewDecoders)
        self.assertEqual(parse_frame(b'{"type":"ping","id":3}'), Ping(3))
        self.assertEqual(code_of(b'{"type":"ping","x":NaN}'), errors.MALFORMED_JSON)

    def test_request_id_of(self) -> None:
        self.assertEqual(request_id_of(b'{"type":"hello","id":7}'), 7)
        self.assertEqual(request_id_of(b'{"id":"x"}'), "x")
        self.assertIsNone(request_id_of(b'{"id":[1]}'))
        self.assertIsNone(request_id_of(b'{"id":true}'))
        self.assertIsNone(request_id_of(b"[1]"))
        self.assertIsNone(request_id_of(b"\xff{"))
        self.assertIsNone(request_id_of(b"[" * 5000))


class EncodeTests(SynchronousTestCase):
    def test_compact_ascii_with_newline(self) -> None:
        self.assertEqual(encode_frame({"type": "pong", "id": 1}), b'{"type":"pong","id":1}\n')
        self.assertEqual(encode_frame({"name": "Zoë\n"}), b'{"name":"Zo\\u00eb\\n"}\n')

    def test_error_frame_always_has_an_id(self) -> None:
        self.assertEqual(
            error_frame(errors.NOT_QUEUED, "m"),
            {"type": "error", "code": "not_queued", "message": "m", "id": None},
        )

    def test_lone_surrogate_id_still_encodes(self) -> None:
        frame = json.loads(encode_frame(error_frame(errors.UNKNOWN_TYPE, "m", "\ud800")))
        self.assertEqual(frame["id"], "\ud800")


class KeyedTokenBucketsTests(SynchronousTestCase):
    def test_one_bucket_per_key(self) -> None:
        clock = Clock()
        buckets = KeyedTokenBuckets(rate=1.0, burst=2, clock=clock)
        self.assertEqual([buckets.allow("a") for _ in range(3)], [True, True, False])
        self.assertTrue(buckets.allow("b"))
        clock.advance(1)
        self.assertEqual([buckets.allow("a") for _ in range(2)], [True, False])

    def test_full_buckets_are_forgotten(self) -> None:
        clock = Clock()
        buckets = KeyedTokenBuckets(rate=1.0, burst=1, clock=clock)
        for n in range(KeyedTokenBuckets.MIN_SWEEP):
            buckets.allow(f"k{n}")
        self.assertEqual(len(buckets), KeyedTokenBuckets.MIN_SWEEP)
        clock.advance(1)
        # Every old bucket is full again: the next new key sweeps them all away.
        self.assertTrue(buckets.allow("new"))
        self.assertEqual(len(buckets), 1)
        # A bucket still being refilled survives a sweep, with its debt.
        for n in range(KeyedTokenBuckets.MIN_SWEEP):
            buckets.allow(f"j{n}")
        self.assertFalse(buckets.allow("j0"))

    def test_invalid_parameters(self) -> None:
        self.assertRaises(ValueError, KeyedTokenBuckets, 0, 1, Clock())


class LogLimiterTests(SynchronousTestCase):
    def test_burst_then_rate_and_a_count_of_what_was_held_back(self) -> None:
        clock = Clock()
        limiter = LogLimiter(rate=1.0, burst=3, clock=clock)
        self.assertEqual([limiter.allow() for _ in range(10)], [True] * 3 + [False] * 7)
        self.assertEqual(limiter.suppressed, 7)
        clock.advance(1)
        self.assertTrue(limiter.allow())
        self.assertEqual(limiter.take_suppressed(), 7)
        self.assertEqual(limiter.take_suppressed(), 0)


class ClientKeyTests(SynchronousTestCase):
    def test_ipv4_addresses_are_their_own_key(self) -> None:
        self.assertEqual(client_key("192.0.2.1"), "192.0.2.1")
        self.assertNotEqual(client_key("192.0.2.1"), client_key("192.0.2.2"))

    def test_ipv6_addresses_count_by_64(self) -> None:
        self.assertEqual(client_key("2001:db8:1:2::1"), "2001:db8:1:2::/64")
        self.assertEqual(
            client_key("2001:db8:1:2:ffff:ffff:ffff:ffff"), client_key("2001:0db8:1:2::7")
        )
        self.assertNotEqual(client_key("2001:db8:1:2::1"), client_key("2001:db8:1:3::1"))
        self.assertEqual(client_key("fe80::1%eth0"), "fe80::/64")
        self.assertEqual(client_key("::1"), "::/64")

    def test_ipv4_mapped_addresses_count_as_ipv4(self) -> None:
        self.assertEqual(client_key("::ffff:192.0.2.1"), "192.0.2.1")

    def test_anything_else_is_its_own_key(self) -> None:
        self.assertEqual(client_key("UNIXAddress('/tmp/s')"), "UNIXAddress('/tmp/s')")
        self.assertEqual(client_key("not:an:address"), "not:an:address")


class ConfigAndIdentityTests(SynchronousTestCase):
    def test_defaults_are_the_documented_limits(self) -> None:
        config = LobbyConfig()
        self.assertEqual(
            (
                config.max_frame_bytes,
                config.max_connections_per_ip,
                config.frame_rate,
                config.frame_burst,
                config.max_protocol_errors,
                config.max_connections,
                config.max_pending_per_ip,
                config.queue_rate,
                config.queue_burst,
                config.hello_timeout,
                config.idle_timeout,
                config.close_timeout,
                config.max_matches_per_ip,
                config.ping_interval,
                config.ping_timeout,
            ),
            (4096, 32, 20.0, 40, 10, 10000, 32, 1.0, 32, 10.0, 60.0, 10.0, 16, 5.0, 5.0),
        )

    def test_invalid_config_is_refused(self) -> None:
        self.assertRaises(ValueError, LobbyConfig, frame_rate=0)
        self.assertRaises(ValueError, LobbyConfig, max_connections_per_ip=0)
        self.assertRaises(ValueError, LobbyConfig, max_protocol_errors=0)
        self.assertRaises(ValueError, LobbyConfig, max_connections=0)
        self.assertRaises(ValueError, LobbyConfig, max_pending_per_ip=0)
        self.assertRaises(ValueError, LobbyConfig, queue_rate=0)
        self.assertRaises(ValueError, LobbyConfig, queue_burst=0)
        self.assertRaises(ValueError, LobbyConfig, hello_timeout=0)
        self.assertRaises(ValueError, LobbyConfig, idle_timeout=-1)
        self.assertRaises(ValueError, LobbyConfig, max_matches_per_ip=0)
        self.assertRaises(ValueError, LobbyConfig, ping_interval=0)
        self.assertRaises(ValueError, LobbyConfig, ping_timeout=0)

    def test_player_ids_and_secrets(self) -> None:
        self.assertRegex(new_player_id(), r"^p-[0-9a-f]{16}$")
        secret = new_secret()
        self.assertGreaterEqual(len(secret), 43)
        digest = hash_secret(secret)
        self.assertTrue(re.fullmatch(r"[0-9a-f]{64}", digest))
        self.assertNotIn(secret, digest)
        self.assertTrue(secret_matches(secret, digest))
        self.assertFalse(secret_matches(secret + "x", digest))
        self.assertFalse(secret_matches("\ud800", digest))


class DocsTests(SynchronousTestCase):
    def test_docs_and_the_web_client_give_every_error_code_and_no_other(self) -> None:
        # Every code the lobby sends (errors.ALL_CODES: the fuzz and adversarial
        # tests hold every error frame to it) has a row in docs/lobby.md's "Errors"
        # saying when, and a text for the player in the web client's LOBBY_ERRORS;
        # neither names a code the lobby never sends.
        checkout = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        with open(os.path.join(checkout, "docs", "lobby.md"), encoding="utf-8") as f:
            docs = f.read()
        table = docs.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
        rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|\n]*?) \|", table, re.M))
        self.assertEqual(set(rows), set(errors.ALL_CODES))
        for code, when in rows.items():
            self.assertGreater(len(when.strip()), 10, code)
        # The installed package's copy: the compiled lane runs from a folder that
        # links tests/ and docs/ but not vinom/ (tox.ini).
        script = files("vinom").joinpath("webclient", "lobby.js").read_text(encoding="utf-8")
        body = script.split("export const LOBBY_ERRORS = {\n", 1)[1].split("\n};", 1)[0]
        texts = dict(re.findall(r'^  ([a-z_]+): "([^"\n]*)",$', body, re.M))
        self.assertEqual(len(texts), len(body.splitlines()), "one code and its text per line")
        self.assertEqual(set(texts), set(errors.ALL_CODES))
        for code, text in texts.items():
            self.assertTrue(text.endswith("."), code)

    def test_every_code_written_where_an_error_frame_starts_is_a_lobby_code(self) -> None:
        # The lobby answers LobbyError's code; open rooms' RoomError and the parties'
        # PartyError are passed on as they are. Each code written out where the server
        # raises one is one of errors.ALL_CODES (so the docs and LOBBY_ERRORS have it),
        # but the two a party_join answers as unknown_party.
        package = Path(vinom.__file__).parent
        written: dict[str, str] = {}
        for path in sorted(package.rglob("*.py")):
            if path.is_relative_to(package / "client"):
                continue  # the client's own failures (a match_found it cannot read)
            for node in ast.walk(ast.parse(path.read_text("utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in {"LobbyError", "RoomError", "PartyError"}
                        and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
                    written[str(node.args[0].value)] = f"{path.name}:{node.lineno}"
        self.assertIn("room_full", written)  # the reading finds them
        party_codes = {parties.UNKNOWN_PARTY, parties.ALREADY_IN_PARTY, parties.NOT_IN_PARTY,
                       parties.PARTY_CHANGED}  # fmt: skip
        answered_as_unknown_party = {parties.PARTY_FULL, parties.PARTY_QUEUED}
        strays = {code: where for code, where in written.items()
                  if code not in errors.ALL_CODES | answered_as_unknown_party}  # fmt: skip
        self.assertEqual(strays, {})
        self.assertLessEqual(party_codes, errors.ALL_CODES)

    def test_docs_and_the_web_client_speak_the_servers_game_protocol(self) -> None:
        checkout = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        with open(os.path.join(checkout, "docs", "lobby.md"), encoding="utf-8") as f:
            docs = f.read()
        # The keys of "The game protocol": in hello and reconnect, and in the welcome.
        self.assertRegex(docs, r"\| `hello` \|[^\n]*`protocol`: integer")
        self.assertRegex(docs, r"\| `reconnect` \|[^\n]*`protocol`: integer")
        self.assertRegex(docs, r"\n\| `protocol` \| integer \| the game protocol this server")
        self.assertIn("does not say speaks **1**", docs)
        # The number the docs give as the server's is the server's: a bump of
        # PROTOCOL_VERSION is a bump of the docs, table, prose and examples alike.
        speaks = request_types.GAME_PROTOCOL
        self.assertIn(f"this server speaks **protocol {speaks}**", docs)
        self.assertIn(f"| integer | the game protocol this server speaks ({speaks})", docs)
        self.assertIn(f'{{"type": "hello", "name": "Ann", "protocol": {speaks}, "id": 1}}', docs)
        self.assertIn(f"speaks game protocol {speaks} and the client speaks protocol 1", docs)
        documented = {int(n) for n in re.findall(r'"protocol": ?(\d+)', docs)}
        self.assertEqual(documented, {speaks})
        # The web client says the protocol its game.js speaks, the server's: a bump of
        # PROTOCOL_VERSION is a bump of the web client's PROTOCOL.
        # The installed package's file (tox runs the tests outside the checkout).
        lobby_js = (files("vinom") / "webclient" / "lobby.js").read_text(encoding="utf-8")
        found = re.search(r"^export const PROTOCOL = (\d+);$", lobby_js, re.MULTILINE)
        assert found is not None
        self.assertEqual(int(found[1]), request_types.GAME_PROTOCOL)
