// The reliability layer's body (docs/protocol.md 13.3) and messages (13.4):
// the layout and every rule that makes a body malformed. The endpoint that
// builds bodies (acks, resends, windows) is not part of this file.
#include "vinom/codec.hpp"

namespace vinom {

namespace {

std::uint64_t le(const std::uint8_t* p, int n) {
    std::uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

void put_le(Bytes& b, std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// The malformed fragments of 13.4: last = 0, index > last, no data, channel 0 last >= 16.
bool bad_fragment(const Message& m) {
    return m.last == 0 || m.index > m.last || m.data.empty() || (m.channel == 0 && m.last >= 16);
}

}  // namespace

Error encode_body(const BodyHeader& h, const std::vector<Message>& messages,
                  std::size_t max_body, Bytes& out) {
    if (messages.size() > MAX_MESSAGES) return Error::bad_field;
    Bytes b;
    put_le(b, h.sequence, 2);
    put_le(b, h.ack, 2);
    put_le(b, h.ack_bits, 4);
    b.push_back(h.ack_delay);
    for (const Message& m : messages) {
        if (m.channel > 1 || m.data.size() > MAX_MESSAGE_LENGTH) return Error::bad_field;
        if (m.fragment && bad_fragment(m)) return Error::bad_field;
        std::uint16_t info = static_cast<std::uint16_t>((m.channel << 14) | (m.fragment ? 1 << 13 : 0) |
                                                        m.data.size());
        put_le(b, info, 2);
        put_le(b, m.id, 2);
        if (m.fragment) {
            b.push_back(m.index);
            b.push_back(m.last);
        }
        b.insert(b.end(), m.data.begin(), m.data.end());
    }
    if (b.size() > max_body) return Error::bad_size;
    out = std::move(b);
    return Error::ok;
}

Error decode_body(View body, std::size_t max_body, BodyHeader& h, std::vector<Message>& out) {
    if (body.size < BODY_HEADER_SIZE) return Error::truncated;
    if (body.size > max_body) return Error::bad_size;
    BodyHeader head;
    head.sequence = static_cast<std::uint16_t>(le(body.data, 2));
    head.ack = static_cast<std::uint16_t>(le(body.data + 2, 2));
    head.ack_bits = static_cast<std::uint32_t>(le(body.data + 4, 4));
    head.ack_delay = body.data[8];
    std::vector<Message> messages;
    std::size_t at = BODY_HEADER_SIZE;
    while (at < body.size) {
        if (messages.size() == MAX_MESSAGES) return Error::bad_field;
        if (body.size - at < 4) return Error::truncated;
        std::uint16_t info = static_cast<std::uint16_t>(le(body.data + at, 2));
        Message m;
        m.channel = static_cast<std::uint8_t>(info >> 14);
        m.fragment = (info >> 13) & 1;
        std::size_t length = info & 0x1fff;
        m.id = static_cast<std::uint16_t>(le(body.data + at + 2, 2));
        at += 4;
        if (m.channel > 1) return Error::bad_field;
        if (m.fragment) {
            if (body.size - at < 2) return Error::truncated;
            m.index = body.data[at];
            m.last = body.data[at + 1];
            at += 2;
        }
        if (body.size - at < length) return Error::truncated;
        m.data.assign(body.data + at, body.data + at + length);
        at += length;
        if (m.fragment && bad_fragment(m)) return Error::bad_field;
        messages.push_back(std::move(m));
    }
    h = head;
    out = std::move(messages);
    return Error::ok;
}

}  // namespace vinom
