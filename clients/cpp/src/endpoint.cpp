// The client's minimal reliability endpoint (include/vinom/endpoint.hpp).
#include "vinom/endpoint.hpp"

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
    PartialSnapshot& p = partial_snapshot_;
    if (have_partial_ && now - p.since >= PARTIAL_TIMEOUT) have_partial_ = false;
    std::int64_t snap = have_snapshot_ ? nearest(m.id, last_snapshot_)
                        : have_partial_ ? nearest(m.id, p.sequence)
                                        : m.id;
    if (have_snapshot_ && snap <= last_snapshot_) return;  // not newer than delivered
    std::size_t count = static_cast<std::size_t>(m.last) + 1;
    if (!have_partial_ || p.sequence != snap) {
        if (have_partial_ && snap < p.sequence) return;  // older than the one in assembly
        have_partial_ = true;
        p.sequence = snap;
        p.parts.assign(count, Bytes{});
        p.got.assign(count, false);
        p.have = p.size = 0;
        p.since = now;
    } else if (p.parts.size() != count) {
        return;  // a protocol error: a fragment of another count under this sequence
    }
    if (p.got[m.index]) return;  // a duplicate
    if (p.size + m.data.size() > MAX_SNAPSHOT) {
        // Too large to take: the snapshot is passed over, its other fragments too.
        have_partial_ = false;
        have_snapshot_ = true;
        last_snapshot_ = snap;
        return;
    }
    p.size += m.data.size();
    p.got[m.index] = true;
    p.parts[m.index] = std::move(m.data);
    if (++p.have < count) return;
    Bytes whole;
    whole.reserve(p.size);
    for (Bytes& part : p.parts) whole.insert(whole.end(), part.begin(), part.end());
    have_partial_ = false;
    p.parts.clear();
    p.got.clear();
    have_snapshot_ = true;
    last_snapshot_ = snap;
    done.emplace_back(0, std::move(whole));
}

void Endpoint::send_reliable(Bytes data) {
    queue_.emplace(next_id_++, Pending{std::move(data), -1.0});
}

void Endpoint::send_unreliable(Bytes data) { unreliable_.push_back(std::move(data)); }

std::vector<Bytes> Endpoint::build(double now) {
    std::vector<Bytes> out;
    std::vector<Message> messages;
    std::vector<std::int64_t> ids;
    std::size_t size = BODY_HEADER_SIZE;
    // Channel 0 first (what a tick waits for), each message once: one that does not
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
    for (auto& [id, p] : queue_) {
        if (p.sent_at >= 0 && now - p.sent_at < RESEND_INTERVAL) continue;
        if (messages.size() == MESSAGES_PER_BODY || size + 4 + p.data.size() > MAX_BODY) break;
        size += 4 + p.data.size();
        Message m;
        m.channel = 1;
        m.id = static_cast<std::uint16_t>(id);
        m.data = p.data;
        messages.push_back(std::move(m));
        ids.push_back(id);
        p.sent_at = now;
    }
    if (messages.empty() && !owe_ack_) return out;
    BodyHeader h;
    h.sequence = static_cast<std::uint16_t>(next_sequence_);
    if (received_any_) {
        h.ack = static_cast<std::uint16_t>(newest_);
        h.ack_bits = static_cast<std::uint32_t>(received_bits_);
        double ms = (now - newest_at_) * 1000.0 + 0.5;
        h.ack_delay = static_cast<std::uint8_t>(ms > 255 ? 255 : ms);
    }
    Bytes body;
    if (encode_body(h, messages, MAX_BODY, body) != Error::ok) return out;
    // An ack names the newest body and the 32 before it: an older one that
    // carried reliable messages is past acking (they are resent anyway).
    if (!ids.empty()) carried_[next_sequence_] = std::move(ids);
    carried_.erase(carried_.begin(), carried_.lower_bound(next_sequence_ - 64));
    ++next_sequence_;
    owe_ack_ = false;
    out.push_back(std::move(body));
    return out;
}

void Endpoint::acked(std::int64_t sequence) {
    auto it = carried_.find(sequence);
    if (it == carried_.end()) return;
    for (std::int64_t id : it->second) queue_.erase(id);
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
