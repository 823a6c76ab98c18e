// The client's minimal reliability endpoint (include/vinom/endpoint.hpp).
#include "vinom/endpoint.hpp"

#include <algorithm>

namespace vinom {

namespace {

// The full value of a 16-bit wire number nearest to `ref` (section 13.2).
std::int64_t nearest(std::uint16_t wire, std::int64_t ref) {
    std::int64_t d = (static_cast<std::int64_t>(wire) - ref) & 0xffff;
    if (d >= 32768) d -= 65536;
    return ref + d;
}

}  // namespace

std::vector<std::pair<int, Bytes>> Endpoint::receive(View body, double now) {
    std::vector<std::pair<int, Bytes>> done;
    BodyHeader h;
    std::vector<Message> messages;
    if (decode_body(body, MAX_BODY, h, messages) != Error::ok) {
        return done;  // malformed: dropped (section 13.4)
    }
    // Our acks: the packet sequence, nearest to the newest received.
    std::int64_t seq = received_any_ ? nearest(h.sequence, newest_) : h.sequence;
    if (!received_any_) {
        received_any_ = true;
        newest_ = seq;
        received_bits_ = 0;
        newest_at_ = now;
    } else if (seq > newest_) {
        std::int64_t shift = seq - newest_;
        received_bits_ = shift > 32 ? 0 : (received_bits_ << shift) | (1ull << (shift - 1));
        received_bits_ &= 0xffffffffull;
        newest_ = seq;
        newest_at_ = now;
    } else if (seq == newest_) {
        return done;  // duplicate
    } else {
        std::int64_t back = newest_ - seq - 1;
        if (back >= 32 || (received_bits_ >> back) & 1) return done;
        received_bits_ |= 1ull << back;
    }
    // The host's acks of our bodies.
    if (h.ack != 0xffff || h.ack_bits != 0) {
        std::int64_t ack = nearest(h.ack, next_sequence_ - 1);
        if (ack < next_sequence_) newest_acked_ = std::max(newest_acked_, ack);
        acked(ack);
        for (int i = 0; i < 32; ++i) {
            if ((h.ack_bits >> i) & 1) acked(ack - 1 - i);
        }
    }
    for (Message& m : messages) {
        if (m.channel == 1) {
            owe_ack_ = true;
            std::int64_t id = nearest(m.id, next_reliable_);
            if (id >= next_reliable_ && id < next_reliable_ + RECEIVE_WINDOW) {
                buffered_.emplace(id, std::move(m));
            }
            deliver(done);
        } else if (!m.fragment) {
            snapshot(m, done);
        } else {
            snapshot_fragment(m, now, done);
        }
    }
    return done;
}

// A whole channel-0 message: delivered if newer than the last one delivered.
void Endpoint::snapshot(Message& m, std::vector<std::pair<int, Bytes>>& done) {
    std::int64_t snap = have_snapshot_ ? nearest(m.id, last_snapshot_) : m.id;
    if (have_snapshot_ && snap <= last_snapshot_) return;
    have_snapshot_ = true;
    last_snapshot_ = snap;
    done.emplace_back(0, std::move(m.data));
}

// One fragment of a snapshot (13.4, 13.7): kept until the snapshot is whole, then
// delivered, unless a newer one was delivered or is being assembled. Malformed
// fragments (last >= 16, index > last) never get here: decode_body refused them.
void Endpoint::snapshot_fragment(Message& m, double now,
                                 std::vector<std::pair<int, Bytes>>& done) {
    std::optional<PartialSnapshot>& p = partial_snapshot_;
    if (p && now - p->since >= PARTIAL_TIMEOUT) p.reset();
    std::int64_t snap = have_snapshot_ ? nearest(m.id, last_snapshot_)
                        : p             ? nearest(m.id, p->sequence)
                                        : m.id;
    if (have_snapshot_ && snap <= last_snapshot_) return;  // not newer than delivered
    std::size_t count = static_cast<std::size_t>(m.last) + 1;
    if (!p || p->sequence != snap) {
        if (p && snap < p->sequence) return;  // older than the one in assembly
        p.emplace(PartialSnapshot{snap, std::vector<Bytes>(count), 0, 0, now});
    } else if (p->parts.size() != count) {
        return;  // a protocol error: a fragment of another count under this sequence
    }
    if (!p->parts[m.index].empty()) return;  // a duplicate
    if (p->size + m.data.size() > MAX_SNAPSHOT) {
        // Too large to take: the snapshot is passed over, its other fragments too.
        p.reset();
        have_snapshot_ = true;
        last_snapshot_ = snap;
        return;
    }
    p->size += m.data.size();
    p->parts[m.index] = std::move(m.data);
    if (++p->have < count) return;
    Bytes whole;
    whole.reserve(p->size);
    for (Bytes& part : p->parts) whole.insert(whole.end(), part.begin(), part.end());
    p.reset();
    have_snapshot_ = true;
    last_snapshot_ = snap;
    done.emplace_back(0, std::move(whole));
}

bool Endpoint::send_reliable(Bytes data) {
    if (data.empty() || data.size() > MAX_RELIABLE) return false;
    if (data.size() > MAX_PENDING_BYTES - pending_bytes_) return false;
    pending_bytes_ += data.size();
    // Larger than a body: each fragment its own consecutive id (13.4).
    std::size_t count = data.size() <= MAX_UNFRAGMENTED
                            ? 1
                            : (data.size() + FRAGMENT_SIZE - 1) / FRAGMENT_SIZE;
    for (std::size_t i = 0; i < count; ++i) {
        Message m;
        m.channel = 1;
        m.id = static_cast<std::uint16_t>(next_id_);
        if (count == 1) {
            m.data = std::move(data);
        } else {
            m.fragment = true;
            m.index = static_cast<std::uint8_t>(i);
            m.last = static_cast<std::uint8_t>(count - 1);
            std::size_t start = i * FRAGMENT_SIZE;
            std::size_t end = std::min(data.size(), start + FRAGMENT_SIZE);
            m.data.assign(data.begin() + static_cast<std::ptrdiff_t>(start),
                          data.begin() + static_cast<std::ptrdiff_t>(end));
        }
        queue_.emplace(next_id_++, Pending{std::move(m), -1.0});
    }
    return true;
}

void Endpoint::send_unreliable(Bytes data) { unreliable_.push_back(std::move(data)); }

std::vector<Bytes> Endpoint::build(double now) {
    std::vector<Bytes> out;
    while (out.size() < MAX_BODIES_PER_BUILD) {
        std::vector<Message> messages;
        std::vector<std::int64_t> ids;
        std::size_t size = BODY_HEADER_SIZE;
        // Channel 0 (what a tick waits for), each message once: one that does not
        // fit goes in the next body.
        while (!unreliable_.empty() && messages.size() < MESSAGES_PER_BODY &&
               size + 4 + unreliable_.front().size() <= MAX_BODY) {
            size += 4 + unreliable_.front().size();
            Message m;
            m.channel = 0;
            m.id = static_cast<std::uint16_t>(next_unreliable_++);
            m.data = std::move(unreliable_.front());
            unreliable_.pop_front();
            messages.push_back(std::move(m));
        }
        // Reliable messages in id order: due resends always, new ones while the
        // receiver's window (256 ids past the oldest unacked) and the ack window let
        // them go (13.5).
        bool open = ack_window_open();
        std::int64_t window_end = queue_.empty() ? 0 : queue_.begin()->first + RECEIVE_WINDOW;
        for (auto& [id, p] : queue_) {
            bool fresh = p.sent_at < 0;
            if (!fresh && now - p.sent_at < RESEND_INTERVAL) continue;
            if (fresh && (!open || id >= window_end)) break;
            std::size_t cost = (p.message.fragment ? 6 : 4) + p.message.data.size();
            if (messages.size() == MESSAGES_PER_BODY || size + cost > MAX_BODY) break;
            size += cost;
            messages.push_back(p.message);
            ids.push_back(id);
            p.sent_at = now;
        }
        if (messages.empty() && !owe_ack_) break;
        BodyHeader h;
        h.sequence = static_cast<std::uint16_t>(next_sequence_);
        if (received_any_) {
            h.ack = static_cast<std::uint16_t>(newest_);
            h.ack_bits = static_cast<std::uint32_t>(received_bits_);
            double ms = (now - newest_at_) * 1000.0 + 0.5;
            h.ack_delay = static_cast<std::uint8_t>(ms > 255 ? 255 : ms);
        }
        Bytes body;
        if (encode_body(h, messages, MAX_BODY, body) != Error::ok) break;
        // An ack names the newest body and the 32 before it: an older one that
        // carried reliable messages is past acking (they are resent anyway).
        if (!ids.empty()) carried_[next_sequence_] = std::move(ids);
        carried_.erase(carried_.begin(), carried_.lower_bound(next_sequence_ - 64));
        ++next_sequence_;
        owe_ack_ = false;
        out.push_back(std::move(body));
    }
    return out;
}

// Whether a body with new reliable messages may start: the oldest packet still
// carrying an unacked one (and not yet lost: within 32 of the newest acked) is at
// most ACK_WINDOW behind it, so every such packet stays in the peer's bitfield.
bool Endpoint::ack_window_open() const {
    for (const auto& [sequence, ids] : carried_) {
        if (newest_acked_ >= 0 && sequence < newest_acked_ - ACK_WINDOW) continue;
        for (std::int64_t id : ids) {
            if (queue_.count(id)) return next_sequence_ - sequence <= ACK_WINDOW;
        }
    }
    return true;
}

void Endpoint::acked(std::int64_t sequence) {
    auto it = carried_.find(sequence);
    if (it == carried_.end()) return;
    for (std::int64_t id : it->second) {
        auto pending = queue_.find(id);  // gone already if a resend's packet was acked first
        if (pending == queue_.end()) continue;
        pending_bytes_ -= pending->second.message.data.size();
        queue_.erase(pending);
    }
    carried_.erase(it);
}

// Channel 1 in id order; a fragmented message when its last fragment is in.
void Endpoint::deliver(std::vector<std::pair<int, Bytes>>& done) {
    while (true) {
        auto it = buffered_.find(next_reliable_);
        if (it == buffered_.end()) return;
        Message m = std::move(it->second);
        buffered_.erase(it);
        ++next_reliable_;
        if (!m.fragment) {
            done.emplace_back(1, std::move(m.data));
            continue;
        }
        if (m.index != (assembling_ ? expected_index_ : 0)) {
            assembling_ = false;  // a protocol error: the partial message is dropped
            partial_.clear();
            continue;
        }
        partial_.insert(partial_.end(), m.data.begin(), m.data.end());
        assembling_ = m.index != m.last;
        expected_index_ = static_cast<std::uint8_t>(m.index + 1);
        if (!assembling_) {
            done.emplace_back(1, std::move(partial_));
            partial_.clear();
        }
    }
}

}  // namespace vinom
