"""Tests for the lobby's sans-I/O frame codec, request validation, rate limiter and ids."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from vinom.lobby import errors
from vinom.lobby.codec import (
    Cancel,
    FrameDecoder,
    FrameError,
    Hello,
    Ping,
    Queue,
    Reconnect,
    encode_frame,
    error_frame,
    parse_frame,
)
from vinom.lobby.config import LobbyConfig
from vinom.lobby.identity import hash_secret, new_player_id, new_secret, secret_matches
from vinom.lobby.ratelimit import TokenBucket


def code_of(line: bytes) -> str:
    result = parse_frame(line)
    assert isinstance(result, FrameError), result
    return result.code


class ParseFrameTests(SynchronousTestCase):
    def test_requests(self) -> None:
        self.assertEqual(parse_frame(b'{"type":"hello","name":"Ann"}'), Hello(None, "Ann"))
        self.assertEqual(
            parse_frame(b'{"type":"queue","game":"maze","rating":1500,"id":"q1"}'),
            Queue("q1", "maze", 1500.0),
        )
        self.assertEqual(parse_frame(b'{"type":"queue","game":"maze"}'), Queue(None, "maze", None))
        self.assertEqual(parse_frame(b'{"type":"cancel","id":7}'), Cancel(7))
        self.assertEqual(parse_frame(b'{"type":"ping"}'), Ping(None))
        self.assertEqual(
            parse_frame(b'{"type":"reconnect","player_id":"p-1","secret":"s"}'),
            Reconnect(None, "p-1", "s"),
        )

    def test_unknown_fields_are_ignored(self) -> None:
        self.assertEqual(parse_frame(b'{"type":"ping","extra":[1,2]}'), Ping(None))

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

    def test_invalid_fields(self) -> None:
        for frame in (
            b'{"type":"hello","name":""}',
            b'{"type":"hello","name":"   "}',
            b'{"type":"hello","name":7}',
            b'{"type":"hello","name":"' + b"n" * 33 + b'"}',
            b'{"type":"hello","name":"a\\u0000b"}',
            b'{"type":"hello","name":"a\\nb"}',
            b'{"type":"hello","name":"\\ud800"}',
            b'{"type":"queue","game":5}',
            b'{"type":"queue","game":""}',
            b'{"type":"queue","game":"maze","rating":"high"}',
            b'{"type":"queue","game":"maze","rating":true}',
            b'{"type":"queue","game":"maze","rating":1e300}',
            b'{"type":"reconnect","player_id":"","secret":"s"}',
            b'{"type":"reconnect","player_id":"p","secret":["s"]}',
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


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        clock = Clock()
        bucket = TokenBucket(rate=20.0, burst=40, clock=clock)
        self.assertEqual(sum(bucket.allow() for _ in range(50)), 40)
        clock.advance(0.5)
        self.assertEqual(sum(bucket.allow() for _ in range(50)), 10)
        clock.advance(100)
        self.assertEqual(bucket.tokens, 40)

    def test_a_clock_stepping_back_does_not_drain_or_fill(self) -> None:
        clock = Clock()
        clock.advance(100)
        bucket = TokenBucket(rate=1.0, burst=2, clock=clock)
        bucket.allow()
        bucket.allow()
        clock.rightNow = 50.0
        self.assertFalse(bucket.allow())
        clock.rightNow = 51.0
        self.assertTrue(bucket.allow())

    def test_invalid_parameters(self) -> None:
        self.assertRaises(ValueError, TokenBucket, 0, 1, Clock())
        self.assertRaises(ValueError, TokenBucket, 1, 0, Clock())


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
            ),
            (4096, 32, 20.0, 40, 10),
        )

    def test_invalid_config_is_refused(self) -> None:
        self.assertRaises(ValueError, LobbyConfig, frame_rate=0)
        self.assertRaises(ValueError, LobbyConfig, max_connections_per_ip=0)
        self.assertRaises(ValueError, LobbyConfig, max_protocol_errors=0)

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
