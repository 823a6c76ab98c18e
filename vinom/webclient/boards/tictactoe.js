// The tictactoe board (vinom/games/tictactoe.py; docs/games.md): a 3x3 grid of
// buttons sending {"cell": i}, the round's score, and after each round the
// choice of a rematch ({"rematch": true}) or ending the match ({"rematch": false}).
// Keys 1 to 9 place a mark too (cells in reading order).

const SVG = "http://www.w3.org/2000/svg";

function markSvg(mark) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 100 100");
  svg.setAttribute("class", `mark mark-${mark}`);
  svg.setAttribute("aria-hidden", "true");
  if (mark === "X") {
    for (const [x1, y1, x2, y2] of [[22, 22, 78, 78], [78, 22, 22, 78]]) {
      const line = document.createElementNS(SVG, "line");
      Object.entries({ x1, y1, x2, y2 }).forEach(([k, v]) => line.setAttribute(k, v));
      svg.append(line);
    }
  } else {
    const circle = document.createElementNS(SVG, "circle");
    circle.setAttribute("cx", 50);
    circle.setAttribute("cy", 50);
    circle.setAttribute("r", 29);
    svg.append(circle);
  }
  return svg;
}

const OVER = " No rematch: the match is over.";

function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export default {
  create(element, game) {
    const root = make("div", "ttt");
    const score = make("div", "ttt-score");
    score.dataset.testid = "ttt-score";
    const grid = make("div", "ttt-grid");
    grid.dataset.testid = "ttt-board";
    const cells = [];
    for (let i = 0; i < 9; i++) {
      const cell = make("button", "ttt-cell");
      cell.type = "button";
      cell.dataset.cell = String(i);
      cell.dataset.mark = "";
      cell.setAttribute("aria-label", `cell ${i + 1}`);
      cell.addEventListener("click", () => place(i));
      cells.push(cell);
      grid.append(cell);
    }
    const roundBox = make("div", "ttt-round");
    roundBox.dataset.testid = "ttt-round";
    roundBox.hidden = true;
    const roundText = make("div", "ttt-round-text");
    const rematch = make("button", "primary", "Rematch");
    rematch.type = "button";
    rematch.dataset.testid = "ttt-rematch";
    rematch.addEventListener("click", () => game.act({ rematch: true }));
    const finish = make("button", "ghost", "End the match");
    finish.type = "button";
    finish.dataset.testid = "ttt-finish";
    finish.addEventListener("click", () => game.act({ rematch: false }));
    const buttons = make("div", "row");
    buttons.append(rematch, finish);
    roundBox.append(roundText, buttons);
    root.append(score, grid, roundBox);
    element.append(root);

    let view = null;
    const name = (id) => (id === game.me ? "You" : game.players.find((p) => p.id === id)?.name ?? "?");

    function myTurn() {
      return view !== null && view.turn === game.me && !view.round_over && !view.finished;
    }

    function place(i) {
      if (myTurn() && view.board[i] === "") game.act({ cell: i });
    }

    const onKey = (event) => {
      if (event.target instanceof HTMLInputElement) return;
      const digit = Number(event.key);
      if (Number.isInteger(digit) && digit >= 1 && digit <= 9) place(digit - 1);
    };
    document.addEventListener("keydown", onKey);

    function renderScore() {
      score.replaceChildren();
      for (const p of view.players) {
        const chip = make("div", "ttt-player");
        chip.dataset.playerId = p.id;
        if (p.id === view.turn) chip.classList.add("active");
        if (p.mark) chip.append(markSvg(p.mark));
        chip.append(make("span", "ttt-name", name(p.id)), make("span", "ttt-wins", String(p.wins)));
        score.append(chip);
      }
      const meta = make("div", "ttt-meta muted small",
        `Round ${view.round}${view.draws ? ` · ${view.draws} drawn` : ""}`);
      score.append(meta);
    }

    return {
      update(state) {
        view = state.s;
        const mine = myTurn();
        grid.dataset.turn = view.finished || view.round_over ? "none" : mine ? "mine" : "theirs";
        view.board.forEach((mark, i) => {
          const cell = cells[i];
          if (cell.dataset.mark !== mark) {
            cell.dataset.mark = mark;
            cell.replaceChildren(...(mark ? [markSvg(mark)] : []));
          }
          cell.disabled = !mine || mark !== "";
          cell.classList.toggle("win", view.line.includes(i));
        });
        renderScore();
        const me = view.players.find((p) => p.id === game.me);
        const markText = me && me.mark ? ` (${me.mark})` : "";
        if (view.finished) {
          // Ended at a round's end (a rematch declined, by a bot at once): the
          // round's outcome stays on screen with why there is no next round;
          // only the buttons, which no longer do anything, go.
          buttons.hidden = true;
          if (!roundBox.hidden && !roundText.textContent.endsWith(OVER)) {
            roundText.textContent += OVER;
          }
        } else if (view.round_over) {
          roundBox.hidden = false;
          buttons.hidden = false;
          const winner = view.round_winner;
          roundText.textContent = winner === null
            ? `Round ${view.round} is a draw.`
            : winner === game.me ? `You won round ${view.round}!` : `${name(winner)} won round ${view.round}.`;
          const other = view.players.find((p) => p.id !== game.me);
          const asked = me !== undefined && me.rematch;
          rematch.disabled = asked;
          rematch.textContent = asked ? "Waiting for a rematch…" : other?.rematch ? "Accept the rematch" : "Rematch";
          game.say(other?.rematch && !asked ? `${name(other.id)} wants a rematch.` : "Play again, or end the match.");
        } else {
          roundBox.hidden = true;
          if (view.players.some((p) => p.mark === "")) game.say("Waiting for both players…");
          else game.say(mine ? `Your move${markText}.` : `${name(view.turn)} is thinking…`);
        }
      },
      event(eventName, data) {
        if (eventName === "new_round") game.say(`Round ${data.round}: fresh board.`);
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
