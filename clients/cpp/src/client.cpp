// One client session with section 8's timers (include/vinom/client.hpp).
#include "vinom/client.hpp"

#include <algorithm>
#include <string>

#include "log.hpp"
#include "vinom/messages.hpp"

namespace vinom {

namespace {

// A `phase` message that ends the match (docs/protocol.md 14: `finished` with
// its result, `aborted` with its reason). Only reliable messages are read, and
// only a map's first bytes decide before decoding: a state or snap is never
// decoded here.
bool ends_match(const Bytes& message) {
    if (message.empty() || (message[0] & 0xf0) != 0x80) return false;  // a fixmap
    Value m;
    if (decode_message(View(message), m) != Error::ok || !m.is_object()) return false;
    auto t = m.find("t");
    auto p = m.find("p");
    return t != m.end() && p != m.end() && *t == "phase" && (*p == "finished" || *p == "aborted");
}

}  // namespace

Client::Client(const PublicToken& token, std::uint64_t first_sequence, double now,
               double attempt_timeout, bool short_payloads, bool slim_payloads)
    : session_(token, first_sequence),
      started_(now),
      offer_(static_cast<std::uint8_t>((short_payloads ? READS_SHORT : 0) |
                                       (slim_payloads ? READS_SLIM : 0))),
      offers_(offer_ ? SHORT_OFFERS : 0) {
    timeout_ = token.timeout_ms / 1000.0;
    attempt_timeout_ = attempt_timeout > 0 ? attempt_timeout : std::max(timeout_ + 1.0, 5.0);
    keepalive_ = std::min(2.0, timeout_ / 3.0);
}

void Client::fail(const std::string& reason) {
    if (failed_) return;
    failed_ = true;
    failure_ = reason;
    log(LogLevel::warning, "client: session failed: " + reason);
    Event e;
    e.kind = Event::Kind::failed;
    e.reason = reason;
    events_.push_back(std::move(e));
}

void Client::end(const char* reason) {
    if (failed_ || !ended_.empty()) return;
    ended_ = reason;
    log(LogLevel::info, std::string("client: session ended: ") + reason);
    Event e;
    e.kind = Event::Kind::ended;
    e.reason = reason;
    events_.push_back(std::move(e));
}

void Client::host_closed() {
    end(END_HOST_CLOSED);
    // Whatever the reason, nothing sent from now on reaches a host: a game
    // looping over next_datagram gets none, so no further send fails.
    host_closed_ = true;
    datagrams_.clear();
}

void Client::seal(std::uint8_t type, View body, double now) {
    Bytes packet;
    if (session_.seal(type, body, packet) == Error::ok) {
        if (type == PAYLOAD) {
            ++counts_.payloads_sent;
            if (packet[0] >= SHORT_PAYLOAD) ++counts_.short_sent;
            if (packet[0] == SLIM_PAYLOAD) ++counts_.slim_sent;
        }
        datagrams_.push_back(std::move(packet));
    }
    last_sent_ = now;
}

Error Client::receive(View datagram, double now) {
    if (failed_ || host_closed_) return Error::unexpected;
    ClientSession::Kind kind;
    Bytes out;
    Error e = session_.receive(datagram, kind, out);
    if (e != Error::ok) {
        ++counts_.dropped;
        if (log_enabled(LogLevel::info)) {
            log(LogLevel::info, "client: dropped a datagram of " + std::to_string(datagram.size) +
                                    " bytes: " + error_name(e));
        }
        return e;
    }
    last_heard_ = now;
    switch (kind) {
        case ClientSession::Kind::challenge:
            datagrams_.push_back(std::move(out));
            last_handshake_ = now;
            break;
        case ClientSession::Kind::denied:
            fail("denied");
            break;
        case ClientSession::Kind::welcome: {
            last_sent_ = now;
            offer_due_ = now;  // the first offer goes with the next update
            Event w;
            w.kind = Event::Kind::welcome;
            events_.push_back(std::move(w));
            break;
        }
        case ClientSession::Kind::disconnect: {
            if (!ended_.empty()) break;  // the end was the event
            Event d;
            d.kind = Event::Kind::disconnected;
            events_.push_back(std::move(d));
            break;
        }
        case ClientSession::Kind::payload:
            ++counts_.payloads_received;
            if (datagram.data[0] >= SHORT_PAYLOAD) {
                ++counts_.short_received;
                if (datagram.data[0] == SLIM_PAYLOAD) ++counts_.slim_received;
                offers_ = 0;  // the host read the offer: no more
            }
            for (auto& [channel, data] : endpoint_.receive(View(out), now)) {
                bool last = channel == 1 && ends_match(data);
                Event m;
                m.kind = Event::Kind::message;
                m.channel = channel;
                m.data = std::move(data);
                events_.push_back(std::move(m));
                if (last) end(END_MATCH);
            }
            break;
        default:
            break;
    }
    return Error::ok;
}

void Client::update(double now) {
    if (failed_ || host_closed_) return;
    State state = session_.state();
    if (state == State::requesting || state == State::responding) {
        if (now - started_ > attempt_timeout_) {
            fail("timeout");
            return;
        }
        if (last_handshake_ < 0 || now - last_handshake_ >= HANDSHAKE_INTERVAL) {
            datagrams_.push_back(state == State::requesting ? session_.request()
                                                            : session_.response());
            last_handshake_ = now;
        }
    } else if (state == State::connected) {
        if (now - last_heard_ > timeout_) {
            // After the match's end a silent host has closed its port: the
            // game heard that already, once.
            if (!ended_.empty()) {
                host_closed_ = true;
                datagrams_.clear();
            } else {
                fail("timeout");
            }
            return;
        }
        std::vector<Bytes> bodies = endpoint_.build(now);
        for (const Bytes& body : bodies) seal(PAYLOAD, View(body), now);
        if (bodies.empty() && now - last_sent_ >= keepalive_) seal(KEEPALIVE, View(), now);
        // After them, as the Python client: the offer of short (and slim)
        // payloads, when due.
        if (offers_ > 0 && now >= offer_due_) {
            --offers_;
            ++counts_.offers;
            offer_due_ = now + SHORT_OFFER_INTERVAL;
            seal(KEEPALIVE, View(&offer_, 1), now);
        }
    }
}

Error Client::send(Bytes message) {
    if (!ended_.empty()) return Error::ended;
    if (session_.state() != State::connected || failed_) return Error::unexpected;
    if (message.empty() || message.size() > MAX_MESSAGE) return Error::bad_size;
    return endpoint_.send_reliable(std::move(message)) ? Error::ok : Error::queue_full;
}

Error Client::send_unreliable(Bytes message) {
    if (!ended_.empty()) return Error::ended;
    if (session_.state() != State::connected || failed_) return Error::unexpected;
    if (message.empty() || message.size() > Endpoint::MAX_UNFRAGMENTED) return Error::bad_size;
    endpoint_.send_unreliable(std::move(message));
    return Error::ok;
}

void Client::close() {
    if (session_.state() != State::connected || host_closed_) return;
    for (int i = 0; i < DISCONNECT_REDUNDANCY; ++i) seal(DISCONNECT, View(), last_sent_);
}

bool Client::next_datagram(Bytes& out) {
    if (datagrams_.empty()) return false;
    out = std::move(datagrams_.front());
    datagrams_.pop_front();
    return true;
}

bool Client::next_event(Event& out) {
    if (events_.empty()) return false;
    out = std::move(events_.front());
    events_.pop_front();
    return true;
}

}  // namespace vinom
