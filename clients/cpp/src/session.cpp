// The client's packet-layer session (docs/protocol.md section 8, without its timers).
#include "vinom/session.hpp"

namespace vinom {

ClientSession::ClientSession(const PublicToken& token, std::uint64_t first_sequence)
    : token_(token), next_sequence_(first_sequence) {}

Error ClientSession::receive(View packet, Kind& kind, Bytes& out) {
    kind = Kind::none;
    std::uint8_t type = 0;
    std::uint64_t sequence = 0;
    Error e = read_header(packet, type, sequence);
    if (e != Error::ok) return e;
    const Key& s2c = token_.server_to_client_key;
    bool handshake = state_ == State::requesting || state_ == State::responding;
    switch (type) {
        case CHALLENGE:
        case DENIED: {
            if (!handshake) return Error::unexpected;
            // Section 6: a stateless reply must be newer than any accepted before.
            if (stateless_seen_ && sequence <= stateless_newest_) return Error::replayed;
            Bytes plain;
            std::uint8_t opened = 0;
            e = type == CHALLENGE ? open_challenge(s2c, packet, sequence, plain)
                                  : open_packet(s2c, packet, opened, sequence, plain);
            if (e != Error::ok) return e;
            stateless_seen_ = true;
            stateless_newest_ = sequence;
            if (type == DENIED) {
                state_ = State::failed;
                kind = Kind::denied;
                return Error::ok;
            }
            Bytes reply;
            e = seal_response(token_.client_to_server_key, next_sequence_, View(plain), reply);
            if (e != Error::ok) return e;
            ++next_sequence_;
            response_ = reply;
            out = std::move(reply);
            state_ = State::responding;
            kind = Kind::challenge;
            return Error::ok;
        }
        case WELCOME: {
            if (state_ != State::responding) return Error::unexpected;
            Welcome w;
            e = open_welcome(s2c, packet, w);
            if (e != Error::ok) return e;
            welcome_ = w;
            window_.start(w.sequence);
            state_ = State::connected;
            kind = Kind::welcome;
            return Error::ok;
        }
        case PAYLOAD:
        case KEEPALIVE:
        case DISCONNECT: {
            if (state_ != State::connected) return Error::unexpected;
            // Checked before opening, recorded only after (section 6).
            if (!window_.check(sequence)) return Error::replayed;
            Bytes plain;
            std::uint8_t opened = 0;
            e = open_packet(s2c, packet, opened, sequence, plain);
            if (e != Error::ok) return e;
            window_.accept(sequence);
            if (type == PAYLOAD) {
                kind = Kind::payload;
                out = std::move(plain);
            } else if (type == KEEPALIVE) {
                kind = Kind::keepalive;
            } else {
                kind = Kind::disconnect;
                state_ = State::closed;
            }
            return Error::ok;
        }
        default:
            return Error::bad_type;
    }
}

Error ClientSession::seal(std::uint8_t type, View body, Bytes& out) {
    if (type != PAYLOAD && type != KEEPALIVE && type != DISCONNECT) return Error::bad_type;
    // A disconnect goes out several times (section 8): allowed once closed too.
    bool open_state = state_ == State::connected || (type == DISCONNECT && state_ == State::closed);
    if (!open_state) return Error::unexpected;
    if (type == PAYLOAD && body.size > MAX_BODY) return Error::bad_size;
    Bytes packet;
    Error e = seal_packet(type, token_.client_to_server_key, next_sequence_,
                          type == PAYLOAD ? body : View(), packet);
    if (e != Error::ok) return e;
    ++next_sequence_;
    if (type == DISCONNECT) state_ = State::closed;
    out = std::move(packet);
    return Error::ok;
}

}  // namespace vinom
