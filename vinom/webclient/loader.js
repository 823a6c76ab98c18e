// Loads a game's board for the shell: the module boards/<game>.js when the
// server has one (the list at /boards.js, which the web server makes from
// the files in boards/, so that a game without a board costs no failed
// request), and the style sheet its default export names in `stylesheet`
// (a file next to the module), linked and loaded before the board is drawn.
// The page's Content-Security-Policy allows style sheets from the site and
// refuses <style> elements and style attributes (docs/web.md).

let known = null;
let failures = 0;

// The games that have a board of their own. A list that failed to load is not
// kept: the next call asks again, under a fresh URL, as some browsers keep a
// module that failed to load as failed for its URL.
export async function boardNames() {
  if (known === null) {
    const url = failures === 0 ? "./boards.js" : `./boards.js?try=${failures}`;
    known = import(url).then(
      (module) => module.default,
      (error) => {
        known = null;
        failures += 1;
        throw error;
      },
    );
  }
  return known;
}

// The loads under way, by <link>: a second call for the same sheet waits on the first.
const loading = new WeakMap();

// Links the style sheet at `href` once; resolves once it has loaded, rejects
// as soon as it fails. A failed sheet's <link> is removed, so that a later call
// links it again rather than waiting for events that will not come again.
export function linkStyle(doc, href) {
  const found = [...doc.querySelectorAll("link[rel=stylesheet]")].find((l) => l.href === href);
  if (found !== undefined) {
    if (loading.has(found)) return loading.get(found);
    if (found.sheet !== null) return Promise.resolve();
    found.remove(); // failed before, or not ours to wait on: link it afresh
  }
  const link = doc.createElement("link");
  link.rel = "stylesheet";
  link.href = href;
  const loaded = new Promise((resolve, reject) => {
    link.addEventListener("load", () => {
      loading.delete(link);
      resolve();
    }, { once: true });
    link.addEventListener("error", () => {
      loading.delete(link);
      link.remove();
      reject(new Error(`the style sheet ${href} did not load`));
    }, { once: true });
  });
  loading.set(link, loaded);
  doc.head.append(link);
  return loaded;
}

// The board module of `game` with its style sheet loaded, or null when the game has none.
export async function loadBoard(game, doc = document) {
  if (!/^[A-Za-z0-9_-]+$/.test(game) || !(await boardNames()).includes(game)) return null;
  const url = new URL(`./boards/${game}.js`, import.meta.url);
  const board = (await import(url.href)).default;
  if (typeof board.stylesheet === "string") {
    await linkStyle(doc, new URL(board.stylesheet, url).href);
  }
  return board;
}
