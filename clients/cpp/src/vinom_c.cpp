// The C ABI (include/vinom.h) over the C++ core. Nothing here throws across
// the boundary: every entry point catches what the core might (allocation).
#include "vinom.h"

#include "c_abi.hpp"

#include <new>

#include "vinom/client.hpp"
#include "vinom/messages.hpp"
#include "vinom/session.hpp"
#include "socket.hpp"

struct vinom_token : vinom_abi::Handle {
    vinom::PublicToken token;
};

struct vinom_session : vinom_abi::Handle {
    vinom::ClientSession session;
};

struct vinom_client : vinom_abi::Handle {
    vinom::Client client;
};

// The ABI's numbers are the core's enums'.
static_assert(static_cast<int>(vinom::Error::no_memory) == VINOM_NO_MEMORY);
static_assert(static_cast<int>(vinom::Error::stale) == VINOM_STALE);
static_assert(static_cast<int>(vinom::Error::queue_full) == VINOM_QUEUE_FULL);
static_assert(static_cast<int>(vinom::Error::ended) == VINOM_ENDED);
static_assert(static_cast<int>(vinom::ClientSession::Kind::disconnect) == VINOM_EVENT_DISCONNECT);
static_assert(static_cast<int>(vinom::ClientSession::State::failed) == VINOM_STATE_FAILED);
static_assert(vinom::MAX_DATAGRAM == VINOM_MAX_DATAGRAM);
static_assert(vinom::Endpoint::MAX_UNFRAGMENTED == VINOM_MAX_MESSAGE);
static_assert(vinom::Client::MAX_MESSAGE == VINOM_MAX_RELIABLE_MESSAGE);
static_assert(static_cast<int>(vinom::Client::Event::Kind::failed) == VINOM_CLIENT_FAILED);
static_assert(static_cast<int>(vinom::Client::Event::Kind::ended) == VINOM_CLIENT_ENDED);

namespace {

using vinom_abi::copy_out;
using vinom_abi::status;

}  // namespace

extern "C" {

uint32_t vinom_abi_version(void) { return VINOM_ABI_VERSION; }

uint32_t vinom_protocol_version(void) { return vinom::PROTOCOL_VERSION; }

uint32_t vinom_game_protocol(void) { return vinom::GAME_PROTOCOL; }

const char* vinom_version_string(void) { return "vinom-native " VINOM_VERSION_STRING; }

const char* vinom_status_name(vinom_status s) {
    return vinom::error_name(static_cast<vinom::Error>(s));
}

vinom_status vinom_token_parse(const char* json, size_t len, vinom_token** out) {
    if (!json || !out) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    try {
        vinom::PublicToken t;
        vinom::Error e = vinom::parse_public_token(std::string_view(json, len), t);
        if (e != vinom::Error::ok) return status(e);
        *out = new vinom_token{{}, std::move(t)};
        return VINOM_OK;
    } catch (...) {
        return VINOM_NO_MEMORY;  // only allocation can throw here
    }
}

void vinom_token_free(vinom_token* token) { delete token; }

size_t vinom_token_host_count(const vinom_token* token) {
    return token ? token->token.hosts.size() : 0;
}

vinom_status vinom_token_host(const vinom_token* token, size_t index, const char** host,
                              uint16_t* port) {
    if (!token || !host || !port) return VINOM_INVALID_ARGUMENT;
    if (index >= token->token.hosts.size()) return VINOM_BAD_FIELD;
    *host = token->token.hosts[index].host.c_str();
    *port = token->token.hosts[index].port;
    return VINOM_OK;
}

uint32_t vinom_token_timeout_ms(const vinom_token* token) {
    return token ? token->token.timeout_ms : 0;
}

uint64_t vinom_token_expires_at(const vinom_token* token) {
    return token ? token->token.expires_at : 0;
}

vinom_status vinom_session_new(const vinom_token* token, uint64_t first_sequence,
                               vinom_session** out) {
    if (!token || !out) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    try {
        *out = new vinom_session{{}, vinom::ClientSession(token->token, first_sequence)};
        return VINOM_OK;
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

void vinom_session_free(vinom_session* session) { delete session; }

vinom_state vinom_session_state(const vinom_session* session) {
    if (!session) return VINOM_STATE_FAILED;
    return static_cast<vinom_state>(session->session.state());
}

vinom_status vinom_session_request(const vinom_session* session, uint8_t* out, size_t cap,
                                   size_t* len) {
    if (!session) return VINOM_INVALID_ARGUMENT;
    try {
        return copy_out(session->session.request(), out, cap, len);
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_session_receive(vinom_session* session, const uint8_t* packet,
                                   size_t packet_len, vinom_event* event, uint8_t* out,
                                   size_t cap, size_t* len) {
    if (!session || !event || !len || (!packet && packet_len)) return VINOM_INVALID_ARGUMENT;
    *event = VINOM_EVENT_NONE;
    *len = 0;
    try {
        vinom::ClientSession::Kind kind;
        vinom::Bytes bytes;
        vinom::Error e = session->session.receive(vinom::View(packet, packet_len), kind, bytes);
        if (e != vinom::Error::ok) return status(e);
        *event = static_cast<vinom_event>(kind);
        return copy_out(bytes, out, cap, len);
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_session_seal(vinom_session* session, int packet_type, const uint8_t* body,
                                size_t body_len, uint8_t* out, size_t cap, size_t* len) {
    if (!session || !len || (!body && body_len) || packet_type < 0 || packet_type > 255)
        return VINOM_INVALID_ARGUMENT;
    // Checked before sealing, which spends a sequence number: a payload's body
    // or a keepalive's plaintext, behind the long header or the short one (5.9),
    // a slim payload's in the slim layout (5.10).
    bool payload = packet_type == VINOM_PACKET_PAYLOAD;
    bool short_payload = payload && session->session.sends_short();
    size_t plain = packet_type == VINOM_PACKET_DISCONNECT ? 0 : body_len;
    if (payload && session->session.sends_slim()) {
        vinom::Bytes slim;
        if (vinom::slim_body(vinom::View(body, body_len), slim) == vinom::Error::ok)
            plain = slim.size();
    }
    size_t need =
        (short_payload ? vinom::SHORT_HEADER_SIZE : vinom::HEADER_SIZE) + vinom::TAG_SIZE + plain;
    if (cap < need) {
        *len = need;
        return VINOM_BUFFER_TOO_SMALL;
    }
    try {
        vinom::Bytes bytes;
        vinom::Error e = session->session.seal(static_cast<uint8_t>(packet_type),
                                               vinom::View(body, body_len), bytes);
        if (e != vinom::Error::ok) return status(e);
        return copy_out(bytes, out, cap, len);
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

uint64_t vinom_session_id(const vinom_session* session) {
    return session ? session->session.session_id() : 0;
}

double vinom_session_server_time(const vinom_session* session) {
    return session ? session->session.server_time() : 0.0;
}

vinom_status vinom_client_new(const vinom_token* token, uint64_t first_sequence, double now,
                              double attempt_timeout, vinom_client** out) {
    if (!token || !out) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    try {
        *out = new vinom_client{{}, vinom::Client(token->token, first_sequence, now, attempt_timeout)};
        return VINOM_OK;
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

void vinom_client_free(vinom_client* client) { delete client; }

vinom_state vinom_client_state(const vinom_client* client) {
    if (!client) return VINOM_STATE_FAILED;
    return static_cast<vinom_state>(client->client.state());
}

vinom_status vinom_client_receive(vinom_client* client, const uint8_t* datagram, size_t len,
                                  double now) {
    if (!client || (!datagram && len)) return VINOM_INVALID_ARGUMENT;
    try {
        return status(client->client.receive(vinom::View(datagram, len), now));
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_client_update(vinom_client* client, double now) {
    if (!client) return VINOM_INVALID_ARGUMENT;
    try {
        client->client.update(now);
        return VINOM_OK;
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_client_datagram(vinom_client* client, uint8_t* out, size_t cap, size_t* len) {
    if (!client || !len) return VINOM_INVALID_ARGUMENT;
    *len = 0;
    if (cap < VINOM_MAX_DATAGRAM) {
        *len = VINOM_MAX_DATAGRAM;  // checked first: a datagram taken is never lost
        return VINOM_BUFFER_TOO_SMALL;
    }
    vinom::Bytes bytes;
    if (!client->client.next_datagram(bytes)) return VINOM_OK;
    return copy_out(bytes, out, cap, len);
}

vinom_status vinom_client_poll(vinom_client* client, vinom_client_event* event, int* channel,
                               uint8_t* out, size_t cap, size_t* len) {
    if (!client || !event || !channel || !len) return VINOM_INVALID_ARGUMENT;
    *event = VINOM_CLIENT_NONE;
    *channel = 0;
    *len = 0;
    const vinom::Client::Event* next = client->client.peek_event();
    if (!next) return VINOM_OK;
    if (next->data.size() > cap) {
        *len = next->data.size();  // stays first in line for a larger buffer
        return VINOM_BUFFER_TOO_SMALL;
    }
    if (!next->data.empty() && !out) return VINOM_INVALID_ARGUMENT;
    try {
        vinom::Client::Event e;
        client->client.next_event(e);
        *event = static_cast<vinom_client_event>(e.kind);
        *channel = e.channel;
        return copy_out(e.data, out, cap, len);
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_client_send(vinom_client* client, const uint8_t* message, size_t len) {
    if (!client || (!message && len)) return VINOM_INVALID_ARGUMENT;
    try {
        return status(client->client.send(vinom::View(message, len).bytes()));
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_client_send_unreliable(vinom_client* client, const uint8_t* message,
                                          size_t len) {
    if (!client || (!message && len)) return VINOM_INVALID_ARGUMENT;
    try {
        return status(client->client.send_unreliable(vinom::View(message, len).bytes()));
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_client_close(vinom_client* client) {
    if (!client) return VINOM_INVALID_ARGUMENT;
    try {
        client->client.close();
        return VINOM_OK;
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

size_t vinom_client_pending(const vinom_client* client) {
    return client ? client->client.pending() : 0;
}

uint64_t vinom_client_session_id(const vinom_client* client) {
    return client ? client->client.session_id() : 0;
}

double vinom_client_server_time(const vinom_client* client) {
    return client ? client->client.server_time() : 0.0;
}

const char* vinom_client_failure(const vinom_client* client) {
    return client ? client->client.failure().c_str() : "";
}

const char* vinom_client_ended(const vinom_client* client) {
    return client ? client->client.ended().c_str() : "";
}

vinom_status vinom_client_socket_error(vinom_client* client, int error) {
    if (!client) return VINOM_INVALID_ARGUMENT;
    if (!vinom::net::refused(error)) return VINOM_OK;
    return vinom_client_host_closed(client);
}

vinom_status vinom_client_host_closed(vinom_client* client) {
    if (!client) return VINOM_INVALID_ARGUMENT;
    try {
        client->client.host_closed();  // the event's reason and the log line allocate
        return VINOM_OK;
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_message_to_json(const uint8_t* message, size_t len, char* out, size_t cap,
                                   size_t* out_len) {
    if ((!message && len) || !out_len) return VINOM_INVALID_ARGUMENT;
    *out_len = 0;
    try {
        vinom::Value value;
        // Not msgpack: a snap, whose numbers only vinom_snapshots_receive can
        // resolve (against the snap of its baseline).
        if (len && message[0] == vinom::PACKED_SNAP) return VINOM_BAD_TYPE;
        vinom::Error e = vinom::decode_message(vinom::View(message, len), value);
        if (e != vinom::Error::ok) return status(e);
        return copy_out(vinom_abi::json_text(value), out, cap, out_len);
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

vinom_status vinom_message_from_json(const char* json, size_t len, uint8_t* out, size_t cap,
                                     size_t* out_len) {
    if ((!json && len) || !out_len) return VINOM_INVALID_ARGUMENT;
    *out_len = 0;
    try {
        vinom::Value value = vinom::Value::parse(json, json + len, nullptr, false);
        if (value.is_discarded()) return VINOM_BAD_JSON;
        vinom::Bytes bytes;
        vinom::Error e = vinom::encode_message(value, bytes);
        if (e != vinom::Error::ok) return status(e);
        return copy_out(bytes, out, cap, out_len);
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

}  // extern "C"
