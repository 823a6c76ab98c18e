// The client package (vinom/webclient/package.json): every file it exports is
// there, its root exports every module's names, and the types (index.d.ts)
// declare exactly what each module exports, so the types cannot drift from the
// code. (tests/webclient/test_package.py installs the packed package for real.)
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const dir = new URL("../../vinom/webclient/", import.meta.url);
const MODULES = ["lobby.js", "transport.js", "game.js", "netcode.js", "delta.js", "schema.js", "codec.js"];

async function manifest() {
  return JSON.parse(await readFile(new URL("package.json", dir), "utf8"));
}

// A packaged file: named in `files` itself or under a directory `files` names.
function packaged(files, name) {
  return files.some((entry) => entry === name || (entry.endsWith("/") && name.startsWith(entry)));
}

test("the package's exports and files exist", async () => {
  const { type, exports, files } = await manifest();
  assert.equal(type, "module");
  assert.deepEqual(exports["."], { types: "./index.d.ts", default: "./index.js" });
  for (const [name, target] of Object.entries(exports)) {
    assert.equal(target.types, "./index.d.ts", name);
    if (name === ".") continue;
    assert.equal(name, target.default, "imported by file name, as the web client imports them");
    await import(new URL(target.default, dir));
  }
  assert.deepEqual(Object.keys(exports).slice(1).sort(), MODULES.map((m) => `./${m}`).sort());
  for (const file of files) {
    if (file.endsWith("/")) assert.ok((await readdir(new URL(file, dir))).length > 0, file);
    else await readFile(new URL(file, dir));
  }
});

test("the root exports every module's names", async () => {
  const root = await import(new URL("index.js", dir));
  const names = new Set();
  for (const file of MODULES) {
    for (const name of Object.keys(await import(new URL(file, dir)))) {
      assert.ok(!names.has(name), `${name} is exported by two modules`);
      names.add(name);
      assert.ok(name in root, `the root exports ${file}'s ${name}`);
    }
  }
  assert.deepEqual(Object.keys(root).sort(), [...names].sort());
});

test("every module a packaged file imports is packaged too", async () => {
  // npm publishes `files` alone: a relative import of one left out breaks the package
  // while the page, served from the whole directory, works.
  const { files } = await manifest();
  const scripts = ["index.js", ...MODULES];
  const seen = new Set();
  while (scripts.length > 0) {
    const file = scripts.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    assert.ok(packaged(files, file), `${file} is not in package.json's files`);
    const text = await readFile(new URL(file, dir), "utf8");
    const here = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
    for (const [, imported] of text.matchAll(/^(?:import|export)[^"]*"(\.[^"]+)";/gm)) {
      const path = new URL(imported, new URL(here, dir)).href.slice(dir.href.length);
      scripts.push(path);
    }
  }
  assert.ok(seen.has("vendor/msgpack/index.mjs"), "the MessagePack library is packaged");
});

test("each module's section of the types declares exactly its exports", async () => {
  const types = await readFile(new URL("index.d.ts", dir), "utf8");
  const sections = types.split(/^\/\/ ---- (\S+):/m).slice(1);
  assert.deepEqual(sections.filter((_, i) => i % 2 === 0), MODULES);
  for (let i = 0; i < sections.length; i += 2) {
    const module = await import(new URL(sections[i], dir));
    // A function with overloads is declared once for each.
    const declared = new Set([...sections[i + 1].matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]));
    assert.deepEqual([...declared].sort(), Object.keys(module).sort(), sections[i]);
  }
});

test("every module the docs import by the package's name resolves through its exports", async () => {
  // As a user's project does: the package in node_modules, `@vinom/client` and each
  // `@vinom/client/X.js` the docs (docs/*.md, the package's README) show imported by
  // that name. A module missing from `exports` fails with ERR_PACKAGE_PATH_NOT_EXPORTED
  // here as there; and every export is named in the docs, so one cannot be added
  // unannounced.
  const docs = new URL("../../docs/", import.meta.url);
  const texts = [await readFile(new URL("README.md", dir), "utf8")];
  for (const name of await readdir(docs)) {
    if (name.endsWith(".md")) texts.push(await readFile(new URL(name, docs), "utf8"));
  }
  const named = new Set(texts.flatMap((text) => [...text.matchAll(/@vinom\/client(\/[\w-]+\.js)?(?![\w/-])/g)].map((m) => `.${m[1] ?? ""}`)));
  const { exports } = await manifest();
  assert.deepEqual([...named].sort(), Object.keys(exports).sort());
  const project = await mkdtemp(join(tmpdir(), "vinom-client-user-"));
  try {
    await mkdir(join(project, "node_modules", "@vinom"), { recursive: true });
    await symlink(fileURLToPath(dir), join(project, "node_modules", "@vinom", "client"), "dir");
    await writeFile(join(project, "user.mjs"), "export const load = (name) => import(name);\n");
    const { load } = await import(pathToFileURL(join(project, "user.mjs")));
    for (const path of named) {
      const module = await load(`@vinom/client${path.slice(1)}`);
      assert.ok(Object.keys(module).length > 0, `@vinom/client${path.slice(1)} exports nothing`);
    }
    await assert.rejects(load("@vinom/client/app.js"), { code: "ERR_PACKAGE_PATH_NOT_EXPORTED" });
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
