// vectors/protocol.json, the protocol's test vectors as data (docs/protocol.md is
// generated from it), for the web client's Node tests: one group's vectors by name.
import { readFileSync } from "node:fs";

export const FILE = JSON.parse(readFileSync(new URL("../../vectors/protocol.json", import.meta.url), "utf8"));

export function vectors(group) {
  return Object.fromEntries(FILE[group].vectors.map((v) => [v.name, v]));
}

export const bytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (x) => parseInt(x, 16));
export const hex = (data) => Buffer.from(data).toString("hex");
