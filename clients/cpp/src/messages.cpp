// Section 14's messages with msgpack-cxx (Debian's libmsgpack-cxx-dev).
#include "vinom/messages.hpp"

#include <msgpack.hpp>

#include "pack_value.hpp"
#include "vinom/schema.hpp"

namespace vinom {

namespace {

bool to_value(const msgpack::object& o, Value& out) {
    switch (o.type) {
        case msgpack::type::NIL: out = nullptr; return true;
        case msgpack::type::BOOLEAN: out = o.via.boolean; return true;
        case msgpack::type::POSITIVE_INTEGER: out = o.via.u64; return true;
        case msgpack::type::NEGATIVE_INTEGER: out = o.via.i64; return true;
        case msgpack::type::FLOAT32:
        case msgpack::type::FLOAT64: out = o.via.f64; return true;
        case msgpack::type::STR: out = std::string(o.via.str.ptr, o.via.str.size); return true;
        case msgpack::type::BIN: {
            const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
            out = Value::binary(std::vector<std::uint8_t>(p, p + o.via.bin.size));
            return true;
        }
        case msgpack::type::ARRAY:
            out = Value::array();
            for (std::uint32_t n = 0; n < o.via.array.size; ++n) {
                Value x;
                if (!to_value(o.via.array.ptr[n], x)) return false;
                out.push_back(std::move(x));
            }
            return true;
        case msgpack::type::MAP:
            out = Value::object();
            for (std::uint32_t n = 0; n < o.via.map.size; ++n) {
                const auto& kv = o.via.map.ptr[n];
                if (kv.key.type != msgpack::type::STR) return false;  // keys are strings
                Value x;
                if (!to_value(kv.val, x)) return false;
                out[std::string(kv.key.via.str.ptr, kv.key.via.str.size)] = std::move(x);
            }
            return true;
        default: return false;  // extension types: not a message
    }
}

}  // namespace

Error encode_message(const Value& message, Bytes& out) {
    return detail::pack_bytes(message, MAX_MESSAGE_DEPTH, false, out);
}

Error decode_message(View data, Value& out) {
    if (data.size == 0) return Error::truncated;
    try {
        std::size_t offset = 0;
        // Limits: depth, and no container longer than the bytes could hold.
        msgpack::unpack_limit limit(data.size, data.size, data.size, data.size, data.size,
                                    MAX_MESSAGE_DEPTH);
        msgpack::object_handle h = msgpack::unpack(reinterpret_cast<const char*>(data.data),
                                                   data.size, offset, nullptr, nullptr, limit);
        if (offset != data.size) return Error::bad_size;  // bytes after the message
        Value v;
        if (!to_value(h.get(), v)) return Error::bad_field;
        out = std::move(v);
        return Error::ok;
    } catch (const msgpack::insufficient_bytes&) {
        return Error::truncated;
    } catch (const std::exception&) {
        return Error::bad_field;
    }
}

Error encode_snap(const Snap& s, Bytes& out) {
    auto opt = [](const std::optional<std::int64_t>& x) { return x ? Value(*x) : Value(nullptr); };
    Value v = Value::array({s.v, s.ts, opt(s.r), opt(s.i), opt(s.ik), Value::binary(s.d)});
    return encode_message(v, out);
}

namespace {

// An int of a snap: any msgpack int that fits an int64.
bool int64_of(const Value& x, std::int64_t& out) {
    if (x.is_number_unsigned()) {
        auto u = x.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(INT64_MAX)) return false;
        out = static_cast<std::int64_t>(u);
        return true;
    }
    if (!x.is_number_integer()) return false;
    out = x.get<std::int64_t>();
    return true;
}

// One unsigned LEB128 number of a packed snap, at `at` (moved past it): at most
// 8 bytes, below 2^53.
Error packed_number(View data, std::size_t& at, std::uint64_t& out) {
    std::uint64_t value = 0;
    for (unsigned shift = 0;; shift += 7) {
        if (shift == 56) return Error::bad_field;  // a 9th byte
        if (at >= data.size) return Error::truncated;
        std::uint8_t byte = data.data[at++];
        value |= std::uint64_t{byte & 0x7fu} << shift;
        if (byte < 0x80) break;
    }
    if (value >= PACKED_SNAP_LIMIT) return Error::bad_field;
    out = value;
    return Error::ok;
}

// A packed snap (its first byte PACKED_SNAP): v, ts, r + 1, zigzag(i) + 1, ik + 1
// (0: nil), then d to the end.
Error decode_packed_snap(View data, Snap& out) {
    std::uint64_t n[5];
    std::size_t at = 1;
    for (auto& x : n) {
        Error e = packed_number(data, at, x);
        if (e != Error::ok) return e;
    }
    // Every number is below 2^53: each fits an int64.
    Snap s;
    s.v = static_cast<std::int64_t>(n[0]);
    s.ts = static_cast<std::int64_t>(n[1]);
    if (n[2]) s.r = static_cast<std::int64_t>(n[2] - 1);
    if (n[3]) s.i = unzigzag(n[3] - 1);
    if (n[4]) s.ik = static_cast<std::int64_t>(n[4] - 1);
    s.d.assign(data.data + at, data.data + data.size);
    out = std::move(s);
    return Error::ok;
}

}  // namespace

Error decode_snap(View data, Snap& out) {
    if (data.size && data.data[0] == PACKED_SNAP) return decode_packed_snap(data, out);
    Value v;
    Error e = decode_message(data, v);
    if (e != Error::ok) return e;
    // An array of another length, or a field of another type, is not a snap.
    Snap s;
    if (!v.is_array() || v.size() != 6 || !int64_of(v[0], s.v) || !int64_of(v[1], s.ts) ||
        !v[5].is_binary())
        return Error::bad_field;
    std::optional<std::int64_t>* opts[] = {&s.r, &s.i, &s.ik};
    for (std::size_t n = 0; n < 3; ++n) {
        const Value& x = v[n + 2];
        std::int64_t i = 0;
        if (x.is_null()) continue;
        if (!int64_of(x, i)) return Error::bad_field;
        *opts[n] = i;
    }
    const auto& d = v[5].get_binary();
    s.d.assign(d.begin(), d.end());
    out = std::move(s);
    return Error::ok;
}

}  // namespace vinom
