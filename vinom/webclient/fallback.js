// The generic board, for a game with no module in boards/ (or whose module did
// not load: `game.boardFailed`): it shows the player's view as formatted JSON
// and sends an action typed as JSON (a spectator's or a replay's viewer's,
// `game.spectator`, gets no box). Every new game is playable in the browser
// with it before it has a board of its own.
//
// Players appear by name, never by id: every string (value or key) of the
// view that is a player's id is shown as that player's name (with the seat,
// "Ann #2", when two players share a name), and a name typed in an action is
// sent as the player's id.

// id -> the name shown, and back.
function nameMaps(players) {
  const counts = new Map();
  for (const p of players) counts.set(p.name, (counts.get(p.name) ?? 0) + 1);
  const shown = new Map();
  for (const p of players) {
    shown.set(p.id, counts.get(p.name) > 1 ? `${p.name} #${p.seat + 1}` : p.name);
  }
  const ids = new Map([...shown].map(([id, name]) => [name, id]));
  return { shown, ids };
}

// `value` with every string found in `table` (keys included) replaced by its entry.
function renamed(value, table) {
  if (typeof value === "string") return table.get(value) ?? value;
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map((item) => renamed(item, table));
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value)
      .map(([key, item]) => [table.get(key) ?? key, renamed(item, table)]));
  }
  return value;
}

export const fallbackBoard = {
  create(element, game) {
    const view = document.createElement("pre");
    view.className = "generic-view";
    view.dataset.testid = "generic-view";
    const form = document.createElement("form");
    form.className = "generic-form row";
    const input = document.createElement("input");
    input.dataset.testid = "generic-action";
    input.placeholder = '{"verb": value}';
    input.spellcheck = false;
    const send = document.createElement("button");
    send.type = "submit";
    send.className = "primary";
    send.textContent = "Send action";
    form.append(input, send);
    const hint = document.createElement("p");
    hint.className = "muted small";
    hint.dataset.testid = "generic-hint";
    // Why the view is JSON: the game has no board, or its board did not load.
    const why = game.boardFailed
      ? "This game's board did not load (the server's log and the browser's console say why)"
      : "This game has no board of its own yet";
    if (game.spectator) {
      // A spectator or a replay's viewer plays nothing: no box to act in.
      hint.textContent = `${why}: the match is shown as JSON, players by name.`;
      element.append(hint, view);
    } else {
      hint.textContent = `${why}: its view is shown as JSON, `
        + "and an action is typed as a JSON object, as the game's own documentation gives it. "
        + "Players are shown by name; type a name where an action names a player.";
      element.append(hint, view, form);
    }

    const onSubmit = (event) => {
      event.preventDefault();
      if (send.disabled) return; // Enter in a disabled box: the match is over
      let action;
      try {
        action = JSON.parse(input.value);
      } catch {
        game.say("That is not JSON.");
        return;
      }
      if (action === null || typeof action !== "object" || Array.isArray(action)) {
        game.say("An action is a JSON object.");
        return;
      }
      game.act(renamed(action, nameMaps(game.players ?? []).ids));
    };
    form.addEventListener("submit", onSubmit);

    return {
      update(state) {
        view.textContent = JSON.stringify(renamed(state.s, nameMaps(game.players ?? []).shown), null, 2);
      },
      event(name, data) {
        game.say(`${name}: ${JSON.stringify(renamed(data, nameMaps(game.players ?? []).shown))}`);
      },
      error(code, message) {
        let text = `${code}: ${message}`;
        for (const [id, name] of nameMaps(game.players ?? []).shown) text = text.split(id).join(name);
        game.say(text);
      },
      // The match is over: no action can be played, so the box says so and
      // takes none (a Send that did nothing, or an error, would tell a lie).
      end() {
        input.disabled = true;
        send.disabled = true;
        input.value = "";
        input.placeholder = "The match is over.";
      },
      destroy() {
        form.removeEventListener("submit", onSubmit);
      },
    };
  },
};
