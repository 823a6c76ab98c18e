// The arena's board (the built-in game vinom/games/arena.py; docs/games.md
// "Real-time games"): every player a dot on a wrapping square, moved with the
// arrow keys (or WASD), or by holding a pointer on the field (towards it).
//
// Built on the client-side netcode of GameSocket (netcode.js, docs/web.md
// "Clock, interpolation and prediction"), drawn every animation frame:
// - the other players are interpolated between snapshots, two snapshot
//   intervals behind the synced server clock (`game.interpolate`, `rendered`),
//   items matched by their seat index, positions the shorter way round;
// - the own dot is predicted (`game.predict`, `predicted`) with the arena's own
//   rules, `own` and `step` below (the twins of ArenaGame.own and step): an
//   input moves it on the frame it is given, and each snapshot reconciles it;
// - each direction key pressed is an event the player causes, predicted
//   (`game.predictEvents`): a ring where the own dot was at the key, drawn on
//   the first animation frame after the key event, even when the input it
//   starts waits for the next tick to be sent (one input a tick); a snapshot
//   whose `ack` reaches the input's number confirms it (the ring goes), one
//   that has not after 8 ticks retracts it (the key changed nothing sent).
// A spectator or a replay's viewer (`game.spectator`) has no dot of their own:
// every player's is drawn interpolated, and no key or pointer is taken.
//
// The view (ArenaGame.view): {me, ack, ticks, players: [[seat, x, y, vx, vy]]},
// the players within 300 of me. The arena's side is 600 for 8 players, growing
// as the square root of the players (ArenaGame.__init__): from the welcome's
// player list here. An input is {move: [vx, vy], n}, sent when the velocity
// changes, at most once a tick.

import { html, svg } from "./dom.js";

const SIZE_8 = 600; // vinom/games/arena.py SIZE, for 8 players
const MAX_SPEED = 120; // vinom/games/arena.py MAX_SPEED
const SPEED = 100; // the velocity a key gives, units per second
const DOT = 9;
const KEYS = {
  ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0],
  w: [0, -1], s: [0, 1], a: [-1, 0], d: [1, 0],
};

// ArenaGame's velocity cap (vinom/games/arena.py, capped).
function capped(move) {
  let [vx, vy] = [Number(move[0]), Number(move[1])];
  const speed = Math.hypot(vx, vy);
  if (speed > MAX_SPEED) [vx, vy] = [(vx * MAX_SPEED) / speed, (vy * MAX_SPEED) / speed];
  return [vx, vy];
}

// ArenaGame.own: the viewer's {x, y, vx, vy} in a view, or null.
export function own(view) {
  const seen = (view?.players ?? []).find((p) => p[0] === view.me);
  return seen === undefined ? null : { x: seen[1], y: seen[2], vx: seen[3], vy: seen[4] };
}

// ArenaGame.step: one tick of the arena's rules for the own player.
export function stepper(size) {
  return (state, inputs, dt) => {
    let [vx, vy] = [state.vx, state.vy];
    for (const value of inputs) {
      if (Array.isArray(value.move) && value.move.length === 2) [vx, vy] = capped(value.move);
    }
    const wrap = (v) => (((v % size) + size) % size);
    return { x: wrap(state.x + vx * dt), y: wrap(state.y + vy * dt), vx, vy };
  };
}

export default {
  stylesheet: "arena.css",
  create(element, game) {
    const players = game.players?.length || 8;
    const size = SIZE_8 * Math.sqrt(players / 8);
    const root = html("div", { class: "vb-arena" });
    const field = svg("svg", {
      class: "vb-arena-field", viewBox: `0 0 ${size} ${size}`, role: "img", "aria-label": "arena",
    });
    field.append(svg("rect", { class: "vb-arena-floor", width: size, height: size }));
    const dots = svg("g", { class: "vb-arena-dots" });
    field.append(dots);
    // A spectator or a replay's viewer plays nothing: every dot is someone else's.
    const watching = game.spectator === true;
    const status = html("p", { class: "vb-arena-status" }, watching
      ? (game.replay ? "A replay: every player's dot." : "Watching: every player's dot.")
      : "Arrow keys or WASD to move.");
    root.append(field, status);
    element.append(root);

    const wrap = { x: size, y: size };
    game.interpolate({
      interpolation: {
        fields: ["players.*.1", "players.*.2"],
        keys: { players: "0" },
        wrap: { "players.*.1": size, "players.*.2": size },
      },
    });
    // Corrections within the view's 0.01 rounding are not counted.
    if (!watching) game.predict(stepper(size), own, { smooth: ["x", "y"], wrap, tolerance: 0.011 });

    const shown = new Map(); // seat -> <circle>
    // The rings of the keys' predicted events, each named by the number of the
    // input that carries the key's velocity: confirmed once a view's `ack` (the
    // newest input number the host applied) reaches it.
    const events = watching ? null : game.predictEvents(
      (view) => events.shown().map(([n]) => n).filter((n) => n <= (view?.ack ?? 0)),
    );
    const rings = new Map(); // input number -> <circle>
    const marks = svg("g", { class: "vb-arena-rings" });
    field.insertBefore(marks, dots);
    let playing = false;
    let ended = false;
    let frame = null;
    let frames = 0;
    const held = new Set(); // the direction keys held
    let pointer = null; // [x, y] in arena units while a pointer is held
    let sent = [0, 0]; // the velocity last sent
    let inputs = 0;
    let lastSent = -Infinity;
    let timer = null;

    function dot(seat, me) {
      let circle = shown.get(seat);
      if (circle === undefined) {
        circle = svg("circle", { r: DOT, class: `vb-arena-dot vb-seat-${seat % 8}${me ? " vb-me" : ""}` });
        circle.dataset.seat = String(seat);
        dots.append(circle);
        shown.set(seat, circle);
      }
      return circle;
    }

    function draw() {
      frame = requestAnimationFrame(draw);
      const view = game.rendered();
      if (view === null) return;
      const mine = watching ? null : game.predicted() ?? own(view);
      const seen = new Set();
      for (const [seat, x, y] of view.players ?? []) {
        if (seat === view.me) continue;
        seen.add(seat);
        const circle = dot(seat, false);
        circle.setAttribute("cx", x.toFixed(2));
        circle.setAttribute("cy", y.toFixed(2));
      }
      if (mine !== null && view.me >= 0) {
        seen.add(view.me);
        const circle = dot(view.me, true);
        circle.setAttribute("cx", mine.x.toFixed(2));
        circle.setAttribute("cy", mine.y.toFixed(2));
      }
      for (const [seat, circle] of shown) {
        if (!seen.has(seat)) {
          circle.remove();
          shown.delete(seat);
        }
      }
      drawRings();
      frames += 1;
      root.dataset.frames = String(frames);
    }

    // The keys' predicted events as they stand now (settled ones are gone).
    function drawRings() {
      if (events === null) return;
      const now = new Set();
      for (const [n, at] of events.shown()) {
        now.add(n);
        let ring = rings.get(n);
        if (ring === undefined) {
          ring = svg("circle", { r: DOT * 2, class: "vb-arena-ring" });
          ring.dataset.event = String(n);
          marks.append(ring);
          rings.set(n, ring);
        }
        ring.setAttribute("cx", at.x.toFixed(2));
        ring.setAttribute("cy", at.y.toFixed(2));
      }
      for (const [n, ring] of rings) {
        if (!now.has(n)) {
          ring.remove();
          rings.delete(n);
        }
      }
      root.dataset.rings = String(rings.size);
    }

    function wanted() {
      if (pointer !== null) {
        const me = game.predicted();
        if (me === null) return [0, 0];
        let dx = pointer[0] - me.x;
        let dy = pointer[1] - me.y;
        dx -= size * Math.round(dx / size);
        dy -= size * Math.round(dy / size);
        const d = Math.hypot(dx, dy);
        return d < DOT ? [0, 0] : [(dx / d) * SPEED, (dy / d) * SPEED];
      }
      let [x, y] = [0, 0];
      for (const key of held) [x, y] = [x + KEYS[key][0], y + KEYS[key][1]];
      const d = Math.hypot(x, y);
      return d === 0 ? [0, 0] : [(x / d) * SPEED, (y / d) * SPEED];
    }

    // The velocity wanted when it differs from the one last sent, else null.
    function change() {
      const move = wanted().map((v) => Math.round(v * 10) / 10);
      return move[0] === sent[0] && move[1] === sent[1] ? null : move;
    }

    // Sends the velocity wanted when it changed: at once, or, within a tick of
    // the last input, at the next tick (one input a tick: GameSocket.input).
    function steer() {
      if (!playing || ended || timer !== null) return;
      if (change() === null) return;
      const tick = 1000 / (game.tickRate() || 20);
      const wait = lastSent + tick - performance.now();
      if (wait > 0) {
        timer = setTimeout(() => {
          timer = null;
          steer();
        }, wait);
        return;
      }
      const move = change();
      sent = move;
      lastSent = performance.now();
      inputs += 1;
      const k = game.input({ move, n: inputs });
      // A key's event predicted before this send: now with the input's own tick.
      const event = events?.shown().find(([n]) => n === inputs);
      if (event !== undefined) events.predict(inputs, k, event[1]);
      root.dataset.inputs = String(inputs);
    }

    // A direction key pressed that changes the velocity: its event is predicted at
    // once, named by the number of the input that will carry it (sent now, or at
    // the next tick with the velocity wanted then), so the next frame draws it.
    function predictKey() {
      if (events === null || !playing || ended || change() === null) return;
      const view = game.rendered();
      const me = game.predicted() ?? (view === null ? null : own(view));
      if (me === null) return;
      const tick = Math.floor(game.serverTick() ?? 0) + 1; // until the input's own
      events.predict(inputs + 1, tick, { x: me.x, y: me.y });
    }

    function onKey(event) {
      if (!(event.key in KEYS) || event.ctrlKey || event.metaKey || event.altKey) return;
      event.preventDefault();
      if (event.type === "keydown") {
        held.add(event.key);
        if (!event.repeat) predictKey();
      } else {
        held.delete(event.key);
      }
      steer();
    }

    function toArena(event) {
      const box = field.getBoundingClientRect();
      return [((event.clientX - box.left) / box.width) * size, ((event.clientY - box.top) / box.height) * size];
    }

    const onDown = (event) => {
      pointer = toArena(event);
      field.setPointerCapture?.(event.pointerId);
      steer();
    };
    const onMove = (event) => {
      if (pointer === null) return;
      pointer = toArena(event);
      steer();
    };
    const onUp = () => {
      pointer = null;
      steer();
    };
    let steering = null;
    if (!watching) {
      document.addEventListener("keydown", onKey);
      document.addEventListener("keyup", onKey);
      field.addEventListener("pointerdown", onDown);
      field.addEventListener("pointermove", onMove);
      field.addEventListener("pointerup", onUp);
      field.addEventListener("pointercancel", onUp);
      steering = setInterval(() => { if (pointer !== null) steer(); }, 100);
    }
    frame = requestAnimationFrame(draw);

    function stop() {
      ended = true;
      if (frame !== null) cancelAnimationFrame(frame);
      frame = null;
      if (timer !== null) clearTimeout(timer);
      if (steering !== null) clearInterval(steering);
      document.removeEventListener("keydown", onKey);
      document.removeEventListener("keyup", onKey);
    }

    return {
      update(state) {
        if (watching) return;
        const started = !playing && state.p === "playing";
        playing = state.p === "playing";
        // A first input, standing still: its acknowledgement gives the page the
        // round trip (GameSocket.rtt) that the clock and the prediction lead by.
        if (started && inputs === 0) {
          inputs += 1;
          lastSent = performance.now();
          game.input({ move: [0, 0], n: inputs });
          root.dataset.inputs = String(inputs);
        }
        if (playing) steer();
      },
      end() {
        // A replay may be sought back from its end: it keeps drawing.
        if (game.replay) return;
        stop(); // the last frame stays drawn
        status.textContent = "The match is over.";
      },
      destroy: stop,
    };
  },
};
