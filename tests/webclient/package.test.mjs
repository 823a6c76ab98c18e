// The client package (vinom/webclient/package.json): every file it exports is
// there, and every name its types (index.d.ts) declare is exported by the module
// whose section declares it, so the types cannot drift from the code.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

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
  assert.deepEqual(sections.filter((_, i) => i % 2 === 0), ["lobby.js", "transport.js", "game.js", "netcode.js"]);
  for (let i = 0; i < sections.length; i += 2) {
    const module = await import(new URL(sections[i], dir));
    const declared = [...sections[i + 1].matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]);
    assert.ok(declared.length > 0, sections[i]);
    for (const name of declared) assert.ok(name in module, `${sections[i]} exports ${name}`);
  }
});

test("every module the docs import by the package's name resolves through its exports", async () => {
  // As a user's project does: the package in node_modules, each `@vinom/client/X.js`
  // the docs (docs/*.md, the package's README) show imported by that name. A module
  // missing from `exports` fails with ERR_PACKAGE_PATH_NOT_EXPORTED here as there;
  // and every export is named in the docs, so one cannot be added unannounced.
  const docs = new URL("../../docs/", import.meta.url);
  const texts = [await readFile(new URL("README.md", dir), "utf8")];
  for (const name of await readdir(docs)) {
    if (name.endsWith(".md")) texts.push(await readFile(new URL(name, docs), "utf8"));
  }
  const named = new Set(texts.flatMap((text) => [...text.matchAll(/@vinom\/client\/([\w-]+\.js)/g)].map((m) => m[1])));
  const manifest = JSON.parse(await readFile(new URL("package.json", dir), "utf8"));
  assert.deepEqual([...named].sort(), Object.keys(manifest.exports).map((key) => key.slice(2)).sort());
  const project = await mkdtemp(join(tmpdir(), "vinom-client-user-"));
  try {
    await mkdir(join(project, "node_modules", "@vinom"), { recursive: true });
    await symlink(fileURLToPath(dir), join(project, "node_modules", "@vinom", "client"), "dir");
    await writeFile(join(project, "user.mjs"), "export const load = (name) => import(name);\n");
    const { load } = await import(pathToFileURL(join(project, "user.mjs")));
    for (const file of named) {
      const module = await load(`@vinom/client/${file}`);
      assert.ok(Object.keys(module).length > 0, `@vinom/client/${file} exports nothing`);
    }
    await assert.rejects(load("@vinom/client/app.js"), { code: "ERR_PACKAGE_PATH_NOT_EXPORTED" });
  } finally {
    await rm(project, { recursive: true, force: true });
  }
});
