// Loads a game's board for the shell: the module boards/<game>.js when the
// server has one (the list at /boards.js, which the web server makes from
// the files in boards/, so that a game without a board costs no failed
// request), and the style sheet its default export names in `stylesheet`
// (a file next to the module), linked and loaded before the board is drawn.
// The page's Content-Security-Policy allows style sheets from the site and
// refuses <style> elements and style attributes (docs/web.md).

let known = null;

// The games that have a board of their own.
export async function boardNames() {
  if (known === null) known = import("./boards.js").then((module) => module.default);
  return known;
}

// Links the style sheet at `href` once; resolves once it has loaded.
export function linkStyle(doc, href) {
  let link = [...doc.querySelectorAll("link[rel=stylesheet]")].find((l) => l.href === href);
  if (link !== undefined && link.sheet !== null) return Promise.resolve();
  if (link === undefined) {
    link = doc.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    doc.head.append(link);
  }
  return new Promise((resolve, reject) => {
    link.addEventListener("load", () => resolve(), { once: true });
    link.addEventListener("error", () => reject(new Error(`the style sheet ${href} did not load`)), { once: true });
  });
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
