"""The client package as a web studio gets it (vinom/webclient/, `@vinom/client`):
`npm pack` of the directory vinom is imported from, the tarball installed into a
fresh project with esbuild, TypeScript and ws from npm's registry, and no other
step. The package README's page example is bundled by esbuild (the vendored
MessagePack library inside the bundle); it and the README's TypeScript example
pass `tsc --strict` on the package's own types, with TypeScript 5 and 7; its Node
example, importing the package's root with ws's WebSocket passed in (Node 20 has
no WebSocket of its own), says hello to a real `twistd vinom` lobby over
WebSocket and is welcomed, and nothing of the package writes to the console; a
Node program signs in with the package's `deviceAuth` to a real `twistd vinom
--auth device` lobby, as the same account the next time, asks its leaderboard
and history, and is refused with another secret. npm
and node are Debian's (scripts/test installs them); npm's cache keeps the tools
after the first run."""

# slow: runs npm, esbuild, tsc and node (child processes; npm's registry unless cached) and twistd

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from twisted.internet import utils
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

import vinom
from tests.support.npm import npm_env, tool
from tests.support.servers import RunningTwistd, start_twistd

# The package the installed vinom ships (the wheel's copy in tox's tests run).
WEBCLIENT = Path(vinom.__file__).resolve().parent / "webclient"
# What the studio installs beside the package, pinned so that a new release of a
# tool cannot change what this test checks. `typescript5` is npm's alias of the
# other major version still in wide use.
TOOLS = ("esbuild@0.28.2", "typescript@7.0.2", "typescript5@npm:typescript@5.9.3", "ws@8.23.0")
# The README's examples name this lobby; the test's server takes its place.
EXAMPLE_LOBBY = "wss://games.example:7380/lobby"
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "allowJs": True,
        "checkJs": True,
        "noEmit": True,
        "target": "es2022",
        "module": "esnext",
        "moduleResolution": "bundler",
        "lib": ["es2022", "dom"],
    },
    "files": ["page.js", "netcode.ts"],
}


def readme_examples() -> tuple[str, str, str]:
    """The package README's three examples: the page's, TypeScript's and Node's."""
    text = (WEBCLIENT / "README.md").read_text("utf-8")
    examples = re.findall(r"^```(js|ts)\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    (js, page), (ts, typed), (js_too, node) = examples
    assert (js, ts, js_too) == ("js", "ts", "js"), examples
    return page, typed, node


# A Node program signing in with the package's deviceAuth, its storage a Map.
DEVICE_SCRIPT = """\
import WebSocket from "ws";
import { DEVICE_KEY, LobbyConnection, deviceAuth } from "@vinom/client";

const items = new Map();
const storage = {
  getItem: (key) => items.get(key) ?? null,
  setItem: (key, value) => items.set(key, value),
};
const connect = () =>
  new LobbyConnection("LOBBY", { WebSocket, auth: () => deviceAuth({ storage }) }).open();
const said = [];
for (const name of ["Ann", "Someone"]) {
  const lobby = await connect();
  const welcome = await lobby.hello(name);
  const board = await lobby.leaderboard("tictactoe");
  const { matches } = await lobby.history();
  said.push([welcome.player_id, welcome.name, welcome.auth, board.entries.length, matches.length]);
  lobby.close();
}
const kept = JSON.parse(items.get(DEVICE_KEY));
items.set(DEVICE_KEY, JSON.stringify({ ...kept, secret: "x".repeat(43) }));
const lobby = await connect();
try {
  await lobby.hello("Ann");
} catch (error) {
  said.push([error.code, error.frame.reason, error.message]);
}
lobby.close();
console.log(JSON.stringify(said));
"""


class PackageTests(TestCase):
    timeout = 300

    async def run_tool(
        self, executable: str, args: Sequence[str], cwd: Path, **env: str
    ) -> tuple[str, str]:
        """Runs a tool to its end; its stdout and stderr, or a failure showing them."""
        out, err, code = await utils.getProcessOutputAndValue(
            executable, list(args), env=npm_env(**env), path=str(cwd)
        )
        said = (out.decode(errors="replace"), err.decode(errors="replace"))
        self.assertEqual(code, 0, f"{executable} {' '.join(args)}:\n{said[0]}\n{said[1]}")
        return said

    async def test_the_packed_package_installs_bundles_typechecks_and_plays(self) -> None:
        npm, node = tool("npm"), tool("node")
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        # The servers start while npm works: a guest's, and one whose players sign in
        # with a device.
        server: Deferred[RunningTwistd] = Deferred.fromCoroutine(start_twistd(self, {}, web=True))
        devices: Deferred[RunningTwistd] = Deferred.fromCoroutine(
            start_twistd(self, {}, "--auth", "device", web=True)
        )

        out, _ = await self.run_tool(
            npm, ["pack", str(WEBCLIENT), "--pack-destination", str(work), "--json"], work
        )
        packed = json.loads(out)[0]
        files = {entry["path"] for entry in packed["files"]}
        for needed in ("package.json", "index.js", "index.d.ts", "LICENSE",
                       "vendor/msgpack/index.mjs", "vendor/msgpack/LICENSE"):  # fmt: skip
            self.assertIn(needed, files)
        self.assertFalse({f for f in files if f in ("app.js", "index.html") or "boards/" in f})

        studio = work / "studio"
        studio.mkdir()
        manifest = {"name": "studio", "private": True, "type": "module"}
        (studio / "package.json").write_text(json.dumps(manifest), "utf-8")
        await self.run_tool(
            npm,
            ["install", "--prefer-offline", "--no-audit", "--no-fund",
             str(work / packed["filename"]), *TOOLS],
            studio,
        )  # fmt: skip
        installed = json.loads((studio / "package.json").read_text("utf-8"))
        self.assertEqual(
            set(installed["dependencies"]), {"@vinom/client", "esbuild", "typescript",
                                             "typescript5", "ws"}
        )  # fmt: skip

        page, typed, bot = readme_examples()
        (studio / "page.js").write_text(page, "utf-8")
        (studio / "netcode.ts").write_text(typed, "utf-8")
        (studio / "tsconfig.json").write_text(json.dumps(TSCONFIG), "utf-8")
        # `tsc -p .` of each TypeScript (exit 0: no error; each prints what it finds).
        for tsc in ("node_modules/typescript/bin/tsc", "node_modules/typescript5/bin/tsc"):
            await self.run_tool(node, [tsc, "-p", "."], studio)
        await self.run_tool(
            str(studio / "node_modules" / ".bin" / "esbuild"),
            ["page.js", "--bundle", "--format=esm", "--platform=browser",
             "--outfile=dist/page.js"],
            studio,
        )  # fmt: skip
        # esbuild heads each module it bundled with its path.
        bundle = (studio / "dist" / "page.js").read_text("utf-8")
        bundled = set(re.findall(r"^// node_modules/@vinom/client/(\S+)$", bundle, re.MULTILINE))
        self.assertLessEqual({"lobby.js", "game.js", "codec.js", "vendor/msgpack/Decoder.mjs"},
                             bundled)  # fmt: skip

        running = await server
        url = f"wss://127.0.0.1:{running.web_port}/lobby"
        self.assertIn(EXAMPLE_LOBBY, bot)
        (studio / "bot.js").write_text(bot.replace(EXAMPLE_LOBBY, url), "utf-8")
        # The dev certificate is the server's own: Node trusts it as a user's CA.
        out, err = await self.run_tool(
            node, ["bot.js"], studio, NODE_EXTRA_CA_CERTS=running.cert
        )
        self.assertRegex(out, r"^hello as p-[0-9a-f]{16}\n$")
        self.assertEqual(err, "")
        # The root's codec, in Node, on the package's own copy of the library.
        script = (
            'import { decode, encode } from "@vinom/client";\n'
            'console.log(JSON.stringify(decode(encode({ t: "input", x: [[3, { up: true }]] }))));\n'
        )
        (studio / "codec.js").write_text(script, "utf-8")
        out, err = await self.run_tool(node, ["codec.js"], studio)
        self.assertEqual((json.loads(out), err), ({"t": "input", "x": [[3, {"up": True}]]}, ""))

        # Signed in with a device identity, on a real `--auth device` lobby: made once
        # in the storage given, the same account at the next sign-in (whatever name it
        # says), its leaderboard and history asked; another secret for the device
        # refused with the reason in words.
        signing = await devices
        (studio / "device.js").write_text(
            DEVICE_SCRIPT.replace("LOBBY", f"wss://127.0.0.1:{signing.web_port}/lobby"), "utf-8"
        )
        out, err = await self.run_tool(
            node, ["device.js"], studio, NODE_EXTRA_CA_CERTS=signing.cert
        )
        self.assertEqual(err, "")
        first, again, refused = json.loads(out)
        self.assertRegex(first[0], r"^a-")
        self.assertEqual(first, [first[0], "Ann", "device", 0, 0])
        self.assertEqual(again, first)
        told = "This device's sign-in does not match its account."
        self.assertEqual(refused, ["auth_failed", "bad_secret", told])
