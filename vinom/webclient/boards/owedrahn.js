// The Owe Drahn board of the web client: every player's lives as hearts, the
// shared running total against the limit of 15, the last die as a die face,
// whose turn it is, and the game's two actions.
//
// The view (vinom/games/owedrahn.py, docs/games.md "owedrahn"): {players:
// [{id, lives, left}], turn, total, limit, last_roll: {player, value} | null,
// finished}. The actions, on my turn only: {"roll": true}, and, with at least
// two lives, {"give_up_life": true, "next": player id}: lose a life, the total
// goes back to 0 and the chosen player (anyone still in, me included) rolls.

import { html, svg } from "./dom.js";

const ZERO_FACE = 3;
const PIPS = {
  1: [[50, 50]],
  2: [[28, 28], [72, 72]],
  3: [[26, 26], [50, 50], [74, 74]],
  4: [[28, 28], [72, 28], [28, 72], [72, 72]],
  5: [[27, 27], [73, 27], [50, 50], [27, 73], [73, 73]],
  6: [[28, 24], [72, 24], [28, 50], [72, 50], [28, 76], [72, 76]],
};
const COLOURS = ["#ff5d73", "#4d9dff", "#3ddc97", "#c084fc"];
const HEART = "M12 21.3l-1.5-1.3C5.4 15.4 2 12.3 2 8.5 2 5.4 4.4 3 7.5 3c1.7 0 3.4.8 4.5 2.1C13.1 3.8 14.8 3 16.5 3 19.6 3 22 5.4 22 8.5c0 3.8-3.4 6.9-8.5 11.5L12 21.3z";

function heart(full) {
  const icon = svg("svg", { viewBox: "0 0 24 24", class: full ? "vb-full" : "vb-lost" });
  icon.appendChild(svg("path", { d: HEART }));
  return icon;
}

// Green while safe, through amber, to red near the limit.
function fillColour(step, limit) {
  const share = step / limit;
  if (share > 0.8) return "#ff5d5d";
  if (share > 0.55) return "#ffb347";
  return "#7ddc8f";
}

export default {
  // Linked by the shell (loader.js) before create(): the page's policy allows
  // style sheets from the site, never a <style> element.
  stylesheet: "owedrahn.css",
  create(element, game) {
    const root = html("div", { class: "vb-owedrahn" });
    const rules = html("p", { class: "vb-rules" },
      "Roll to add to the total. A 3 counts as 0. Take it over 15 and you lose a life.");
    const players = html("div", { class: "vb-players", "aria-label": "players" });

    const table = html("div", { class: "vb-table" });
    const dice = html("div", { class: "vb-dice" });
    const die = svg("svg", { class: "vb-die vb-empty", viewBox: "0 0 100 100", role: "img", "aria-label": "no roll yet" });
    const caption = html("div", { class: "vb-caption" });
    dice.append(die, caption);
    const count = html("div", { class: "vb-count" });
    const totalLine = html("div");
    const total = html("span", { class: "vb-total", "aria-label": "total" }, "0");
    const limit = html("span", { class: "vb-limit" }, " / 15");
    totalLine.append(total, limit);
    const gauge = html("div", { class: "vb-gauge", "aria-hidden": "true" });
    const risk = html("div", { class: "vb-risk" });
    count.append(totalLine, gauge, risk);
    table.append(dice, count);

    const status = html("div", { class: "vb-status", role: "status" });
    const actions = html("div", { class: "vb-actions" });
    const roll = html("button", { type: "button", class: "vb-roll", disabled: "" }, "Roll the die");
    const giveUp = html("button", { type: "button", class: "vb-give-up", disabled: "" }, "Give up a life…");
    actions.append(roll, giveUp);
    const choose = html("div", { class: "vb-choose", hidden: "" });
    const chooseText = html("p", {}, "Lose a life, reset the total to 0, and choose who rolls next:");
    const choices = html("div", { class: "vb-choices" });
    choose.append(chooseText, choices);

    root.append(rules, players, table, status, actions, choose);
    element.appendChild(root);

    let view = null;
    let phase = "waiting";
    let mostLives = 0; // hearts drawn per player: the most lives seen
    let shownRoll = ""; // the roll the die shows, to animate a new one
    let lastLives = new Map();
    let destroyed = false;

    const seatOf = (id, index) => {
      const known = (game.players || []).find((p) => p.id === id);
      return known && Number.isInteger(known.seat) ? known.seat : index;
    };
    const nameOf = (id) => {
      const known = (game.players || []).find((p) => p.id === id);
      return (known && known.name) || id;
    };
    const isOut = (p) => p.lives <= 0 || p.left;
    const me = () => (view ? view.players.find((p) => p.id === game.me) : undefined);
    const myTurn = () => Boolean(view && phase === "playing" && !view.finished
      && view.turn === game.me && me() && !isOut(me()));

    function drawDie(value) {
      die.replaceChildren(svg("rect", { x: 4, y: 4, width: 92, height: 92, rx: 18 }));
      die.classList.toggle("vb-empty", !value);
      die.classList.toggle("vb-zero", value === ZERO_FACE);
      die.setAttribute("aria-label", value ? `die showing ${value}` : "no roll yet");
      die.dataset.value = value || "";
      for (const [cx, cy] of PIPS[value] || []) die.appendChild(svg("circle", { cx, cy, r: 9 }));
    }

    function drawPlayers() {
      players.replaceChildren();
      const best = Math.max(0, ...view.players.filter((p) => !isOut(p)).map((p) => p.lives));
      view.players.forEach((player, index) => {
        const card = html("div", { class: "vb-player", "data-player": player.id, "data-lives": player.lives });
        card.classList.toggle("vb-turn", !view.finished && view.turn === player.id);
        card.classList.toggle("vb-out", isOut(player));
        if ((lastLives.get(player.id) ?? player.lives) > player.lives) card.classList.add("vb-hurt");
        const who = html("div", { class: "vb-who" });
        const dot = html("span", { class: "vb-dot" });
        dot.style.background = COLOURS[seatOf(player.id, index) % COLOURS.length];
        let tag = "";
        if (player.left) tag = "left";
        else if (player.lives <= 0) tag = "out";
        else if (view.finished) tag = player.lives === best ? "★ winner" : "";
        else if (view.turn === player.id) tag = "to roll";
        who.append(dot, html("span", { class: "vb-name" }, nameOf(player.id) + (player.id === game.me ? " (you)" : "")));
        if (tag) who.append(html("span", { class: "vb-tag" }, tag));
        const hearts = html("div", { class: "vb-hearts", role: "img", "aria-label": `${player.lives} ${player.lives === 1 ? "life" : "lives"}` });
        if (mostLives <= 12) {
          for (let k = 0; k < mostLives; k++) hearts.appendChild(heart(k < player.lives));
        } else {
          hearts.append(heart(player.lives > 0), ` × ${player.lives}`);
        }
        card.append(who, hearts);
        players.appendChild(card);
      });
      lastLives = new Map(view.players.map((p) => [p.id, p.lives]));
    }

    function drawCount() {
      const cap = view.limit || 15;
      total.textContent = String(view.total);
      limit.textContent = ` / ${cap}`;
      gauge.replaceChildren();
      gauge.style.gridTemplateColumns = `repeat(${cap}, 1fr)`;
      for (let step = 1; step <= cap; step++) {
        const cell = html("span");
        if (step <= view.total) {
          cell.className = "vb-on";
          cell.style.setProperty("--fill", fillColour(step, cap));
        }
        gauge.appendChild(cell);
      }
      // Faces that would take the total over the limit (a 3 never does).
      const busting = [1, 2, 4, 5, 6].filter((face) => view.total + face > cap).length;
      risk.textContent = view.finished ? "" : busting
        ? `${busting} of 6 faces go over: bust risk ${Math.round((busting / 6) * 100)}%`
        : "No face can go over: roll safely";
      risk.classList.toggle("vb-hot", busting >= 3);
    }

    function drawRoll() {
      const last = view.last_roll;
      const lives = view.players.reduce((sum, p) => sum + p.lives, 0);
      const key = last ? `${last.player}:${last.value}:${view.total}:${lives}` : "";
      drawDie(last ? last.value : 0);
      if (last) {
        const who = last.player === game.me ? "You" : nameOf(last.player);
        caption.textContent = last.value === ZERO_FACE
          ? `${who} rolled a 3: counts as 0`
          : `${who} rolled a ${last.value}`;
      } else {
        caption.textContent = "No roll yet";
      }
      if (key && shownRoll && key !== shownRoll) {
        die.classList.remove("vb-rolling");
        void die.getBBox(); // restart the animation
        die.classList.add("vb-rolling");
      }
      shownRoll = key;
    }

    function drawStatus() {
      let text;
      if (phase === "waiting") text = "Waiting for players…";
      else if (phase === "countdown") text = "Get ready…";
      else if (phase === "aborted") text = "Game aborted";
      else if (view.finished || phase === "finished") {
        const alive = view.players.filter((p) => !isOut(p));
        const best = Math.max(0, ...alive.map((p) => p.lives));
        const winners = alive.filter((p) => p.lives === best);
        text = winners.some((p) => p.id === game.me)
          ? "You win!"
          : winners.length ? `${winners.map((p) => nameOf(p.id)).join(" & ")} wins` : "Game over";
      } else if (me() && isOut(me())) text = "You are out: watch the others";
      else if (myTurn()) text = "Your turn: roll, or give up a life";
      else text = `${nameOf(view.turn)} is rolling…`;
      status.textContent = text;
      status.classList.toggle("vb-mine", myTurn());
      const mine = myTurn();
      roll.disabled = !mine;
      giveUp.disabled = !mine || me().lives < 2;
      giveUp.title = mine && me().lives < 2 ? "You cannot give up your last life" : "";
      if (giveUp.disabled) choose.hidden = true;
      actions.hidden = Boolean(view.finished) || phase === "finished" || phase === "aborted";
    }

    function openChooser() {
      if (!myTurn() || me().lives < 2) return;
      choices.replaceChildren();
      const order = view.players;
      const start = order.findIndex((p) => p.id === game.me);
      // In turn order from the player after me, me last.
      for (let k = 1; k <= order.length; k++) {
        const player = order[(start + k) % order.length];
        if (isOut(player)) continue;
        const button = html("button", { type: "button", "data-next": player.id },
          player.id === game.me ? "Me" : nameOf(player.id));
        choices.appendChild(button);
      }
      choices.appendChild(html("button", { type: "button", class: "vb-cancel" }, "Cancel"));
      choose.hidden = false;
    }

    function onRoll() {
      if (!myTurn()) return;
      choose.hidden = true;
      game.act({ roll: true });
    }

    function onGiveUp() {
      if (choose.hidden) openChooser();
      else choose.hidden = true;
    }

    function onChoice(event) {
      const button = event.target.closest("button");
      if (!button) return;
      choose.hidden = true;
      if (button.dataset.next && myTurn() && me().lives >= 2) {
        game.act({ give_up_life: true, next: button.dataset.next });
      }
    }

    roll.addEventListener("click", onRoll);
    giveUp.addEventListener("click", onGiveUp);
    choices.addEventListener("click", onChoice);

    return {
      update(state) {
        if (destroyed || !state || !state.s) return;
        phase = state.p || phase;
        view = state.s;
        mostLives = Math.max(mostLives, ...view.players.map((p) => p.lives));
        drawRoll();
        drawPlayers();
        drawCount();
        drawStatus();
      },
      event(name, data) {
        if (!data || !game.say) return;
        const who = data.player === game.me ? "You" : nameOf(data.player);
        if (name === "life_lost") game.say(`${who} went over ${view ? view.limit : 15} and lost a life`);
        else if (name === "life_given_up") {
          game.say(`${who} gave up a life; ${data.next === game.me ? "you roll" : `${nameOf(data.next)} rolls`} next`);
        }
      },
      error(code, message) {
        if (game.say) game.say(message || code);
      },
      destroy() {
        destroyed = true;
        roll.removeEventListener("click", onRoll);
        giveUp.removeEventListener("click", onGiveUp);
        choices.removeEventListener("click", onChoice);
        root.remove();
      },
    };
  },
};
