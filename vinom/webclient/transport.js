// The game session's connection: WebTransport when the browser has it and the
// game's server offers it, else the WebSocket at /game (docs/web.md, "The game
// session over WebTransport").
//
// `GameConnection` looks like the WebSocket GameSocket uses (readyState,
// binaryType, onopen, onmessage, onclose, send, close) whichever it rides on:
//
// - It first asks the game's web server where its WebTransport listener is
//   (`GET /webtransport` on the game URL's host: the UDP port and, with the
//   development certificate, its SHA-256 for `serverCertificateHashes`), then
//   opens `https://HOST:PORT/game` and one bidirectional stream. Messages on
//   the stream are a 4-byte big-endian length and that many bytes; datagrams
//   carry one message each (the server's states, this page's inputs).
// - If that is not open within FALLBACK_MS (no WebTransport in this browser, no
//   listener, UDP blocked, a certificate the browser refuses), it opens the
//   WebSocket instead; nothing was sent on the WebTransport session, so the
//   connect token is still unused. The page's next sessions with that game
//   server then use the WebSocket at once, for RETRY_AFTER_MS.
//
// `kind` says which one carries the session ("webtransport" or "websocket"),
// and `onFallback(why)` why WebTransport was not used (nothing is logged: the
// page passes console.info; a game's own page may say it where it likes).
// `options.WebSocket` makes the WebSocket (by default the runtime's own).
// The server's close code and reason reach `onclose` as a WebSocket's would
// (the WebTransport session's close capsule carries the same codes).

// How long the WebTransport attempt may take before the WebSocket is opened instead.
export const FALLBACK_MS = 1000;
// After an attempt failed, the page's next sessions with that game server go
// straight to the WebSocket for this long: a network that drops UDP would make
// every session wait FALLBACK_MS, and each abandoned attempt costs the browser
// a QUIC handshake it reports in the console when it times out.
export const RETRY_AFTER_MS = 5 * 60 * 1000;
// Game URL -> when its last WebTransport attempt failed (performance.now()).
const failedAt = new Map();

// Forget the failed attempts (a test, or a page that knows the network changed).
export function forgetFailures() {
  failedAt.clear();
}
// The largest message sent as one datagram (a larger input goes on the stream).
export const MAX_DATAGRAM = 1100;

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

function fromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

// The https:// URL of a path on the web server a ws(s):// game URL names.
export function webUrl(gameUrl, path) {
  const url = new URL(gameUrl);
  url.protocol = url.protocol === "ws:" ? "http:" : "https:";
  url.pathname = path;
  url.search = "";
  return url.toString();
}

// Where the WebTransport session of a game URL is, or null when none is offered.
export async function webTransportOffer(gameUrl, { signal } = {}) {
  if (typeof WebTransport !== "function") return null;
  const response = await fetch(webUrl(gameUrl, "/webtransport"), { signal, cache: "no-store" });
  if (!response.ok) return null;
  const offer = await response.json();
  if (typeof offer?.port !== "number") return null;
  const host = new URL(gameUrl).hostname;
  return {
    url: `https://${host.includes(":") ? `[${host}]` : host}:${offer.port}/game`,
    hashes: (offer.certificate_hashes ?? []).map((value) => ({ algorithm: "sha-256", value: fromBase64(value) })),
  };
}

function framed(message) {
  const out = new Uint8Array(4 + message.length);
  new DataView(out.buffer).setUint32(0, message.length);
  out.set(message, 4);
  return out;
}

export class GameConnection {
  // `options.webTransport: false` skips the attempt (a test, or a page that wants the WebSocket).
  constructor(gameUrl, {
    webTransport = true, fallbackMs = FALLBACK_MS, onKind = () => {}, onFallback = () => {},
    WebSocket = globalThis.WebSocket,
  } = {}) {
    this.url = gameUrl;
    this.WebSocket = WebSocket;
    this.onFallback = onFallback;
    this.readyState = CONNECTING;
    this.binaryType = "arraybuffer";
    this.kind = null;
    this.onopen = null;
    this.onmessage = null;
    this.onclose = null;
    this.onKind = onKind;
    this.closing = false;
    this.socket = null; // the WebSocket, when it carries the session
    this.transport = null; // the WebTransport, when it does
    this.writer = null;
    this.datagrams = null;
    const failed = failedAt.get(gameUrl);
    const recent = failed !== undefined && performance.now() - failed < RETRY_AFTER_MS;
    if (webTransport && typeof WebTransport === "function" && !recent) {
      this.tryWebTransport(fallbackMs);
    } else {
      this.openWebSocket();
    }
  }

  async tryWebTransport(fallbackMs) {
    const abort = new AbortController();
    let transport = null;
    // Set once the session is on one connection or the other: the attempt that
    // loses gives way (a late WebTransport is closed; a late failure is ignored).
    let decided = false;
    const giveUp = (why) => {
      if (decided) return;
      decided = true;
      clearTimeout(late);
      abort.abort();
      try {
        transport?.close();
      } catch {
        // already closed
      }
      if (why !== "none offered") failedAt.set(this.url, performance.now());
      if (this.closing) return;
      this.onFallback(why);
      this.openWebSocket();
    };
    const late = setTimeout(() => giveUp(`not open within ${fallbackMs} ms`), fallbackMs);
    try {
      const offer = await webTransportOffer(this.url, { signal: abort.signal });
      if (offer === null) throw new Error("none offered");
      if (decided) return;
      const options = offer.hashes.length > 0 ? { serverCertificateHashes: offer.hashes } : {};
      transport = new WebTransport(offer.url, options);
      transport.closed.catch(() => {}); // a failed attempt is the fallback's business
      await transport.ready;
      const stream = await transport.createBidirectionalStream();
      if (decided) {
        transport.close();
        return;
      }
      decided = true;
      clearTimeout(late);
      this.useWebTransport(transport, stream);
    } catch (error) {
      giveUp(error?.message ?? String(error));
    }
  }

  useWebTransport(transport, stream) {
    this.transport = transport;
    this.writer = stream.writable.getWriter();
    this.datagrams = transport.datagrams.writable.getWriter();
    this.setKind("webtransport");
    this.readyState = OPEN;
    if (this.closing) {
      this.close();
      return;
    }
    this.onopen?.({});
    this.readStream(stream.readable.getReader());
    this.readDatagrams(transport.datagrams.readable.getReader());
    transport.closed.then(
      (info) => this.ended(info?.closeCode ?? 1000, info?.reason ?? ""),
      () => this.ended(1006, ""),
    );
  }

  async readStream(reader) {
    let buffer = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) {
          // The server ended its side behind its last message: ending ours tells it
          // that all was read, and its close (with the code) follows at once.
          this.writer?.close().catch(() => {});
          return;
        }
        const joined = new Uint8Array(buffer.length + value.length);
        joined.set(buffer);
        joined.set(value, buffer.length);
        buffer = joined;
        while (buffer.length >= 4) {
          const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(0);
          if (buffer.length < 4 + length) break;
          this.deliver(buffer.slice(4, 4 + length));
          buffer = buffer.subarray(4 + length);
        }
      }
    } catch {
      // the session closed: `closed` says how
    }
  }

  async readDatagrams(reader) {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        this.deliver(value);
      }
    } catch {
      // the session closed
    }
  }

  deliver(bytes) {
    if (this.readyState !== OPEN) return;
    const data = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
    this.onmessage?.({ data });
  }

  ended(code, reason) {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.onclose?.({ code, reason });
  }

  openWebSocket() {
    const socket = new this.WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.setKind("websocket");
    socket.onopen = (event) => {
      this.readyState = OPEN;
      this.onopen?.(event);
    };
    socket.onmessage = (event) => this.onmessage?.(event);
    socket.onclose = (event) => this.ended(event.code, event.reason);
    if (this.closing) socket.close(1000);
  }

  setKind(kind) {
    this.kind = kind;
    this.onKind(kind);
  }

  // One message, reliable and in order.
  send(data) {
    if (this.readyState !== OPEN) return;
    if (this.socket !== null) {
      this.socket.send(data);
    } else {
      this.writer.write(framed(data)).catch(() => {});
    }
  }

  // One message that may be lost (a real-time input): a datagram when it fits.
  sendUnreliable(data) {
    if (this.readyState !== OPEN) return;
    if (this.datagrams !== null && data.length <= MAX_DATAGRAM) {
      this.datagrams.write(data).catch(() => {});
    } else {
      this.send(data);
    }
  }

  close(code = 1000) {
    this.closing = true;
    if (this.socket !== null) {
      this.socket.close(code);
    } else if (this.transport !== null) {
      try {
        this.transport.close({ closeCode: code, reason: "" });
      } catch {
        // already closed
      }
    }
  }
}
