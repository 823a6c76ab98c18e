// The generic board, for a game with no module in boards/: it shows the
// player's view as formatted JSON and sends an action typed as JSON. Every
// new game is playable in the browser with it before it has a board of its own.

export const fallbackBoard = {
  create(element, game) {
    const view = document.createElement("pre");
    view.className = "generic-view";
    view.dataset.testid = "generic-view";
    const form = document.createElement("form");
    form.className = "generic-form row";
    const input = document.createElement("input");
    input.dataset.testid = "generic-action";
    input.placeholder = '{"move": "N"}';
    input.spellcheck = false;
    const send = document.createElement("button");
    send.type = "submit";
    send.className = "primary";
    send.textContent = "Send action";
    form.append(input, send);
    const hint = document.createElement("p");
    hint.className = "muted small";
    hint.textContent = "This game has no board of its own yet: its view is shown as JSON, "
      + "and an action is typed as a JSON object (docs/games.md lists each game's actions).";
    element.append(hint, view, form);

    const onSubmit = (event) => {
      event.preventDefault();
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
      game.act(action);
    };
    form.addEventListener("submit", onSubmit);

    return {
      update(state) {
        view.textContent = JSON.stringify(
          state.s, (key, value) => (typeof value === "bigint" ? value.toString() : value), 2,
        );
      },
      event(name, data) {
        game.say(`${name}: ${JSON.stringify(data)}`);
      },
      error(code, message) {
        game.say(`${code}: ${message}`);
      },
      destroy() {
        form.removeEventListener("submit", onSubmit);
      },
    };
  },
};
