// Small DOM helpers the board modules share (not a board: the shell never loads it by name).
//
// No helper here writes a <style> element or a style="" attribute: the page's
// Content-Security-Policy (docs/web.md) refuses both. A board's style sheet is
// a file next to it (`stylesheet` in its default export); setting
// `node.style.x` from script is allowed.

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(name, attributes = {}) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

export function html(name, attributes = {}, text = "") {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text) node.textContent = text;
  return node;
}
