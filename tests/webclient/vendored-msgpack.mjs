// `node --import ./tests/webclient/vendored-msgpack.mjs`: Node finds codec.js's
// "@msgpack/msgpack" in vinom/webclient/vendor/msgpack/, as the page does
// through its import map (a package user's project has it from npm instead).
import { register } from "node:module";

register("./vendored-msgpack-hooks.mjs", import.meta.url);
