// The lobby's part of the C ABI (include/vinom.h) over vinom::Lobby. Nothing
// throws across the boundary: every entry point catches allocation failures.
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "c_abi.hpp"
#include "vinom.h"
#include "vinom/lobby.hpp"

struct vinom_lobby : vinom_abi::Handle {
    vinom::Lobby lobby;
    std::string player_id, secret, token, error_code;

    vinom_lobby(const vinom::Lobby::Options& options, double now) : lobby(options, now) {}
};

static_assert(static_cast<int>(vinom::Lobby::State::failed) == VINOM_LOBBY_STATE_FAILED);
static_assert(static_cast<int>(vinom::LobbyEvent::Kind::failed) == VINOM_LOBBY_FAILED);

namespace {

vinom_status requested(std::int64_t got, int64_t* id) {
    if (id) *id = got;
    return got > 0 ? VINOM_OK : VINOM_UNEXPECTED;
}

using vinom_abi::guarded;

}  // namespace

extern "C" {

vinom_status vinom_lobby_new(const char* host, uint16_t port, const char* trust,
                             const char* server_name, double now, double timeout,
                             vinom_lobby** out) {
    if (!host || !out) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    return guarded([&] {
        vinom::Lobby::Options options;
        options.host = host;
        options.port = port;
        options.trust = trust ? trust : "";
        options.server_name = server_name ? server_name : "";
        if (timeout > 0) options.timeout = timeout;
        *out = new vinom_lobby(options, now);
        return VINOM_OK;
    });
}

void vinom_lobby_free(vinom_lobby* lobby) { delete lobby; }

vinom_status vinom_lobby_set_resolver(vinom_lobby* lobby, vinom_resolve_fn resolve,
                                      void* user_data) {
    if (!lobby || !resolve) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        // Called on the resolver thread: the text the callback writes, split at spaces.
        auto call = [resolve, user_data](const std::string& host) {
            std::vector<char> text(4096, '\0');
            resolve(user_data, host.c_str(), text.data(), text.size());
            text.back() = '\0';
            std::vector<std::string> out;
            std::string word;
            for (const char* c = text.data(); *c; ++c) {
                if (*c == ' ' || *c == '\n' || *c == '\t') {
                    if (!word.empty()) out.push_back(std::move(word));
                    word.clear();
                } else {
                    word += *c;
                }
            }
            if (!word.empty()) out.push_back(std::move(word));
            return out;
        };
        return lobby->lobby.set_resolver(call) ? VINOM_OK : VINOM_UNEXPECTED;
    });
}

vinom_status vinom_lobby_set_idle_timeout(vinom_lobby* lobby, double seconds) {
    if (!lobby) return VINOM_INVALID_ARGUMENT;
    lobby->lobby.set_idle_timeout(seconds);
    return VINOM_OK;
}

vinom_lobby_phase vinom_lobby_state(const vinom_lobby* lobby) {
    return lobby ? static_cast<vinom_lobby_phase>(lobby->lobby.state())
                 : VINOM_LOBBY_STATE_FAILED;
}

vinom_status vinom_lobby_update(vinom_lobby* lobby, double now) {
    if (!lobby) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        lobby->lobby.update(now);
        return VINOM_OK;
    });
}

vinom_status vinom_lobby_poll(vinom_lobby* lobby, vinom_lobby_event* event, int64_t* id,
                              char* out, size_t cap, size_t* len) {
    if (!lobby || !event || !len) return VINOM_INVALID_ARGUMENT;
    *event = VINOM_LOBBY_NONE;
    *len = 0;
    if (id) *id = 0;
    const vinom::LobbyEvent* next = lobby->lobby.peek_event();
    if (!next) return VINOM_OK;
    *len = next->frame.size();
    if (next->frame.size() > cap) return VINOM_BUFFER_TOO_SMALL;
    if (!next->frame.empty() && !out) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        vinom::LobbyEvent e;
        lobby->lobby.next_event(e);
        if (!e.frame.empty()) std::memcpy(out, e.frame.data(), e.frame.size());
        *event = static_cast<vinom_lobby_event>(e.kind);
        if (id) *id = e.id;
        if (e.kind == vinom::LobbyEvent::Kind::welcome) {
            lobby->player_id = e.player_id;
            lobby->secret = e.secret;
        } else if (e.kind == vinom::LobbyEvent::Kind::match_found) {
            lobby->token = e.token;
        } else if (e.kind == vinom::LobbyEvent::Kind::error) {
            lobby->error_code = e.code;
        }
        return VINOM_OK;
    });
}

vinom_status vinom_lobby_hello(vinom_lobby* lobby, const char* name, const char* auth,
                               int64_t* id) {
    if (!lobby || !name) return VINOM_INVALID_ARGUMENT;
    return guarded([&] { return requested(lobby->lobby.hello(name, auth ? auth : ""), id); });
}

vinom_status vinom_lobby_queue(vinom_lobby* lobby, const char* game, const char* queue,
                               int64_t* id) {
    if (!lobby || !game) return VINOM_INVALID_ARGUMENT;
    return guarded(
        [&] { return requested(lobby->lobby.queue(game, queue ? queue : "normal"), id); });
}

vinom_status vinom_lobby_cancel(vinom_lobby* lobby, int64_t* id) {
    if (!lobby) return VINOM_INVALID_ARGUMENT;
    return guarded([&] { return requested(lobby->lobby.cancel(), id); });
}

vinom_status vinom_lobby_create_room(vinom_lobby* lobby, const char* game, int is_private,
                                     int64_t* id) {
    if (!lobby || !game) return VINOM_INVALID_ARGUMENT;
    return guarded([&] { return requested(lobby->lobby.create_room(game, is_private != 0), id); });
}

vinom_status vinom_lobby_join_room(vinom_lobby* lobby, const char* code, int64_t* id) {
    if (!lobby || !code) return VINOM_INVALID_ARGUMENT;
    return guarded([&] { return requested(lobby->lobby.join_room(code), id); });
}

vinom_status vinom_lobby_add_bot(vinom_lobby* lobby, int64_t* id) {
    if (!lobby) return VINOM_INVALID_ARGUMENT;
    return guarded([&] { return requested(lobby->lobby.add_bot(), id); });
}

vinom_status vinom_lobby_reconnect(vinom_lobby* lobby, const char* player_id, const char* secret,
                                   const char* auth, int64_t* id) {
    if (!lobby || !player_id || !secret) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        return requested(lobby->lobby.reconnect(player_id, secret, auth ? auth : ""), id);
    });
}

vinom_status vinom_lobby_close(vinom_lobby* lobby) {
    if (!lobby) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        lobby->lobby.close();
        return VINOM_OK;
    });
}

const char* vinom_lobby_player_id(const vinom_lobby* lobby) {
    return lobby ? lobby->player_id.c_str() : "";
}

const char* vinom_lobby_secret(const vinom_lobby* lobby) {
    return lobby ? lobby->secret.c_str() : "";
}

const char* vinom_lobby_token(const vinom_lobby* lobby) {
    return lobby ? lobby->token.c_str() : "";
}

const char* vinom_lobby_error_code(const vinom_lobby* lobby) {
    return lobby ? lobby->error_code.c_str() : "";
}

const char* vinom_lobby_failure(const vinom_lobby* lobby) {
    return lobby ? lobby->lobby.failure().c_str() : "";
}

}  // extern "C"
