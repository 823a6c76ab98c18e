// One UDP session of a game client in the engine's shape (docs/clients.md):
// the packet layer (ClientSession), the reliability endpoint (Endpoint) and
// the timers of docs/protocol.md section 8 (the request and response resent
// at 10 Hz, the attempt timeout, keepalives, the session timeout) behind one
// object. Sans-I/O and thread-free: the game owns the socket and the clock,
// hands it each datagram it receives and calls update(now) every frame, then
// sends the datagrams it returns and reads its events.
#pragma once

#include <deque>
#include <string>

#include "vinom/endpoint.hpp"
#include "vinom/session.hpp"

namespace vinom {

class Client {
public:
    using State = ClientSession::State;

    struct Event {
        enum class Kind { none, welcome, message, disconnected, failed, ended };
        Kind kind = Kind::none;
        int channel = 0;     // message: 0 unreliable, 1 reliable ordered
        Bytes data;          // message: one msgpack value, or a snap (section 14: first byte 0xc1)
        std::string reason;  // failed: "timeout" or "denied"; ended: END_MATCH or END_HOST_CLOSED
    };

    // `now`: seconds on the caller's monotonic clock; `attempt_timeout`: how
    // long to wait for the welcome (<= 0: the token's timeout + 1 s, at least
    // 5 s, as the Python client); `short_payloads`: offer short payloads
    // (docs/protocol.md 5.9; false: no offer, every payload long, as an older
    // client; ClientConfig.short_payloads of the Python client); `slim_payloads`:
    // offer slim ones too (5.10; ClientConfig.slim_payloads).
    Client(const PublicToken& token, std::uint64_t first_sequence, double now,
           double attempt_timeout = 0.0, bool short_payloads = true, bool slim_payloads = true);

    State state() const {
        if (failed_) return State::failed;
        return host_closed_ ? State::closed : session_.state();
    }
    std::uint64_t session_id() const { return session_.session_id(); }
    double server_time() const { return session_.server_time(); }

    // A datagram from the host. Forged, replayed or unexpected ones are dropped
    // (the returned Error says why) and change nothing.
    Error receive(View datagram, double now);
    // The timers: resends, keepalives, timeouts, due reliable messages.
    void update(double now);
    // The largest message a game host takes from a client (the rooms' limit,
    // docs/protocol.md 14); one over MAX_UNFRAGMENTED goes in fragments.
    static constexpr std::size_t MAX_MESSAGE = 2048;

    // Queues one message (msgpack bytes) on the reliable channel; only while
    // connected (unexpected otherwise), 1 to MAX_MESSAGE bytes (bad_size
    // otherwise); queue_full, nothing queued, while Endpoint::MAX_PENDING_BYTES
    // wait for the host's acks (the session goes on: the host may catch up).
    Error send(Bytes message);
    // Queues one message on the unreliable channel (0: a real-time game's
    // `input`), sent once by the next update(): 1 to Endpoint::MAX_UNFRAGMENTED
    // bytes, otherwise as send().
    Error send_unreliable(Bytes message);
    // Ends the session: queues section 8's redundant disconnects.
    void close();

    // The end of the session the game did not ask for, as ONE `ended` event
    // whose reason is either of these, whichever comes first: the match ended
    // (a `phase` message of `finished` or `aborted` on the reliable channel,
    // given as a message just before it), or the host's port closed (the game
    // calls host_closed() when its connected socket's send or receive fails
    // with "connection refused", which is how a host's end shows on UDP: it
    // closes its port after the match). After it send() and send_unreliable()
    // queue nothing and return Error::ended, never a failure: a game that
    // sends an action while the match ends is not wrong. A disconnect from
    // the host or its silence after the end is no second event.
    static constexpr const char* END_MATCH = "match_ended";
    static constexpr const char* END_HOST_CLOSED = "host_closed";
    void host_closed();
    // "" before the end, else its reason.
    const std::string& ended() const { return ended_; }

    // The next datagram to send, or false when none is due.
    bool next_datagram(Bytes& out);
    // The next event, or false when none is waiting (without taking it: peek).
    const Event* peek_event() const { return events_.empty() ? nullptr : &events_.front(); }
    bool next_event(Event& out);
    // Reliable messages sent and not acked yet.
    std::size_t pending() const { return endpoint_.pending(); }
    const std::string& failure() const { return failure_; }

    // What went through the packet layer: payloads sealed and accepted (of them
    // short ones, 5.9, and of those slim ones, 5.10), the offers made, and the
    // datagrams dropped (receive's errors).
    struct Counts {
        std::uint64_t payloads_sent = 0, short_sent = 0, slim_sent = 0;
        std::uint64_t payloads_received = 0, short_received = 0, slim_received = 0;
        std::uint64_t offers = 0;
        std::uint64_t dropped = 0;
    };
    const Counts& counts() const { return counts_; }
    // Whether this session's payloads go short (a short one came from the host;
    // not whether they are offered: the constructor's `short_payloads`).
    bool sends_short() const { return session_.sends_short(); }
    bool sends_slim() const { return session_.sends_slim(); }

    static constexpr double HANDSHAKE_INTERVAL = 0.1;
    static constexpr int DISCONNECT_REDUNDANCY = 5;
    // The offers of short payloads (5.9): one at the first update after the
    // welcome, then one a second, at most SHORT_OFFERS, until a short payload
    // comes (the Python client's SHORT_OFFERS and SHORT_OFFER_INTERVAL).
    static constexpr int SHORT_OFFERS = 4;
    static constexpr double SHORT_OFFER_INTERVAL = 1.0;

private:
    void fail(const std::string& reason);
    void end(const char* reason);
    void seal(std::uint8_t type, View body, double now);

    ClientSession session_;
    Endpoint endpoint_;
    double started_;
    double attempt_timeout_;
    double timeout_;
    double keepalive_;
    double last_handshake_ = -1.0;
    double last_sent_ = 0.0;
    double last_heard_ = 0.0;
    std::uint8_t offer_ = 0;  // the offer's byte: READS_SHORT, READS_SLIM or both
    int offers_ = 0;          // offers of short (and slim) payloads left to make
    double offer_due_ = 0.0;  // when the next is due (from the welcome)
    Counts counts_;
    bool failed_ = false;
    std::string failure_;
    std::string ended_;
    bool host_closed_ = false;  // nothing reaches the host any more
    std::deque<Bytes> datagrams_;
    std::deque<Event> events_;
};

}  // namespace vinom
