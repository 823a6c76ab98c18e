// The client's side of one UDP session's packet layer (docs/protocol.md 5, 6,
// 8): keys, its sequence counter, the handshake's state and the replay window.
// Sans-I/O and timer-free: the caller sends what it returns and feeds it what
// arrives from the host it is trying. Resends, timeouts and keepalive timing
// (section 8's timers) are the caller's for now, and so are the offers of short
// and slim payloads (5.9, 5.10: a keepalive of plaintext {READS_SHORT} or
// {READS_SHORT | READS_SLIM}). Either is read as a payload at any time; once
// one came, payloads are sealed as it was (the first one's type).
#pragma once

#include "vinom/codec.hpp"

namespace vinom {

class ClientSession {
public:
    enum class State { requesting, responding, connected, closed, failed };
    enum class Kind { none, challenge, welcome, denied, payload, keepalive, disconnect };

    // `first_sequence`: the client's counter start (random below 2^48 in a
    // real client; fixed in tests).
    ClientSession(const PublicToken& token, std::uint64_t first_sequence);

    State state() const { return state_; }
    std::uint64_t session_id() const { return welcome_.session_id; }
    double server_time() const { return welcome_.server_time; }
    const PublicToken& token() const { return token_; }

    // The request packet (1200 bytes), the same bytes every time.
    Bytes request() const { return encode_request(token_); }
    // The response to the newest challenge (empty before one).
    const Bytes& response() const { return response_; }

    // One datagram from the host. On success `kind` says what it was; `out`
    // holds the response to send (challenge) or the body (payload, long or
    // short).
    Error receive(View packet, Kind& kind, Bytes& out);

    // A payload (a body of at most 1175 bytes: short once the host sent one),
    // keepalive (`body` its plaintext, at most 1175 bytes: {READS_SHORT} is the
    // offer) or disconnect (`body` ignored), sealed with the next sequence; only
    // while connected.
    Error seal(std::uint8_t type, View body, Bytes& out);

    // Whether a short or slim payload came from the host: payloads are sealed
    // short (and, after a slim one, slim).
    bool sends_short() const { return sends_ != PAYLOAD; }
    bool sends_slim() const { return sends_ == SLIM_PAYLOAD; }

private:
    PublicToken token_;
    std::uint64_t next_sequence_;
    State state_ = State::requesting;
    bool stateless_seen_ = false;
    std::uint64_t stateless_newest_ = 0;
    Bytes response_;
    Welcome welcome_;
    ReplayWindow window_;
    std::uint8_t sends_ = PAYLOAD;  // the type payloads are sealed as

    Error receive_short(View packet, Kind& kind, Bytes& out);
};

}  // namespace vinom
