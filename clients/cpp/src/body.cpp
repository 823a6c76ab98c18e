// The reliability layer's body (docs/protocol.md 13.3) and messages (13.4):
// the layout and every rule that makes a body malformed, and the slim layout a
// slim payload carries (5.10, 13.3). The endpoint that builds bodies (acks,
// resends, windows) is not part of this file.
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
        std::uint16_t info = static_cast<std::uint16_t>(
            (std::size_t{m.channel} << 14) | (m.fragment ? std::size_t{1} << 13 : 0) | m.data.size());
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

// The slim layout (13.3): the form byte, sequence, ack, ack delay, the ack bytes
// that are not ff, then the single message's id and data, or the messages.
Error slim_body(View body, Bytes& out) {
    if (body.size < BODY_HEADER_SIZE) return Error::truncated;
    std::uint32_t ack_bits = static_cast<std::uint32_t>(le(body.data + 4, 4));
    std::uint8_t form = 0;
    Bytes kept;
    for (int i = 0; i < 4; ++i) {
        std::uint8_t byte = static_cast<std::uint8_t>(ack_bits >> (8 * i));
        if (byte != 0xff) {
            form |= static_cast<std::uint8_t>(1u << i);
            kept.push_back(byte);
        }
    }
    std::size_t rest = BODY_HEADER_SIZE;  // where what follows the header starts
    if (body.size >= BODY_HEADER_SIZE + 4) {
        std::uint16_t info = static_cast<std::uint16_t>(le(body.data + BODY_HEADER_SIZE, 2));
        if (info < 0x8000 && !(info & 0x2000) &&
            (info & 0x1fffu) + BODY_HEADER_SIZE + 4 == body.size) {
            form |= static_cast<std::uint8_t>(0x10 | (info >= 0x4000 ? 0x20 : 0));
            rest = BODY_HEADER_SIZE + 2;  // the message's id, then its data
        }
    }
    Bytes b;
    b.push_back(form);
    b.insert(b.end(), body.data, body.data + 4);  // sequence, ack
    b.push_back(body.data[8]);                    // ack delay
    b.insert(b.end(), kept.begin(), kept.end());
    b.insert(b.end(), body.data + rest, body.data + body.size);
    out = std::move(b);
    return Error::ok;
}

Error body_of_slim(View slim, Bytes& out) {
    if (slim.size < SLIM_HEADER_SIZE) return Error::truncated;
    std::uint8_t form = slim.data[0];
    if ((form & 0xc0) || ((form & 0x20) && !(form & 0x10))) return Error::bad_field;
    std::size_t at = SLIM_HEADER_SIZE;
    std::uint32_t ack_bits = 0xffffffffu;
    for (int i = 0; i < 4; ++i) {
        if (!((form >> i) & 1)) continue;
        if (at >= slim.size) return Error::truncated;
        ack_bits ^= static_cast<std::uint32_t>(slim.data[at] ^ 0xffu) << (8 * i);
        ++at;
    }
    Bytes b;
    b.insert(b.end(), slim.data + 1, slim.data + 5);  // sequence, ack
    put_le(b, ack_bits, 4);
    b.push_back(slim.data[5]);
    if (form & 0x10) {
        if (slim.size - at < 2) return Error::truncated;
        std::size_t length = slim.size - at - 2;
        if (length > MAX_MESSAGE_LENGTH) return Error::bad_size;
        put_le(b, (form & 0x20 ? 0x4000u : 0u) | length, 2);
    }
    b.insert(b.end(), slim.data + at, slim.data + slim.size);
    out = std::move(b);
    return Error::ok;
}

}  // namespace vinom
