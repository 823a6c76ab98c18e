// The reliability endpoint of docs/protocol.md section 13, on the client's
// side: acks both ways; the reliable channel (1) delivered in order and
// reassembled, its messages sent in fragments when larger than a body, within
// the message window (256 ids) and the ack window (32 packets), resent every
// 200 ms until acked; the newest message of the unreliable channel (0) (a
// snapshot larger than one body reassembled from its fragments, in any
// order, as 13.7 says), an unfragmented one sent. Sans-I/O: bodies and `now`
// (seconds, any monotonic origin) in, bodies and messages out. Unlike the
// host's: a fixed resend interval. As the host's: at most MAX_PENDING_BYTES of
// reliable messages wait for acks (13: `max_pending_bytes`).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "vinom/codec.hpp"

namespace vinom {

class Endpoint {
public:
    // How far ahead of the next expected id a reliable message is buffered;
    // further ones are dropped (the host resends them).
    static constexpr std::int64_t RECEIVE_WINDOW = 256;
    static constexpr double RESEND_INTERVAL = 0.2;
    static constexpr std::size_t MESSAGES_PER_BODY = 8;
    // The largest message sent in one body, unfragmented (its header and the
    // message's 4 bytes of header besides); a larger one goes in fragments of
    // FRAGMENT_SIZE (a fragment's header is 6 bytes), at most 256.
    static constexpr std::size_t MAX_UNFRAGMENTED = MAX_BODY - BODY_HEADER_SIZE - 4;  // 1162
    static constexpr std::size_t FRAGMENT_SIZE = MAX_BODY - BODY_HEADER_SIZE - 6;     // 1160
    static constexpr std::size_t MAX_RELIABLE = 256 * FRAGMENT_SIZE;
    // Reliable bytes queued or sent and not acked, at most (the host's bound).
    static constexpr std::size_t MAX_PENDING_BYTES = 1024 * 1024;
    // A body with new reliable messages starts only this many packets past the
    // oldest one still carrying an unacked message (the peer's ack bitfield).
    static constexpr std::int64_t ACK_WINDOW = 32;
    static constexpr std::size_t MAX_BODIES_PER_BUILD = 64;
    // The largest snapshot taken whole (the server's max_unreliable_message); a
    // larger one's fragments are dropped, and so is the snapshot. A snapshot's
    // fragments wait this long (seconds) for the rest (13.9).
    static constexpr std::size_t MAX_SNAPSHOT = 16 * 1024;
    static constexpr double PARTIAL_TIMEOUT = 1.0;

    // A body from the host: the messages it completes, (channel, data), in
    // delivery order. A malformed or duplicate body completes none.
    std::vector<std::pair<int, Bytes>> receive(View body, double now);

    // Queues one reliable message of 1 to MAX_RELIABLE bytes (sent by the next
    // build(), in fragments if it is larger than MAX_UNFRAGMENTED); false for
    // another size, or when it would take the reliable bytes waiting for acks
    // past MAX_PENDING_BYTES (a host that stopped acking: nothing is queued).
    bool send_reliable(Bytes data);

    // Queues one unreliable message (channel 0: a real-time game's `input`) of at
    // most MAX_UNFRAGMENTED bytes, sent once by the next build(), first in its
    // body, never resent.
    void send_unreliable(Bytes data);

    // The bodies to send now: due resends, unreliable messages, new reliable
    // ones the windows let go, or an owed ack (at most MAX_BODIES_PER_BUILD).
    std::vector<Bytes> build(double now);

    // Reliable messages sent and not acked yet.
    std::size_t pending() const { return queue_.size(); }
    // Their bytes.
    std::size_t pending_bytes() const { return pending_bytes_; }

private:
    // A reliable message (or fragment) as it goes in a body, and when it last did
    // (< 0: not yet).
    struct Pending {
        Message message;
        double sent_at;
    };

    // The fragments of one snapshot received so far, by index (a fragment has
    // data, so an empty part is one still to come).
    // (No default member initializers: clang then finds it not constructible for
    // the optional while Endpoint is incomplete.)
    struct PartialSnapshot {
        std::int64_t sequence;
        std::vector<Bytes> parts;
        std::size_t have;
        std::size_t size;
        double since;
    };

    void acked(std::int64_t sequence);
    bool ack_window_open() const;
    void deliver(std::vector<std::pair<int, Bytes>>& done);
    void snapshot(Message& m, std::vector<std::pair<int, Bytes>>& done);
    void snapshot_fragment(Message& m, double now, std::vector<std::pair<int, Bytes>>& done);

    bool received_any_ = false;
    std::int64_t newest_ = 0;
    std::uint64_t received_bits_ = 0;
    double newest_at_ = 0;
    bool owe_ack_ = false;
    std::int64_t next_reliable_ = 0;
    std::map<std::int64_t, Message> buffered_;
    bool assembling_ = false;
    std::uint8_t expected_index_ = 0;
    Bytes partial_;
    bool have_snapshot_ = false;
    std::int64_t last_snapshot_ = 0;
    std::optional<PartialSnapshot> partial_snapshot_;
    std::int64_t next_sequence_ = 0;
    std::int64_t newest_acked_ = -1;
    std::int64_t next_id_ = 0;
    std::deque<Bytes> unreliable_;
    std::int64_t next_unreliable_ = 0;
    std::map<std::int64_t, Pending> queue_;
    std::size_t pending_bytes_ = 0;
    std::map<std::int64_t, std::vector<std::int64_t>> carried_;
};

}  // namespace vinom
