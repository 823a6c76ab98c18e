"""The protocol's test vectors as data: vectors/protocol.json, read by every suite.

vectors/protocol.json holds each test vector of docs/protocol.md once: its
inputs, the intermediate values the document shows, and the expected bytes as
lowercase hex. The Python suite (this module's callers), the web client's Node
suite (tests/webclient/vectors.test.mjs) and the native core's GoogleTest suite
(clients/cpp/tests) read it; the document's vector blocks are generated from
it, between the markers ``<!-- vectors:NAME begin ... -->`` and
``<!-- vectors:NAME end -->``.

After a deliberate wire change, edit the file and regenerate the document:
``python -m tests.support.vectors`` (``--check`` says whether it is current).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "vectors" / "protocol.json"
DOC = ROOT / "docs" / "protocol.md"

#: The groups of the file, in the document's order.
GROUPS = ("session", "reliability", "messages", "route_tokens", "delta", "schema",
          "webtransport", "records", "state_hashes")  # fmt: skip

_REGION = re.compile(
    r"(<!-- vectors:(\w+) begin[^>]*-->\n)(.*?)(<!-- vectors:\2 end -->)", re.S
)


def load(path: Path = VECTORS) -> dict[str, Any]:
    """The whole file."""
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def group(name: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """One group of the file (its `section`, shared `inputs` and `vectors`)."""
    return (load() if data is None else data)[name]  # type: ignore[no-any-return]


def vectors(name: str, data: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """A group's vectors by name, in the file's order."""
    return {v["name"]: v for v in group(name, data)["vectors"]}


def unhex(text: str) -> bytes:
    return bytes.fromhex(text)


# -- the document's blocks ---------------------------------------------------------------


def _spaced(data: bytes, width: int = 24) -> str:
    return "\n".join(data[i : i + width].hex(" ") for i in range(0, len(data), width))


class _Delete:
    """The removal marker of a patch (ext type 0), as the document writes it."""


def _value(x: Any) -> str:
    """A msgpack or JSON value as the document writes it: JSON, with bin as b"..."
    and a patch's removal as <delete>."""
    if isinstance(x, _Delete):
        return "<delete>"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{_value(k)}: {_value(v)}" for k, v in x.items()) + "}"
    if isinstance(x, list | tuple):
        return "[" + ", ".join(_value(v) for v in x) + "]"
    if isinstance(x, bytes):
        return 'b"' + x.decode("ascii", "backslashreplace") + '"'

    return json.dumps(x)


def _unpack(data: bytes) -> Any:
    def ext(code: int, payload: bytes) -> Any:
        return _Delete() if code == 0 and payload == b"" else msgpack.ExtType(code, payload)

    return msgpack.unpackb(data, raw=False, ext_hook=ext, strict_map_key=False)


#: A session packet longer than this is given by its SHA-256 rather than its bytes.
_SESSION_SHOWN = 64


def _session(g: dict[str, Any]) -> list[str]:
    """The token's JSON, its sealed part cut short (the request carries it whole), and
    a table of the packets: each one's bytes, a long one's by their SHA-256."""
    token = dict(g["token"])
    request = unhex(vectors("session", {"session": g})["request"]["hex"])
    if base64.b64decode(token["token"]) != request[33:1057]:
        raise ValueError("the token's sealed part is not the request's bytes 33..1056")
    token["token"] = f"{token['token'][:8]}...{token['token'][-8:]}"
    lines = ["The lobby's JSON; `token`, cut short here, is the base64 of the request's "
             "bytes 33 to 1056 (§5.2):", "", "```json", json.dumps(token, indent=2), "```", "",
             f"Each packet's bytes as hex; one over {_SESSION_SHOWN} bytes by the SHA-256 of "
             "its bytes (the bytes: vectors/protocol.json):", "",
             "| vector | bytes | hex, or SHA-256 |", "|---|---|---|"]  # fmt: skip
    for v in g["vectors"]:
        data = unhex(v["hex"])
        shown = (f"`{data.hex()}`" if len(data) <= _SESSION_SHOWN
                 else f"SHA-256 `{hashlib.sha256(data).hexdigest()}`")  # fmt: skip
        lines.append(f"| `{v['name']}` | {len(data)} | {shown} |")
    return [*lines, ""]


def _reliability(g: dict[str, Any]) -> list[str]:
    lines = ["```"]
    for v in g["vectors"]:
        lines += [v["title"], *v["bodies"], ""]
    lines[-1] = "```"
    return [*lines, ""]


def _nil(x: Any) -> str:
    return "nil" if x is None else json.dumps(x)


def _messages(g: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for v in g["vectors"]:
        if v["kind"] == "relative_snap":
            s, base = v["snap"], v["base"]
            fields = ", ".join(_nil(s[k]) for k in ("v", "ts", "r", "i", "ik"))
            against = ("full" if base is None else
                       f"against tick {v['base_tick']}, whose snap had `v`, `ts`, `r` "
                       f"{base['v']}, {base['ts']}, {_nil(base['r'])}")  # fmt: skip
            body = ("schema snapshot (§16.8)" if s["d"].startswith("01") else
                    f"§16.1 snapshot of the view `{_value(v['d_view'])}`")  # fmt: skip
            text = (f"`snap` `[{fields}, d]` (`r` in ms), `d` the {body} of tick "
                    f"{v['d_tick']} {against} (`{s['d']}`)")  # fmt: skip
        else:
            text = f"`{v['kind']}` `{_value(v['message'])}`"
            for k, seen in v.get("seen", {}).items():
                text += f", the input of tick {k} given while tick {seen} was drawn"
        lines += [f"<!-- vector:{v['name']} -->", text + ":", "", "```text",
                  _spaced(unhex(v["hex"])), "```", ""]  # fmt: skip
    return lines


def _route_tokens(g: dict[str, Any]) -> list[str]:
    inputs = g["inputs"]
    lines = [f"Relay key `{inputs['key']}`, nonce `{inputs['nonce']}`.", ""]
    for v in g["vectors"]:
        lines += [f"<!-- vector:{v['name']} {v['host']} {v['port']} {v['expires_at']} -->",
                  f"Route `{v['host']}` port {v['port']}, `expires_at` {v['expires_at']} "
                  f"(plaintext `{v['plaintext']}`):", "",
                  "```text", v["hex"], "```", ""]  # fmt: skip
    return lines


def _delta(g: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    ticks = {v["name"]: (n, v["tick"]) for n, v in enumerate(g["vectors"], 1)}
    for n, v in enumerate(g["vectors"], 1):
        title = f"{n}. Tick {v['tick']}"
        if v["baseline"] is None:
            title += ", full"
        else:
            number, tick = ticks[v["baseline"]]
            title += f" against tick {tick} (vector {number})"
        title += ", with checksum" if v["checksum"] else ", no checksum"
        if v["rules"]:
            title += f", rules `{_value(v['rules'])}`"
        text = [f"{title}: `{_value(v['view'])}`"]
        if "note" in v:
            text.append(f"({v['note']})")
        view, body, decoded = (_value(x) for x in (v["view"], _unpack(unhex(v["body"])),
                                                   v["decoded"]))  # fmt: skip
        if body not in (view, decoded):
            text.append(f"(body `{body}`)")
        if decoded != view:
            text.append(f"(decoded `{decoded}`)")
        lines += [f"<!-- vector:{v['name']} -->", *text, "", "```text", v["hex"], "```", ""]
    return lines


def _schema(g: dict[str, Any]) -> list[str]:
    lines = [f"Declaration: `{_value(g['schema'])}`", ""]
    for n, v in enumerate(g["vectors"], 1):
        text = [f"{n}. {v['title']}: `{_value(v['view'])}`", f"({v['note']})"]
        if "waiting" in v:
            text.append(f"(waiting `{_value(v['waiting'])}`)")
        if v["decoded"] != v["view"]:
            text.append(f"(decoded `{_value(v['decoded'])}`)")
        lines += [f"<!-- vector:{v['name']} -->", *text, "", "```text", v["hex"], "```", ""]
    return lines


def _webtransport(g: dict[str, Any]) -> list[str]:
    lines = ["| what | bytes |", "|---|---|"]
    for v in g["vectors"]:
        if v["kind"] == "stream":
            what = f"`{_value(v['message'])}` on the stream"
        else:
            what = f"the capsule closing with {v['code']} `{v['reason']}`"
        lines.append(f"| {what} | `{unhex(v['hex']).hex(' ')}` |")
    return [*lines, ""]


def _records(g: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for v in g["vectors"]:
        if v["kind"] == "header":
            text = f"The header `{_value(v['value'])}` (`started` a float 64)"
        else:
            text = f"The frame `{_value([v['match_id'], unhex(v['piece'])])}`"
        lines += [f"<!-- vector:{v['name']} -->", text + ":", "", "```text",
                  _spaced(unhex(v["hex"])), "```", ""]  # fmt: skip
    return lines


def _state_hashes(g: dict[str, Any]) -> list[str]:
    lines = ["| state | hash |", "|---|---|"]
    for v in g["vectors"]:
        lines.append(f"| `{_value(v['value'])}` | `{v['hex']}` |")
    return [*lines, ""]


_RENDER: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "session": _session,
    "reliability": _reliability,
    "messages": _messages,
    "route_tokens": _route_tokens,
    "delta": _delta,
    "schema": _schema,
    "webtransport": _webtransport,
    "records": _records,
    "state_hashes": _state_hashes,
}


def render(name: str, data: dict[str, Any] | None = None) -> str:
    """The document's text between the markers of group `name`."""
    lines = _RENDER[name](group(name, data))
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def regions(text: str) -> dict[str, str]:
    """The generated regions of a document, by group."""
    return {m.group(2): m.group(3) for m in _REGION.finditer(text)}


def generate(text: str, data: dict[str, Any] | None = None) -> str:
    """`text` (docs/protocol.md) with each group's region rendered from the file."""
    data = load() if data is None else data

    def replace(m: re.Match[str]) -> str:
        return m.group(1) + render(m.group(2), data) + m.group(4)

    return _REGION.sub(replace, text)


def main(argv: list[str]) -> int:
    text = DOC.read_text(encoding="utf-8")
    new = generate(text)
    if "--check" in argv:
        if new != text:
            print("docs/protocol.md differs from vectors/protocol.json: "
                  "run python -m tests.support.vectors")  # fmt: skip
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
