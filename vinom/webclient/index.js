// The package's root, `import { LobbyConnection, GameSocket } from "@vinom/client"`:
// every module's exports in one place (their names do not overlap). Each module
// can be imported by its own file name as well, as the page does.
export * from "./lobby.js";
export * from "./game.js";
export * from "./transport.js";
export * from "./netcode.js";
export * from "./delta.js";
export * from "./schema.js";
export * from "./codec.js";
