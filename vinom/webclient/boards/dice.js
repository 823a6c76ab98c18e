// The dice board (vinom/games/dice.py; docs/games.md, "dice"): the scores
// against the target, the roll as dice with pips, and on my turn Roll
// ({"roll": true}), set aside the dice I pick ({"select": [indices]}) and
// Bank ({"bank": true}). The points of a selection are worked out here the
// way the game scores them, so the player sees what a choice is worth.
// Keys: R rolls, B banks, Enter sets aside the selection, 1-6 pick dice.

const PIPS = {
  1: [4],
  2: [0, 8],
  3: [0, 4, 8],
  4: [0, 2, 6, 8],
  5: [0, 2, 4, 6, 8],
  6: [0, 2, 3, 5, 6, 8],
};

const RUNS = [[[1, 2, 3, 4, 5, 6], 1500], [[2, 3, 4, 5, 6], 750], [[1, 2, 3, 4, 5], 500]];

function kindPoints(face, count) {
  return (face === 1 ? 1000 : 100 * face) * 2 ** (count - 3);
}

// The most points using every die of `counts` (dice per face 1-6), or null.
function best(counts, memo = new Map()) {
  const key = counts.join();
  if (memo.has(key)) return memo.get(key);
  let top = counts.every((n) => n === 0) ? 0 : null;
  const consider = (points, rest) => {
    const tail = best(rest, memo);
    if (tail !== null && (top === null || points + tail > top)) top = points + tail;
  };
  for (const [run, points] of RUNS) {
    if (run.every((face) => counts[face - 1] > 0)) {
      const rest = [...counts];
      for (const face of run) rest[face - 1] -= 1;
      consider(points, rest);
    }
  }
  for (let face = 1; face <= 6; face++) {
    for (let count = 3; count <= counts[face - 1]; count++) {
      const rest = [...counts];
      rest[face - 1] -= count;
      consider(kindPoints(face, count), rest);
    }
  }
  for (const [face, points] of [[1, 100], [5, 50]]) {
    if (counts[face - 1] > 0) {
      const rest = [...counts];
      rest[face - 1] -= 1;
      consider(points, rest);
    }
  }
  memo.set(key, top);
  return top;
}

export function scoreOf(dice) {
  if (dice.length === 0) return null;
  const counts = [0, 0, 0, 0, 0, 0];
  for (const die of dice) counts[die - 1] += 1;
  return best(counts);
}

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function dieFace(face, tag = "div") {
  const die = make(tag, "die");
  die.dataset.face = String(face);
  die.setAttribute("aria-label", `a ${face}`);
  for (let slot = 0; slot < 9; slot++) {
    const pip = make("span", PIPS[face].includes(slot) ? "pip on" : "pip");
    die.append(pip);
  }
  return die;
}

export default {
  create(element, game) {
    const root = make("div", "dice-board");
    const scores = make("div", "dice-scores");
    scores.dataset.testid = "dice-scores";
    const turnLine = make("div", "dice-turn");
    turnLine.dataset.testid = "dice-turn";
    const tray = make("div", "dice-tray");
    tray.dataset.testid = "dice-tray";
    const keptLabel = make("div", "muted small", "Set aside this turn");
    const kept = make("div", "dice-kept");
    kept.dataset.testid = "dice-kept";
    const controls = make("div", "row dice-controls");
    const roll = make("button", "primary", "Roll");
    roll.type = "button";
    roll.dataset.testid = "dice-roll";
    const select = make("button", "", "Set aside");
    select.type = "button";
    select.dataset.testid = "dice-select";
    const bank = make("button", "accent", "Bank");
    bank.type = "button";
    bank.dataset.testid = "dice-bank";
    controls.append(roll, select, bank);
    root.append(scores, turnLine, tray, keptLabel, kept, controls);
    element.append(root);

    let view = null;
    let lastRoll = "";
    // The status line holds an instruction for my turn: emptied when the turn passes.
    let instructing = false;
    const chosen = new Set();
    const name = (id) => (id === game.me ? "You" : game.players.find((p) => p.id === id)?.name ?? "?");
    const mine = () => view !== null && !view.finished && view.turn === game.me;

    function selectionPoints() {
      return scoreOf([...chosen].map((i) => view.dice[i]));
    }

    function renderControls() {
      const my = mine();
      roll.disabled = !(my && (view.phase === "roll" || view.phase === "decide"));
      roll.textContent = view.phase === "decide" ? `Roll ${view.dice_left}` : "Roll";
      const points = my && view.phase === "select" ? selectionPoints() : null;
      select.disabled = points === null;
      select.textContent = points === null ? "Set aside" : `Set aside +${points}`;
      bank.disabled = !(my && view.phase === "decide");
      bank.textContent = my && view.phase === "decide" ? `Bank ${view.turn_points}` : "Bank";
    }

    function toggle(index) {
      if (!mine() || view.phase !== "select" || index >= view.dice.length) return;
      if (chosen.has(index)) chosen.delete(index);
      else chosen.add(index);
      tray.children[index]?.setAttribute("aria-pressed", String(chosen.has(index)));
      renderControls();
    }

    roll.addEventListener("click", () => game.act({ roll: true }));
    bank.addEventListener("click", () => game.act({ bank: true }));
    select.addEventListener("click", () => {
      if (chosen.size > 0) game.act({ select: [...chosen].sort((a, b) => a - b) });
    });

    const onKey = (event) => {
      if (event.target instanceof HTMLInputElement || view === null) return;
      const key = event.key.toLowerCase();
      if (key === "r" && !roll.disabled) roll.click();
      else if (key === "b" && !bank.disabled) bank.click();
      else if (key === "enter" && !select.disabled) select.click();
      else if (/^[1-6]$/.test(key)) toggle(Number(key) - 1);
    };
    document.addEventListener("keydown", onKey);

    return {
      update(state) {
        view = state.s;
        // A new roll (or a new turn) clears what was picked from the old one.
        const rollKey = `${view.turn}|${view.phase}|${view.dice.join()}|${view.set_aside.length}`;
        const fresh = rollKey !== lastRoll;
        if (fresh) chosen.clear();

        scores.replaceChildren();
        for (const p of view.players) {
          const row = make("div", "dice-player");
          row.dataset.playerId = p.id;
          row.dataset.score = String(p.score);
          if (p.id === view.turn && !view.finished) row.classList.add("active");
          if (p.left) row.classList.add("gone");
          const bar = make("div", "bar");
          const fill = make("div", "fill");
          fill.style.width = `${Math.min(100, (100 * p.score) / view.target)}%`;
          bar.append(fill);
          row.append(make("span", "dice-name", name(p.id)), make("span", "dice-points", p.score.toLocaleString("en")), bar);
          scores.append(row);
        }

        turnLine.dataset.phase = view.phase;
        turnLine.dataset.mine = String(mine());
        turnLine.textContent = view.finished
          ? `First to ${view.target.toLocaleString("en")}: game over.`
          : `${mine() ? "Your turn" : `${name(view.turn)}'s turn`} · ${view.turn_points} points this turn · first to ${view.target.toLocaleString("en")}`;

        if (fresh) {
          tray.replaceChildren();
          const showing = view.dice.length > 0 ? view.dice : view.farkled;
          tray.dataset.farkle = String(view.dice.length === 0 && view.farkled.length > 0);
          showing.forEach((face, index) => {
            const die = dieFace(face, "button");
            die.type = "button";
            die.dataset.die = String(index);
            die.setAttribute("aria-pressed", "false");
            die.classList.add("rolled");
            die.addEventListener("click", () => toggle(index));
            tray.append(die);
          });
          kept.replaceChildren(...view.set_aside.map((face) => dieFace(face)));
        }
        for (const die of tray.children) die.disabled = !(mine() && view.phase === "select");
        lastRoll = rollKey;
        renderControls();
        if (mine()) {
          game.say(view.phase === "select"
            ? "Pick the scoring dice to set aside (1s, 5s, three of a kind, runs)."
            : view.phase === "decide" ? "Roll the rest for more, or bank your points." : "Roll the dice!");
          instructing = true;
        } else if (instructing) {
          game.say("");
          instructing = false;
        }
      },
      event(eventName, data) {
        instructing = false;
        if (eventName === "farkle") {
          game.say(`Farkle! ${name(data.player)} ${data.player === game.me ? "lose" : "loses"} ${data.lost} points.`);
        } else if (eventName === "hot_dice") {
          game.say(`Hot dice for ${name(data.player)}: all six roll again!`);
        } else if (eventName === "banked") {
          game.say(`${name(data.player)} banked ${data.points}: ${data.score.toLocaleString("en")} in all.`);
        }
      },
      error(code, message) {
        game.say(message || code);
      },
      destroy() {
        document.removeEventListener("keydown", onKey);
      },
    };
  },
};
