// The resolve hook registered by vendored-msgpack.mjs.
const VENDORED = new URL("../../vinom/webclient/vendor/msgpack/index.mjs", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier === "@msgpack/msgpack") return { url: VENDORED, shortCircuit: true };
  return next(specifier, context);
}
