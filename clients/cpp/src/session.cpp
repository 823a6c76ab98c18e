// The client's packet-layer session (docs/protocol.md section 8, without its timers).
#include "vinom/session.hpp"

namespace vinom {

ClientSession::ClientSession(const PublicToken& token, std::uint64_t first_sequence)
    : token_(token), next_sequence_(first_sequence) {}

Error ClientSession::receive(View packet, Kind& kind, Bytes& out) {
    kind = Kind::none;
    if (packet.size >= 1 && (packet.data[0] == SHORT_PAYLOAD || packet.data[0] == SLIM_PAYLOAD))
        return receive_short(packet, kind, out);
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

// A short or slim payload (5.9, 5.10): its full sequence the one nearest the
// newest accepted, then as a payload: the window checked before opening,
// recorded only after; a slim one's body rewritten in the full layout.
Error ClientSession::receive_short(View packet, Kind& kind, Bytes& out) {
    std::uint16_t low = 0;
    Error e = read_short_header(packet, low);
    if (e != Error::ok) return e;
    if (state_ != State::connected) return Error::unexpected;
    std::uint64_t sequence = 0;
    if (!full_sequence(low, window_.newest(), sequence) || !window_.check(sequence))
        return Error::replayed;
    Bytes plain;
    e = open_short_payload(token_.server_to_client_key, packet, sequence, plain);
    if (e != Error::ok) return e;
    window_.accept(sequence);
    std::uint8_t type = packet.data[0];
    if (type == SLIM_PAYLOAD) {
        Bytes body;
        e = body_of_slim(View(plain), body);
        if (e != Error::ok) return e;
        plain = std::move(body);
    }
    if (sends_ == PAYLOAD) sends_ = type;
    kind = Kind::payload;
    out = std::move(plain);
    return Error::ok;
}

Error ClientSession::seal(std::uint8_t type, View body, Bytes& out) {
    if (type != PAYLOAD && type != KEEPALIVE && type != DISCONNECT) return Error::bad_type;
    // A disconnect goes out several times (section 8): allowed once closed too.
    bool open_state = state_ == State::connected || (type == DISCONNECT && state_ == State::closed);
    if (!open_state) return Error::unexpected;
    if (type != DISCONNECT && body.size > MAX_BODY) return Error::bad_size;
    Bytes packet;
    const Key& key = token_.client_to_server_key;
    Error e;
    if (type == PAYLOAD && sends_ == SLIM_PAYLOAD) {
        Bytes slim;
        e = slim_body(body, slim);
        if (e == Error::ok) e = seal_short_payload(key, next_sequence_, View(slim), packet, SLIM_PAYLOAD);
    } else if (type == PAYLOAD && sends_ == SHORT_PAYLOAD) {
        e = seal_short_payload(key, next_sequence_, body, packet);
    } else {
        e = seal_packet(type, key, next_sequence_, type == DISCONNECT ? View() : body, packet);
    }
    if (e != Error::ok) return e;
    ++next_sequence_;
    if (type == DISCONNECT) state_ = State::closed;
    out = std::move(packet);
    return Error::ok;
}

}  // namespace vinom
