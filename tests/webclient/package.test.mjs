// The client package (vinom/webclient/package.json): every file it exports is
// there, and every name its types (index.d.ts) declare is exported by the module
// whose section declares it, so the types cannot drift from the code.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";

const dir = new URL("../../vinom/webclient/", import.meta.url);

test("the package's exports and files exist", async () => {
  const manifest = JSON.parse(await readFile(new URL("package.json", dir), "utf8"));
  assert.equal(manifest.type, "module");
  for (const [name, target] of Object.entries(manifest.exports)) {
    const file = typeof target === "string" ? target : target.default;
    assert.equal(name, file, "imported by file name, as the web client imports them");
    await import(new URL(file, dir));
  }
  for (const file of manifest.files) await readFile(new URL(file, dir));
});

test("every module a packaged file imports is packaged too", async () => {
  // npm publishes `files` alone: a relative import of one left out breaks the package
  // while the page, served from the whole directory, works.
  const manifest = JSON.parse(await readFile(new URL("package.json", dir), "utf8"));
  const files = new Set(manifest.files);
  for (const file of manifest.files.filter((name) => name.endsWith(".js"))) {
    const text = await readFile(new URL(file, dir), "utf8");
    for (const [, imported] of text.matchAll(/^import[^"]*"\.\/([^"]+)";/gm)) {
      assert.ok(files.has(imported), `${file} imports ./${imported}, not in package.json's files`);
    }
  }
});

test("every declared name is exported by its module", async () => {
  const types = await readFile(new URL("index.d.ts", dir), "utf8");
  const sections = types.split(/^\/\/ ---- (\S+):/m).slice(1);
  assert.deepEqual(sections.filter((_, i) => i % 2 === 0), ["lobby.js", "transport.js", "game.js"]);
  for (let i = 0; i < sections.length; i += 2) {
    const module = await import(new URL(sections[i], dir));
    const declared = [...sections[i + 1].matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
    assert.ok(declared.length > 0, sections[i]);
    for (const name of declared) assert.ok(name in module, `${sections[i]} exports ${name}`);
  }
});
