"""vectors/protocol.json, the protocol's test vectors as data: docs/protocol.md is
generated from it, and it is plain JSON a C++ (nlohmann-json) or JavaScript reader
takes. Each group's vectors are checked against the code by its own module
(tests/protocol/test_protocol_vectors.py, test_reliability.py,
tests/rooms/test_rooms_messages.py, tests/gateway/test_relay_token.py,
tests/rooms/test_delta.py, tests/hosting/test_webtransport_wire.py,
tests/hosting/test_records.py, tests/rooms/test_rooms_record.py) and by the web client's Node suite
(tests/webclient/vectors.test.mjs)."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.support.vectors import DOC, GROUPS, VECTORS, generate, load, main, regions

HEX = re.compile(r"(?:[0-9a-f]{2})*")
#: The keys whose values are bytes (lowercase hex), in any group.
BYTES_KEYS = {"hex", "plaintext", "body", "d", "piece", "key", "nonce", "token_key",
              "user_data_hex", "client_to_server_key", "server_to_client_key", "token_nonce",
              "cookie_key"}  # fmt: skip


def _refuse(name: str) -> Any:
    raise ValueError(f"not plain JSON: {name}")


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, value) pair under `value`."""
    out = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out += walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for n, v in enumerate(value):
            out += walk(v, f"{path}[{n}]")
    return out


def section_key(section: str) -> list[int]:
    """A section number's order: 13.14 after 12, 16.8 after 16.7."""
    return [int(part) for part in section.split(".")]


class FileTests(SynchronousTestCase):
    def test_the_file_is_plain_json_in_the_documents_order(self) -> None:
        data = json.loads(VECTORS.read_text(encoding="utf-8"), parse_constant=_refuse)
        self.assertEqual((data["format"], data["version"]), ("vinom-protocol-vectors", 1))
        self.assertEqual([k for k in data if k in GROUPS], list(GROUPS))
        for name in GROUPS:
            self.assertIsInstance(data[name]["section"], str)
            self.assertTrue(data[name]["vectors"], name)

    def test_every_vector_has_a_name_of_its_own_and_its_bytes(self) -> None:
        data = load()
        names = [v["name"] for g in GROUPS for v in data[g]["vectors"]]
        self.assertEqual(len(names), len(set(names)), names)
        for g in GROUPS:
            for v in data[g]["vectors"]:
                self.assertTrue("hex" in v or "bodies" in v, v["name"])

    def test_bytes_are_lowercase_hex(self) -> None:
        for path, value in walk(load()):
            key = path.rsplit(".", 1)[-1]
            if path.startswith(".session.token."):
                continue  # the token's JSON as the lobby sends it: base64
            if key in BYTES_KEYS and isinstance(value, str):
                self.assertRegex(value, HEX, path)
                self.assertTrue(HEX.fullmatch(value), path)
            if key == "bodies":
                for item in value:
                    self.assertTrue(HEX.fullmatch(item), path)

    def test_each_group_names_a_section_of_the_document(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        for name in GROUPS:
            section = load()[name]["section"]
            self.assertRegex(text, rf"(?m)^#+ {re.escape(section)}\.? ", name)


class DocumentTests(SynchronousTestCase):
    def test_the_document_is_generated_from_the_file(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        self.assertEqual(sorted(regions(text)), sorted(GROUPS))
        self.assertEqual(generate(text), text, "run python -m tests.support.vectors")
        self.assertEqual(main(["--check"]), 0)

    def test_every_vector_block_of_the_document_is_a_generated_one(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        outside = re.sub(r"<!-- vectors:(\w+) begin.*?<!-- vectors:\1 end -->", "", text,
                         flags=re.S)  # fmt: skip
        self.assertNotIn("<!-- vector:", outside)
        self.assertNotIn("Test vectors: version", outside)  # no copy left in prose

    def test_section_19_and_the_introduction_list_what_the_file_holds(self) -> None:
        """§19's table has a row per group of the file (its section, in order, no
        other), the session row names every session vector in order, and the
        introduction names every section that holds vectors."""
        data = load()
        text = DOC.read_text(encoding="utf-8")
        self.assertEqual([k for k, v in data.items() if isinstance(v, dict)], list(GROUPS))
        table = text[text.index("## 19. ") :]
        rows = {m[1]: (m[2], m[3]) for m in re.finditer(
            r"(?m)^\| `(\w+)` \| ([\d.]+) \| (.*) \|$", table)}  # fmt: skip
        self.assertEqual(list(rows), list(GROUPS))
        # The file's section, or the subsection of it holding the vectors (14: 14.1).
        shown = [rows[g][0] for g in GROUPS]
        for g, section in zip(GROUPS, shown, strict=True):
            self.assertIn(data[g]["section"], (section, section.rpartition(".")[0]), g)
        listed = rows["session"][1].split("`vectors`: ", 1)[1].split(", each its", 1)[0]
        self.assertEqual(re.findall(r"`(\w+)`", listed),
                         [v["name"] for v in data["session"]["vectors"]])  # fmt: skip
        [sections] = re.findall(r"The test vectors \(sections ([^)]*)\)", " ".join(text.split()))
        self.assertEqual(re.split(r", | and ", sections), sorted(set(shown), key=section_key))

    def test_a_byte_changed_in_the_file_changes_the_document(self) -> None:
        text = DOC.read_text(encoding="utf-8")
        data = copy.deepcopy(load())
        for g in GROUPS:
            vector = data[g]["vectors"][0]
            key = "hex" if "hex" in vector else "bodies"
            changed = copy.deepcopy(data)
            first = changed[g]["vectors"][0]
            if key == "hex":
                first["hex"] = f"{int(vector['hex'][:2], 16) ^ 1:02x}" + vector["hex"][2:]
            else:
                first["bodies"][0] = f"{int(vector['bodies'][0][:2], 16) ^ 1:02x}" + \
                    vector["bodies"][0][2:]
            self.assertNotEqual(generate(text, changed), text, g)
