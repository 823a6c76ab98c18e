/* vinom.h: the C ABI of vinom's native client core.
 *
 * Plain C types and opaque handles, callable from C, C++, C# (P/Invoke) and
 * any engine's foreign-function layer. Ownership is explicit: every handle a
 * vinom_*_new or vinom_*_parse function returns is the caller's, freed with
 * its vinom_*_free (which takes NULL); strings a function returns are
 * borrowed from the handle and live as long as it. Output bytes go into a
 * caller's buffer of `cap` bytes; `*len` gets their length (or, with
 * VINOM_BUFFER_TOO_SMALL, the length needed). No function blocks, starts a
 * thread or keeps a global state; a handle is used from one thread at a time.
 *
 * The layouts are docs/protocol.md's: the packet layer, a client session with
 * its timers, and messages as JSON (docs/clients.md says what it covers). */
#ifndef VINOM_H
#define VINOM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define VINOM_API __declspec(dllexport)
#else
#  define VINOM_API __attribute__((visibility("default")))
#endif

/* The ABI's version: bumped on any incompatible change of this header. */
#define VINOM_ABI_VERSION 1

/* No datagram is larger: an output buffer of this size never gets
 * VINOM_BUFFER_TOO_SMALL (and a smaller one may lose a received body). */
#define VINOM_MAX_DATAGRAM 1200

typedef enum vinom_status {
    VINOM_OK = 0,
    VINOM_TRUNCATED = 1,        /* shorter than its layout */
    VINOM_BAD_SIZE = 2,         /* a size the layout does not allow */
    VINOM_BAD_TYPE = 3,         /* not the packet type expected */
    VINOM_BAD_FIELD = 4,        /* a field out of its range */
    VINOM_AUTH_FAILED = 5,      /* the AEAD refused the bytes */
    VINOM_REPLAYED = 6,         /* refused by the replay window */
    VINOM_BAD_JSON = 7,         /* not a connect token's JSON */
    VINOM_CRYPTO = 8,           /* OpenSSL failed */
    VINOM_UNEXPECTED = 9,       /* a valid packet that does not fit the state */
    VINOM_BUFFER_TOO_SMALL = 10,
    VINOM_INVALID_ARGUMENT = 11, /* a NULL handle or pointer */
    VINOM_NO_MEMORY = 12,
    VINOM_UNKNOWN_BASELINE = 13, /* a delta snapshot against a view not held */
    VINOM_CHECKSUM_MISMATCH = 14, /* the rebuilt view is not the host's */
    VINOM_STALE = 15,            /* a snapshot not newer than the newest applied */
    VINOM_QUEUE_FULL = 16        /* a reliable message past the 1 MiB that may wait for acks */
} vinom_status;

/* The packet types of docs/protocol.md section 5 a client seals. */
enum { VINOM_PACKET_PAYLOAD = 5, VINOM_PACKET_KEEPALIVE = 6, VINOM_PACKET_DISCONNECT = 7 };

/* What vinom_session_receive read. */
typedef enum vinom_event {
    VINOM_EVENT_NONE = 0,
    VINOM_EVENT_CHALLENGE = 1,  /* out: the response to send now (and resend) */
    VINOM_EVENT_WELCOME = 2,    /* connected: vinom_session_id, _server_time */
    VINOM_EVENT_DENIED = 3,     /* the host refused the seat: final for this token */
    VINOM_EVENT_PAYLOAD = 4,    /* out: the body (docs/protocol.md 13.3) */
    VINOM_EVENT_KEEPALIVE = 5,
    VINOM_EVENT_DISCONNECT = 6  /* the host closed the session */
} vinom_event;

typedef enum vinom_state {
    VINOM_STATE_REQUESTING = 0,
    VINOM_STATE_RESPONDING = 1,
    VINOM_STATE_CONNECTED = 2,
    VINOM_STATE_CLOSED = 3,
    VINOM_STATE_FAILED = 4
} vinom_state;

VINOM_API uint32_t vinom_abi_version(void);       /* VINOM_ABI_VERSION of the library */
VINOM_API uint32_t vinom_protocol_version(void);  /* the wire version it speaks (3) */
VINOM_API const char* vinom_version_string(void); /* "vinom-native <abi>.<protocol>" */
VINOM_API const char* vinom_status_name(vinom_status status);

/* A connect token: the JSON of match_found's "token" (docs/protocol.md 4.3). */
typedef struct vinom_token vinom_token;
VINOM_API vinom_status vinom_token_parse(const char* json, size_t len, vinom_token** out);
VINOM_API void vinom_token_free(vinom_token* token);
VINOM_API size_t vinom_token_host_count(const vinom_token* token);
VINOM_API vinom_status vinom_token_host(const vinom_token* token, size_t index,
                                        const char** host, uint16_t* port);
VINOM_API uint32_t vinom_token_timeout_ms(const vinom_token* token);
VINOM_API uint64_t vinom_token_expires_at(const vinom_token* token);

/* One session's packet layer on the client side: handshake, sealing, replay
 * window. No timers yet: the caller resends the request or response at 10 Hz
 * and sends keepalives (docs/protocol.md section 8). `first_sequence` starts
 * the client's counter: random below 2^48 in a real client.
 * vinom_session_seal: a payload's body, or a keepalive's plaintext (empty; the
 * one byte 01 offers short payloads, docs/protocol.md 5.9, 03 slim ones too,
 * 5.10), at most 1175 bytes; a disconnect's is ignored. A short or slim payload
 * received is a VINOM_EVENT_PAYLOAD as a long one (its body in the full layout
 * of 13.3), and from then on payloads are sealed as it was. */
typedef struct vinom_session vinom_session;
VINOM_API vinom_status vinom_session_new(const vinom_token* token, uint64_t first_sequence,
                                         vinom_session** out);
VINOM_API void vinom_session_free(vinom_session* session);
VINOM_API vinom_state vinom_session_state(const vinom_session* session);
VINOM_API vinom_status vinom_session_request(const vinom_session* session, uint8_t* out,
                                             size_t cap, size_t* len);
VINOM_API vinom_status vinom_session_receive(vinom_session* session, const uint8_t* packet,
                                             size_t packet_len, vinom_event* event,
                                             uint8_t* out, size_t cap, size_t* len);
VINOM_API vinom_status vinom_session_seal(vinom_session* session, int packet_type,
                                          const uint8_t* body, size_t body_len,
                                          uint8_t* out, size_t cap, size_t* len);
VINOM_API uint64_t vinom_session_id(const vinom_session* session);
VINOM_API double vinom_session_server_time(const vinom_session* session);

/* One session with section 8's timers and a minimal reliability endpoint
 * (docs/clients.md): what a game's frame loop calls. The game owns the socket
 * and the clock (`now`: seconds on any monotonic clock): each frame it hands
 * every datagram received to vinom_client_receive, calls vinom_client_update,
 * sends each datagram of vinom_client_datagram (until *len is 0) to the
 * token's host, and reads the events of vinom_client_poll (until
 * VINOM_CLIENT_NONE). `attempt_timeout`: seconds to wait for the welcome
 * (<= 0: the token's timeout + 1 s, at least 5 s). The token is copied. It
 * offers short and slim payloads after the welcome (docs/protocol.md 5.9,
 * 5.10); once the host sends one, its own payloads go so too. */
typedef struct vinom_client vinom_client;

typedef enum vinom_client_event {
    VINOM_CLIENT_NONE = 0,
    VINOM_CLIENT_WELCOME = 1,      /* connected: vinom_client_session_id */
    VINOM_CLIENT_MESSAGE = 2,      /* out: one message (msgpack, or a packed snap:
                                      vinom_snapshots_receive reads both), *channel 0 or 1 */
    VINOM_CLIENT_DISCONNECTED = 3, /* the host closed the session */
    VINOM_CLIENT_FAILED = 4        /* vinom_client_failure: "timeout" or "denied" */
} vinom_client_event;

VINOM_API vinom_status vinom_client_new(const vinom_token* token, uint64_t first_sequence,
                                        double now, double attempt_timeout,
                                        vinom_client** out);
VINOM_API void vinom_client_free(vinom_client* client);
VINOM_API vinom_state vinom_client_state(const vinom_client* client);
/* A forged, replayed or unexpected datagram gets its status and is dropped. */
VINOM_API vinom_status vinom_client_receive(vinom_client* client, const uint8_t* datagram,
                                            size_t len, double now);
VINOM_API vinom_status vinom_client_update(vinom_client* client, double now);
/* The next datagram to send; *len is 0 when none is due. */
VINOM_API vinom_status vinom_client_datagram(vinom_client* client, uint8_t* out, size_t cap,
                                             size_t* len);
/* The next event. A message larger than `cap` gets VINOM_BUFFER_TOO_SMALL
 * with *len the size needed and stays first in line. */
VINOM_API vinom_status vinom_client_poll(vinom_client* client, vinom_client_event* event,
                                         int* channel, uint8_t* out, size_t cap, size_t* len);
/* One msgpack message on the reliable channel, 1 to VINOM_MAX_RELIABLE_MESSAGE
 * bytes (what a game host takes; over VINOM_MAX_MESSAGE it goes in fragments);
 * only while connected (VINOM_UNEXPECTED otherwise). VINOM_QUEUE_FULL, nothing
 * queued, while 1 MiB of them waits for the host's acks. */
#define VINOM_MAX_MESSAGE 1162
#define VINOM_MAX_RELIABLE_MESSAGE 2048
VINOM_API vinom_status vinom_client_send(vinom_client* client, const uint8_t* message,
                                         size_t len);
/* One msgpack message on the unreliable channel (0: a real-time game's
 * `input`, vinom_inputs_message), 1 to VINOM_MAX_MESSAGE bytes, sent once by
 * the next vinom_client_update. */
VINOM_API vinom_status vinom_client_send_unreliable(vinom_client* client,
                                                    const uint8_t* message, size_t len);
/* Ends the session: the next datagrams are the redundant disconnects. */
VINOM_API vinom_status vinom_client_close(vinom_client* client);
VINOM_API size_t vinom_client_pending(const vinom_client* client); /* unacked reliable */
VINOM_API uint64_t vinom_client_session_id(const vinom_client* client);
VINOM_API double vinom_client_server_time(const vinom_client* client);
VINOM_API const char* vinom_client_failure(const vinom_client* client); /* "" before */

/* Real-time games (docs/protocol.md 14 and 16; docs/clients.md): the views of
 * a player's `snap`s rebuilt (delta decoding, the checksum when the host sends
 * it), and the player's inputs stamped and repeated until the host has them.
 * Each frame: every snap polled goes to vinom_snapshots_receive, its *tick to
 * vinom_inputs_observe with its *input_ack; once a tick of the game,
 * vinom_inputs_add then vinom_inputs_message_for(the snapshots) to
 * vinom_client_send_unreliable. */
typedef struct vinom_snapshots vinom_snapshots;
/* `rules`: the welcome's "q" as JSON (NULL or len 0: none); VINOM_BAD_FIELD
 * for rules it cannot read. */
VINOM_API vinom_status vinom_snapshots_new(const char* rules, size_t len, vinom_snapshots** out);
VINOM_API void vinom_snapshots_free(vinom_snapshots* snapshots);
/* The welcome's "vs" as JSON, the game's view schema, before any snapshot
 * (VINOM_UNEXPECTED after): schema snapshots (docs/protocol.md 16.8) are read
 * too, and asked for until one is applied. VINOM_BAD_JSON, VINOM_BAD_FIELD for
 * a declaration it cannot read: nothing changes, and nothing is asked. */
VINOM_API vinom_status vinom_snapshots_schema(vinom_snapshots* snapshots, const char* declaration,
                                              size_t len);
/* 1 while the inputs ask for schema snapshots ("vs": 1, "pk": 1: in packed
 * snaps), else 0. */
VINOM_API int vinom_snapshots_asking(const vinom_snapshots* snapshots);
/* A `snap` message as vinom_client_poll gave it: VINOM_OK and *tick when its
 * snapshot was applied; else it is dropped and counted: VINOM_STALE,
 * VINOM_UNKNOWN_BASELINE (the next ack brings one it can apply),
 * VINOM_CHECKSUM_MISMATCH, VINOM_BAD_FIELD (corrupt); bytes that are not a
 * snap get their decoding's status and *input_ack -1. *input_ack: the snap's
 * `ik` whatever its snapshot's fate (-1: none). */
VINOM_API vinom_status vinom_snapshots_receive(vinom_snapshots* snapshots, const uint8_t* snap,
                                               size_t len, uint64_t* tick, int64_t* input_ack);
/* The view rebuilt for `tick` (one of the last 64 applied) as JSON;
 * VINOM_UNEXPECTED for a tick not held. */
VINOM_API vinom_status vinom_snapshots_view(const vinom_snapshots* snapshots, uint64_t tick,
                                            char* out, size_t cap, size_t* len);
/* The newest tick applied (what an input acknowledges), -1 before any. */
VINOM_API int64_t vinom_snapshots_newest(const vinom_snapshots* snapshots);

typedef struct vinom_inputs vinom_inputs;
/* `tick_rate`: the welcome's (ticks a second, > 0). */
VINOM_API vinom_status vinom_inputs_new(double tick_rate, vinom_inputs** out);
VINOM_API void vinom_inputs_free(vinom_inputs* inputs);
/* A snapshot of `tick` applied at `now` (vinom_snapshots_receive's; pass
 * UINT64_MAX for none) and the snap's `input_ack` (-1: none): the host has the
 * inputs up to it, which are forgotten. */
VINOM_API void vinom_inputs_observe(vinom_inputs* inputs, uint64_t tick, int64_t input_ack,
                                    double now);
/* Queues one input (`json`: the map the game's action handler takes) for the
 * first tick the host runs after it arrives, over a round trip of `rtt` s;
 * *tick gets it. At most 8 wait; the oldest goes first (counted). */
VINOM_API vinom_status vinom_inputs_add(vinom_inputs* inputs, const char* json, size_t len,
                                        double now, double rtt, uint64_t* tick);
/* The `input` message (msgpack) repeating every input not acknowledged, with
 * `ack` the newest snapshot applied (-1: none). */
VINOM_API vinom_status vinom_inputs_message(const vinom_inputs* inputs, int64_t ack, uint8_t* out,
                                            size_t cap, size_t* len);
/* The same with `ack` the newest snapshot `snapshots` applied, and "vs": 1,
 * "pk": 1 (in packed snaps) while they ask for schema snapshots
 * (vinom_snapshots_asking). */
VINOM_API vinom_status vinom_inputs_message_for(const vinom_inputs* inputs,
                                                const vinom_snapshots* snapshots, uint8_t* out,
                                                size_t cap, size_t* len);
VINOM_API size_t vinom_inputs_pending(const vinom_inputs* inputs);
VINOM_API uint64_t vinom_inputs_overflowed(const vinom_inputs* inputs);

/* Drawing between snapshots (vinom/netcode.hpp; docs/client.md, "Clock,
 * interpolation and prediction"): the server's clock from the snapshots'
 * ticks, and the views drawn at server time - delay, moved between the two
 * around it. Each frame: vinom_clock_observe for every snapshot applied and
 * vinom_buffer_push of its view at tick / tick_rate; then
 * vinom_buffer_render(vinom_clock_tick(now, rtt) / tick_rate). */
typedef struct vinom_clock vinom_clock;
/* `tick_rate`: the welcome's (> 0). */
VINOM_API vinom_status vinom_clock_new(double tick_rate, vinom_clock** out);
VINOM_API void vinom_clock_free(vinom_clock* clock);
/* A snapshot of `tick` built at `server_ms` ms of the room's time (a state's
 * `ts`; NaN: none) arrived at `now` (s, any monotonic origin). */
VINOM_API void vinom_clock_observe(vinom_clock* clock, uint64_t tick, double server_ms,
                                   double now);
/* The server's tick at `now`, fractional, over a round trip of `rtt` s, and
 * the room's time in s (VINOM_UNEXPECTED before a snapshot, with `ts` for
 * the time). */
VINOM_API vinom_status vinom_clock_tick(const vinom_clock* clock, double now, double rtt,
                                        double* tick);
VINOM_API vinom_status vinom_clock_time(const vinom_clock* clock, double now, double rtt,
                                        double* time);

typedef struct vinom_buffer vinom_buffer;
/* `interpolation`: JSON {"fields": [path...], "keys": {path: key}, "wrap":
 * {path: period}} (paths as a game's quantisation writes them; NULL or len 0:
 * nothing moves); `delay`, `max_extrapolation` in s (NaN: two snapshot
 * intervals, one). VINOM_BAD_JSON for interpolation it cannot read. */
VINOM_API vinom_status vinom_buffer_new(double snapshot_rate, const char* interpolation,
                                        size_t len, double delay, double max_extrapolation,
                                        vinom_buffer** out);
VINOM_API void vinom_buffer_free(vinom_buffer* buffer);
/* A view (JSON) the server built at `server_time` s; one at a time held is
 * ignored, the oldest beyond 32 goes. */
VINOM_API vinom_status vinom_buffer_push(vinom_buffer* buffer, double server_time,
                                         const char* view, size_t len);
/* The view to draw now as JSON (null before any), `server_now` the clock's
 * time: at server_now - delay, never before the last render. Too small a
 * buffer: VINOM_BUFFER_TOO_SMALL, *len the size; call again (the same view). */
VINOM_API vinom_status vinom_buffer_render(vinom_buffer* buffer, double server_now, char* out,
                                           size_t cap, size_t* len);
/* Renders past the newest view (extrapolated), beyond the bound (held), and
 * before the oldest (early). */
VINOM_API void vinom_buffer_counts(const vinom_buffer* buffer, uint64_t* extrapolated,
                                   uint64_t* held, uint64_t* early);

/* Messages as JSON text, for callers without a msgpack library: msgpack to
 * JSON (bin as {"bytes": [...], "subtype": null}; strings not UTF-8 get
 * U+FFFD; a packed snap, first byte 0xc1, as its array [v, ts, r, i, ik, d])
 * and JSON to msgpack as the host writes it (docs/protocol.md 14).
 * The JSON is not NUL-terminated; *len is its length. */
VINOM_API vinom_status vinom_message_to_json(const uint8_t* message, size_t len, char* out,
                                             size_t cap, size_t* out_len);
VINOM_API vinom_status vinom_message_from_json(const char* json, size_t len, uint8_t* out,
                                               size_t cap, size_t* out_len);

/* The lobby over TLS (docs/lobby.md), in the same shape: the game calls
 * vinom_lobby_update each frame (it connects, verifies the lobby's certificate,
 * reads and writes what the socket allows; it never blocks) and reads the
 * events of vinom_lobby_poll until VINOM_LOBBY_NONE. `trust`: a PEM file of the
 * CA or of the lobby's own certificate (NULL or "": the system's CAs);
 * `server_name`: the name the certificate must carry (NULL: "localhost" for a
 * loopback address, else `host`); `timeout`: seconds to be connected and
 * verified (<= 0: 10). A request made before the connection is up waits for
 * it; each gives its frame's `id` in *id (may be NULL). A malformed or
 * oversized frame from the lobby is a VINOM_LOBBY_ERROR ("bad_frame",
 * "frame_too_large"), never more. */
typedef struct vinom_lobby vinom_lobby;

typedef enum vinom_lobby_event {
    VINOM_LOBBY_NONE = 0,
    VINOM_LOBBY_CONNECTED = 1,   /* the lobby's certificate was verified */
    VINOM_LOBBY_WELCOME = 2,     /* vinom_lobby_player_id, vinom_lobby_secret */
    VINOM_LOBBY_QUEUED = 3,
    VINOM_LOBBY_ROOM = 4,        /* a `room` reply or a `room_update` */
    VINOM_LOBBY_MATCH_FOUND = 5, /* vinom_lobby_token: for vinom_token_parse */
    VINOM_LOBBY_REPLY = 6,       /* any other frame (cancelled, pong, ...) */
    VINOM_LOBBY_ERROR = 7,       /* vinom_lobby_error_code; the request goes on */
    VINOM_LOBBY_CLOSED = 8,      /* the lobby closed (it does after match_found) */
    VINOM_LOBBY_FAILED = 9       /* vinom_lobby_failure: connect, tls or timeout */
} vinom_lobby_event;

typedef enum vinom_lobby_phase {
    VINOM_LOBBY_STATE_CONNECTING = 0,
    VINOM_LOBBY_STATE_HANDSHAKING = 1,
    VINOM_LOBBY_STATE_OPEN = 2,
    VINOM_LOBBY_STATE_CLOSED = 3,
    VINOM_LOBBY_STATE_FAILED = 4
} vinom_lobby_phase;

/* A bad trust file or address still gives a handle, failed at once (its
 * first event says why); only NULL arguments and memory get a status. */
VINOM_API vinom_status vinom_lobby_new(const char* host, uint16_t port, const char* trust,
                                       const char* server_name, double now, double timeout,
                                       vinom_lobby** out);
VINOM_API void vinom_lobby_free(vinom_lobby* lobby);
VINOM_API vinom_lobby_phase vinom_lobby_state(const vinom_lobby* lobby);
VINOM_API vinom_status vinom_lobby_update(vinom_lobby* lobby, double now);
/* The next event, its request's id (0: none) and the frame as JSON (empty for
 * CONNECTED, CLOSED and FAILED). A frame larger than `cap` gets
 * VINOM_BUFFER_TOO_SMALL with *len the size needed and stays first in line. */
VINOM_API vinom_status vinom_lobby_poll(vinom_lobby* lobby, vinom_lobby_event* event,
                                        int64_t* id, char* out, size_t cap, size_t* len);
/* Requests: VINOM_UNEXPECTED once closed or failed, or while 64 KiB wait to be
 * sent. `auth`: the credentials object as JSON text (NULL: none, a guest);
 * `queue`: NULL for "normal". match_found comes as an event of its own. */
VINOM_API vinom_status vinom_lobby_hello(vinom_lobby* lobby, const char* name, const char* auth,
                                         int64_t* id);
VINOM_API vinom_status vinom_lobby_queue(vinom_lobby* lobby, const char* game, const char* queue,
                                         int64_t* id);
VINOM_API vinom_status vinom_lobby_cancel(vinom_lobby* lobby, int64_t* id);
VINOM_API vinom_status vinom_lobby_create_room(vinom_lobby* lobby, const char* game,
                                               int is_private, int64_t* id);
VINOM_API vinom_status vinom_lobby_join_room(vinom_lobby* lobby, const char* code, int64_t* id);
VINOM_API vinom_status vinom_lobby_add_bot(vinom_lobby* lobby, int64_t* id);
VINOM_API vinom_status vinom_lobby_reconnect(vinom_lobby* lobby, const char* player_id,
                                             const char* secret, const char* auth, int64_t* id);
VINOM_API vinom_status vinom_lobby_close(vinom_lobby* lobby);
/* Borrowed strings, "" before: the last welcome's, the last match_found's
 * token JSON, the last error event's code, the failure's reason. */
VINOM_API const char* vinom_lobby_player_id(const vinom_lobby* lobby);
VINOM_API const char* vinom_lobby_secret(const vinom_lobby* lobby);
VINOM_API const char* vinom_lobby_token(const vinom_lobby* lobby);
VINOM_API const char* vinom_lobby_error_code(const vinom_lobby* lobby);
VINOM_API const char* vinom_lobby_failure(const vinom_lobby* lobby);

#ifdef __cplusplus
}
#endif

#endif /* VINOM_H */
