// The maze board of the web client: the maze drawn from its walls, rewards,
// the players' tokens, a legend, and movement by keyboard or on-screen arrows.
//
// The view (vinom/games/maze.py, docs/games.md "maze"): {width, height,
// cells, players: [{id, pos: [x, y], score, left}], remaining, finished}.
// A cell's low four bits are its walls (N=1, E=2, S=4, W=8), `cell >> 4` its
// reward (0, 1 or 5). A move is {"move": "N"|"E"|"S"|"W", "from": [x, y]}.
//
// Moves are predicted: a key pressed before the state answering the last move
// has come is sent from where that move leads, so a quick series of presses
// is a series of legal moves and not one move and a run of `stale` rejections.
// A state's `i` (the last action of mine the room applied) retires predicted
// moves; a rejection, or a prediction the server's position contradicts,
// falls back to the position in the latest view. A move into a wall is not
// sent at all: the token bumps against it.

import { html, svg } from "./dom.js";

const WALL = { N: 1, E: 2, S: 4, W: 8 };
const STEP = { N: [0, -1], E: [1, 0], S: [0, 1], W: [-1, 0] };
const KEYS = {
  ArrowUp: "N", ArrowRight: "E", ArrowDown: "S", ArrowLeft: "W",
  w: "N", d: "E", s: "S", a: "W",
  k: "N", l: "E", j: "S", h: "W",
};
const COLOURS = ["#ff5d73", "#4d9dff", "#3ddc97", "#c084fc"];
const CELL = 10; // SVG user units per cell
const PENDING_TTL_MS = 2000; // a move unanswered this long no longer counts
// A held key repeats about 30 times a second; the maze takes 10 moves a
// second from a player (its action_rate), so held keys move at that pace.
const REPEAT_MS = 110;

// One path for every wall: each cell draws its north and west walls, the last
// row and column their south and east ones (the two sides of a wall agree).
function wallPath(width, height, cells) {
  const parts = [];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const walls = cells[y * width + x] & 15;
      const left = x * CELL, top = y * CELL, right = left + CELL, bottom = top + CELL;
      if (walls & WALL.N) parts.push(`M${left} ${top}H${right}`);
      if (walls & WALL.W) parts.push(`M${left} ${top}V${bottom}`);
      if (y === height - 1 && walls & WALL.S) parts.push(`M${left} ${bottom}H${right}`);
      if (x === width - 1 && walls & WALL.E) parts.push(`M${right} ${top}V${bottom}`);
    }
  }
  return parts.join("");
}

function star(cx, cy, outer, inner) {
  const points = [];
  for (let k = 0; k < 10; k++) {
    const radius = k % 2 ? inner : outer;
    const angle = -Math.PI / 2 + (k * Math.PI) / 5;
    points.push(`${(cx + radius * Math.cos(angle)).toFixed(2)},${(cy + radius * Math.sin(angle)).toFixed(2)}`);
  }
  return points.join(" ");
}

export default {
  // Linked by the shell (loader.js) before create(): the page's policy allows
  // style sheets from the site, never a <style> element.
  stylesheet: "maze.css",
  create(element, game) {
    const root = html("div", { class: "vb-maze" });
    const field = html("div", { class: "vb-field" });
    const grid = svg("svg", { class: "vb-grid", role: "img", "aria-label": "maze" });
    const defs = svg("defs");
    const glow = svg("filter", { id: "vb-glow", x: "-50%", y: "-50%", width: "200%", height: "200%" });
    glow.appendChild(svg("feGaussianBlur", { stdDeviation: "0.7", result: "blur" }));
    const merge = svg("feMerge");
    merge.appendChild(svg("feMergeNode", { in: "blur" }));
    merge.appendChild(svg("feMergeNode", { in: "SourceGraphic" }));
    glow.appendChild(merge);
    defs.appendChild(glow);
    const floor = svg("rect", { class: "vb-floor", rx: 2 });
    const rewardLayer = svg("g", { class: "vb-rewards" });
    const walls = svg("path", { class: "vb-walls" });
    const tokenLayer = svg("g", { class: "vb-tokens" });
    grid.append(defs, floor, rewardLayer, walls, tokenLayer);
    const overlay = html("div", { class: "vb-overlay", hidden: "" });
    field.append(grid, overlay);

    const side = html("div", { class: "vb-side" });
    const title = html("h2", {}, "Maze");
    const remaining = html("p", { class: "vb-remaining" });
    const legend = html("ul", { class: "vb-legend", "aria-label": "players" });
    const key = html("p", { class: "vb-key" });
    const keySvg = (inner) => {
      const icon = svg("svg", { width: 14, height: 14, viewBox: "0 0 10 10" });
      icon.appendChild(inner);
      return icon;
    };
    const one = html("span");
    one.append(keySvg(svg("circle", { cx: 5, cy: 5, r: 2, class: "vb-coin", fill: "#f6c945" })), "1 point");
    const five = html("span");
    five.append(keySvg(svg("polygon", { points: star(5, 5, 4.5, 2), fill: "#ffe27a", stroke: "#ff9f1c", "stroke-width": 0.6 })), "5 points");
    key.append(one, five);
    const pad = html("div", { class: "vb-pad", role: "group", "aria-label": "move" });
    const arrows = { N: "↑", W: "←", S: "↓", E: "→" };
    const names = { N: "north", W: "west", S: "south", E: "east" };
    for (const dir of ["N", "W", "S", "E"]) {
      const button = html("button", { type: "button", "data-dir": dir, "aria-label": `move ${names[dir]}` }, arrows[dir]);
      pad.appendChild(button);
    }
    const help = html("p", { class: "vb-key" }, "Arrows, WASD or hjkl to move");
    side.append(title, remaining, legend, key, pad, help);
    root.append(field, side);
    element.appendChild(root);

    let view = null; // the latest game view
    let phase = "waiting";
    let drawn = ""; // the maze (size and walls) drawn now
    const tokens = new Map(); // player id -> {group, ring}
    let pending = []; // predicted moves: {id, from: [x, y], to: [x, y], at}
    let destroyed = false;
    let lastKeyMove = -Infinity;

    const seatOf = (id, index) => {
      const known = (game.players || []).find((p) => p.id === id);
      return known && Number.isInteger(known.seat) ? known.seat : index;
    };
    const nameOf = (id) => {
      const known = (game.players || []).find((p) => p.id === id);
      return (known && known.name) || id;
    };
    const mine = () => (view ? view.players.find((p) => p.id === game.me) : undefined);

    // Where I am as far as this board knows: the view's position, moved on by
    // the moves sent and not yet reflected in a state.
    function position() {
      const me = mine();
      if (!me) return null;
      const now = Date.now();
      pending = pending.filter((move) => now - move.at < PENDING_TTL_MS);
      let here = me.pos;
      for (const move of pending) {
        if (move.from[0] !== here[0] || move.from[1] !== here[1]) {
          pending = []; // the server has me elsewhere: its word stands
          return me.pos;
        }
        here = move.to;
      }
      return here;
    }

    function canMove() {
      const me = mine();
      return Boolean(view && me && !me.left && !view.finished && phase === "playing");
    }

    function bump() {
      const token = tokens.get(game.me);
      if (!token) return;
      token.group.classList.remove("vb-bump");
      void token.group.getBBox(); // restart the animation
      token.group.classList.add("vb-bump");
    }

    function move(dir) {
      if (destroyed || !canMove()) return;
      const from = position();
      const cell = view.cells[from[1] * view.width + from[0]];
      if (cell & WALL[dir]) {
        bump();
        return;
      }
      const to = [from[0] + STEP[dir][0], from[1] + STEP[dir][1]];
      const id = game.act({ move: dir, from: [from[0], from[1]] });
      pending.push({ id, from, to, at: Date.now() });
      placeToken(game.me, to);
    }

    function onKey(event) {
      if (event.ctrlKey || event.metaKey || event.altKey) return;
      const target = event.target;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
      const dir = KEYS[event.key] || KEYS[event.key.toLowerCase?.()];
      if (!dir) return;
      event.preventDefault();
      if (event.repeat && performance.now() - lastKeyMove < REPEAT_MS) return;
      lastKeyMove = performance.now();
      move(dir);
    }

    function onPad(event) {
      const button = event.target.closest("button[data-dir]");
      if (button) move(button.dataset.dir);
    }

    function placeToken(id, pos) {
      const token = tokens.get(id);
      if (!token || !view) return;
      // Players sharing a cell stand side by side.
      const sharing = view.players.filter((p) => p.id !== id && tokenCell(p.id) === `${pos[0]},${pos[1]}`);
      const shift = sharing.length ? (view.players.findIndex((p) => p.id === id) % 2 ? 1.6 : -1.6) : 0;
      token.cell = `${pos[0]},${pos[1]}`;
      token.group.style.transform = `translate(${pos[0] * CELL + CELL / 2 + shift}px, ${pos[1] * CELL + CELL / 2}px)`;
      token.group.dataset.x = pos[0];
      token.group.dataset.y = pos[1];
    }
    const tokenCell = (id) => (tokens.get(id) || {}).cell;

    function drawMaze() {
      const signature = `${view.width}x${view.height}:${view.cells.map((c) => c & 15).join(",")}`;
      if (signature === drawn) return;
      drawn = signature;
      const pad = 1;
      grid.setAttribute("viewBox", `${-pad} ${-pad} ${view.width * CELL + 2 * pad} ${view.height * CELL + 2 * pad}`);
      grid.dataset.width = view.width;
      grid.dataset.height = view.height;
      walls.setAttribute("d", wallPath(view.width, view.height, view.cells));
      for (const [name, value] of Object.entries({ x: -pad, y: -pad, width: view.width * CELL + 2 * pad, height: view.height * CELL + 2 * pad })) {
        floor.setAttribute(name, value);
      }
    }

    function drawRewards() {
      rewardLayer.replaceChildren();
      view.cells.forEach((cell, index) => {
        const reward = cell >> 4;
        if (!reward) return;
        const cx = (index % view.width) * CELL + CELL / 2;
        const cy = Math.floor(index / view.width) * CELL + CELL / 2;
        // The glow is an attribute: a url(#id) in the style sheet would name the sheet's file.
        const shape = reward >= 5
          ? svg("polygon", { class: "vb-gem", filter: "url(#vb-glow)", points: star(cx, cy, 2.9, 1.3) })
          : svg("circle", { class: "vb-coin", cx, cy, r: 1.15 });
        shape.dataset.reward = reward;
        rewardLayer.appendChild(shape);
      });
    }

    function drawPlayers() {
      const seen = new Set();
      view.players.forEach((player, index) => {
        seen.add(player.id);
        const colour = COLOURS[seatOf(player.id, index) % COLOURS.length];
        let token = tokens.get(player.id);
        if (!token) {
          const group = svg("g", { class: "vb-token", "data-player": player.id });
          const ring = svg("circle", { class: "vb-ring", r: 4.3 });
          const body = svg("circle", { class: "vb-body", r: 3.3, fill: colour });
          const letter = svg("text", {});
          letter.textContent = (nameOf(player.id)[0] || "?").toUpperCase();
          group.append(ring, body, letter);
          tokenLayer.appendChild(group);
          token = { group, cell: "" };
          tokens.set(player.id, token);
        }
        token.group.classList.toggle("vb-me", player.id === game.me);
        token.group.classList.toggle("vb-gone", Boolean(player.left));
        placeToken(player.id, player.id === game.me ? position() : player.pos);
      });
      for (const [id, token] of tokens) {
        if (!seen.has(id)) {
          token.group.remove();
          tokens.delete(id);
        }
      }
      // My token on top of the others.
      const me = tokens.get(game.me);
      if (me) tokenLayer.appendChild(me.group);
    }

    function drawLegend() {
      legend.replaceChildren();
      const best = Math.max(...view.players.filter((p) => !p.left).map((p) => p.score), 0);
      view.players.forEach((player, index) => {
        const item = html("li", { "data-player": player.id });
        item.classList.toggle("vb-me", player.id === game.me);
        item.classList.toggle("vb-gone", Boolean(player.left));
        const swatch = html("span", { class: "vb-swatch" });
        swatch.style.background = COLOURS[seatOf(player.id, index) % COLOURS.length];
        let label = nameOf(player.id) + (player.id === game.me ? " (you)" : "");
        if (view.finished && !player.left && player.score === best) label += " ★";
        item.append(swatch, html("span", { class: "vb-name" }, label), html("span", { class: "vb-score" }, String(player.score)));
        legend.appendChild(item);
      });
      remaining.textContent = view.finished
        ? "Game over"
        : `${view.remaining} reward${view.remaining === 1 ? "" : "s"} left`;
    }

    function drawOverlay(state) {
      let text = "";
      if (phase === "waiting") text = "Waiting for players…";
      else if (phase === "countdown") text = `Get ready… ${Math.max(0, Math.ceil(state.r ?? 0))}`;
      else if (phase === "aborted") text = "Game aborted";
      else if (phase === "finished" || (view && view.finished)) {
        const best = Math.max(...view.players.filter((p) => !p.left).map((p) => p.score), 0);
        const winners = view.players.filter((p) => !p.left && p.score === best);
        text = winners.some((p) => p.id === game.me)
          ? (winners.length > 1 ? "A shared win!" : "You win!")
          : `${winners.map((p) => nameOf(p.id)).join(" & ")} win${winners.length === 1 ? "s" : ""}`;
      }
      overlay.textContent = text;
      overlay.hidden = !text;
      for (const button of pad.querySelectorAll("button")) button.disabled = !canMove();
    }

    window.addEventListener("keydown", onKey);
    pad.addEventListener("click", onPad);

    return {
      update(state) {
        if (destroyed || !state || !state.s) return;
        phase = state.p || phase;
        view = state.s;
        if (Number.isInteger(state.i)) pending = pending.filter((move) => move.id > state.i);
        drawMaze();
        drawRewards();
        drawPlayers();
        drawLegend();
        drawOverlay(state);
      },
      event() {},
      error(code, message) {
        // Whatever was predicted after a rejected move is void.
        pending = [];
        if (view) {
          const me = mine();
          if (me) placeToken(game.me, me.pos);
        }
        if (code !== "stale" && game.say) game.say(message || code);
      },
      destroy() {
        destroyed = true;
        window.removeEventListener("keydown", onKey);
        pad.removeEventListener("click", onPad);
        root.remove();
      },
    };
  },
};
