// The C ABI (include/vinom.h) over the C++ core. Nothing here throws across
// the boundary: every entry point catches what the core might (allocation).
#include "vinom.h"

#include <cstring>
#include <new>

#include "vinom/session.hpp"

struct vinom_token {
    vinom::PublicToken token;
};

struct vinom_session {
    vinom::ClientSession session;
};

// The ABI's numbers are the core's enums'.
static_assert(static_cast<int>(vinom::Error::no_memory) == VINOM_NO_MEMORY);
static_assert(static_cast<int>(vinom::ClientSession::Kind::disconnect) == VINOM_EVENT_DISCONNECT);
static_assert(static_cast<int>(vinom::ClientSession::State::failed) == VINOM_STATE_FAILED);
static_assert(vinom::MAX_DATAGRAM == VINOM_MAX_DATAGRAM);

namespace {

vinom_status status(vinom::Error e) { return static_cast<vinom_status>(e); }

vinom_status copy_out(const vinom::Bytes& bytes, uint8_t* out, size_t cap, size_t* len) {
    if (!len) return VINOM_INVALID_ARGUMENT;
    *len = bytes.size();
    if (bytes.size() > cap) return VINOM_BUFFER_TOO_SMALL;
    if (!bytes.empty()) {
        if (!out) return VINOM_INVALID_ARGUMENT;
        std::memcpy(out, bytes.data(), bytes.size());
    }
    return VINOM_OK;
}

}  // namespace

extern "C" {

uint32_t vinom_abi_version(void) { return VINOM_ABI_VERSION; }

uint32_t vinom_protocol_version(void) { return vinom::PROTOCOL_VERSION; }

const char* vinom_version_string(void) { return "vinom-native 1.3"; }

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
        *out = new vinom_token{std::move(t)};
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
        *out = new vinom_session{vinom::ClientSession(token->token, first_sequence)};
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
    // Checked before sealing, which spends a sequence number.
    size_t need = vinom::HEADER_SIZE + vinom::TAG_SIZE +
                  (packet_type == VINOM_PACKET_PAYLOAD ? body_len : 0);
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

}  // extern "C"
