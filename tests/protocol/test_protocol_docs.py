"""What docs/protocol.md and docs/lobby.md say a client writer needs, checked against the code.

A client written from the docs alone hit these gaps (#12): the welcome vector's
session id and time, the user data bytes, what the payload vectors' bodies
hold (and that the host's acknowledges the client's body 0), the integer
`expires_at`, what a `leave`ing player receives, and that no `phase` message
announces `waiting`. Each test reads the document and the code's behaviour.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.hosting.test_hosting_core import CoreTestCase, make_match
from tests.protocol.test_protocol_vectors import SESSION, documented
from tests.protocol.test_reliability_wire import SLIM_EXAMPLES
from tests.support.vectors import unhex
from vinom.protocol.crypto import new_aead
from vinom.protocol.events import RELIABLE
from vinom.protocol.reliability_wire import body_of_slim
from vinom.protocol.tokens import encode_user_data
from vinom.protocol.wire import NONCE_DOMAIN_SESSION, SHORT_PAYLOAD, full_sequence
from vinom.rooms.client_messages import encode_leave

DOCS = Path(__file__).resolve().parents[2] / "docs"
C2S = unhex(SESSION["derived"]["client_to_server_key"])
S2C = unhex(SESSION["derived"]["server_to_client_key"])


def protocol_doc() -> str:
    return (DOCS / "protocol.md").read_text(encoding="utf-8")


def open_packet(packet: bytes, key: bytes, newest: bytes = b"") -> bytes:
    """A session packet opened; a short or slim payload (§5.9, §5.10) by the sequence
    of `newest`, the last long packet its receiver accepted from the sender."""
    if packet[0] < SHORT_PAYLOAD:
        sequence = struct.unpack_from("<Q", packet, 1)[0]
        header, sealed = packet[:9], packet[9:]
    else:
        low = struct.unpack_from("<H", packet, 1)[0]
        sequence = full_sequence(low, struct.unpack_from("<Q", newest, 1)[0])
        header, sealed = struct.pack("<BQ", packet[0], sequence), packet[3:]
    nonce = struct.pack("<IQ", NONCE_DOMAIN_SESSION, sequence)
    return new_aead(key).decrypt(nonce, sealed, header)


class VectorInputsTests(SynchronousTestCase):
    def test_the_welcome_vector_names_its_session_id_and_time(self) -> None:
        _, vectors = documented()
        [welcome] = [v for v in SESSION["vectors"] if v["name"] == "welcome"]
        plaintext = open_packet(vectors["welcome"], S2C)
        self.assertEqual(plaintext.hex(), welcome["plaintext"])
        session_id, server_time = struct.unpack("<Qd", plaintext)
        self.assertEqual((session_id, server_time), (welcome["session_id"], welcome["server_time"]))
        text = protocol_doc()
        self.assertIn("`session_id` 1", text)
        self.assertIn("`server_time` 1000.0", text)

    def test_the_inputs_the_text_gives_are_the_files(self) -> None:
        # Section 12 tells its inputs in words before the generated blocks: each is
        # vectors/protocol.json's (a key as its first three bytes ... its last).
        text = protocol_doc()
        text = text[text.index("## 12. Test vectors") : text.index("<!-- vectors:session begin")]
        text = " ".join(text.split())
        inputs, derived = SESSION["inputs"], SESSION["derived"]

        def short(key: str) -> str:
            return f"`{key[:6]}...{key[-2:]}`"

        [host] = inputs["hosts"]
        client = inputs["client"]
        told = [
            short(inputs["token_key"]), f"`{inputs['application_id']:#X}`".replace("0X", "0x"),
            f"version {inputs['protocol_version']}",
            short(derived["client_to_server_key"]), short(derived["server_to_client_key"]),
            short(derived["token_nonce"]), f"`{inputs['player_id']}`", f"`{inputs['match_id']}`",
            f"`{host['host']}:{host['port']}`", f"unix {inputs['created_at']}",
            f"lifetime {inputs['token_lifetime']} s",
            f"expires {inputs['created_at'] + inputs['token_lifetime']}",
            f"timeout {inputs['timeout_ms']} ms", f"`{inputs['user_data_hex']}`",
            f"clock {inputs['host_time']} s", f"{inputs['cookie_rotation']:g} s rotation",
            f"unix time {inputs['unix_time']}", f"`{derived['first_stateless_sequence']:#x}`",
            short(derived["cookie_key"]), f"`{derived['first_session_sequence']:#x}`",
            f"`{client['host']}:{client['port']}`", f"`{derived['client_first_sequence']:#x}`",
            f"host time {inputs['keepalive_time']}",
            f"`{inputs['client_message']['hex']}`", f"`{inputs['host_message']['hex']}`",
            f"channel {inputs['client_message']['channel']}",
            f"channel {inputs['host_message']['channel']}",
            *(f"count up from `{inputs[side + '_random_start']:#x}`"
              for side in ("issuer", "host", "client")),
        ]  # fmt: skip
        for words in told:
            self.assertIn(words, text)

    def test_the_user_data_bytes_are_given(self) -> None:
        inputs = SESSION["inputs"]
        data = encode_user_data(**inputs["user_data"])
        self.assertEqual(data.hex(), inputs["user_data_hex"])
        self.assertIn(f"`{data.hex()}`", protocol_doc())

    def test_the_payload_bodies_are_given(self) -> None:
        _, vectors = documented()
        plaintexts = {v["name"]: v["plaintext"] for v in SESSION["vectors"] if "plaintext" in v}
        text = re.sub(r"`\s*`", "", protocol_doc())  # the bodies are written in parts
        for name, key, newest in (("payload_client", C2S, ""), ("offer", C2S, ""),
                                  ("payload_server", S2C, "welcome"),
                                  ("payload_client_short", C2S, "offer"),
                                  ("payload_server_slim", S2C, "welcome"),
                                  ("payload_client_slim", C2S, "offer_slim")):  # fmt: skip
            body = open_packet(vectors[name], key, vectors.get(newest, b""))
            self.assertEqual(body.hex(), plaintexts[name], name)
            self.assertIn(f"`{body.hex()}`", text, name)
        # A slim body (§13.3) and the body it stands for, as the file gives both.
        for v in SESSION["vectors"]:
            if "body" in v:
                self.assertEqual(body_of_slim(unhex(v["plaintext"])), unhex(v["body"]), v["name"])
        # §13.3's examples of the slim layout: the snapshot and the ack-only body.
        for full, slim in (SLIM_EXAMPLES[0], SLIM_EXAMPLES[3]):
            self.assertIn(f"`{full}`", text)
            self.assertIn(f"`{slim}`", text)
        self.assertIn("it acknowledges the client's\n  body 0", protocol_doc())


class LobbyDocTests(SynchronousTestCase):
    def test_expires_at_is_an_integer_in_every_example(self) -> None:
        text = (DOCS / "lobby.md").read_text(encoding="utf-8")
        values = re.findall(r'"expires_at":\s*([0-9.]+)', text)
        self.assertTrue(values)
        for value in values:
            self.assertTrue(value.isdigit(), value)


class RoomMessagesTests(CoreTestCase):
    def test_no_phase_message_announces_waiting(self) -> None:
        self.core.add_match(make_match("m-w", ("p-a", "p-b"), "tictactoe"), self.now)
        first = self.join("p-a", "m-w")
        self.assertEqual(first.of_type("phase"), [])
        self.assertEqual(first.of_type("state")[0]["p"], "waiting")
        self.assertIn("no `phase` message\nannounces it", protocol_doc())

    def test_a_player_who_leaves_receives_nothing_more(self) -> None:
        self.core.add_match(make_match("m-l", ("p-a", "p-b"), "tictactoe"), self.now)
        leaving, staying = self.join("p-a", "m-l"), self.join("p-b", "m-l")
        seen = len(leaving.messages)
        leaving.connection.send_message(RELIABLE, encode_leave())
        self.run_for(0.5)
        self.assertEqual(leaving.messages[seen:], [])
        self.assertEqual(leaving.closed, "disconnect")
        self.assertIn({"t": "presence", "id": "p-a", "status": "left"}, staying.messages)
        self.assertIn("the leaving player receives nothing more", protocol_doc())
