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

namespace {

// One unsigned LEB128 number of a snap, at `at` (moved past it): at most 8
// bytes, below 2^53.
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

void write_number(std::uint64_t x, Bytes& out) {
    while (x >= 0x80) {
        out.push_back(static_cast<std::uint8_t>(x | 0x80));
        x >>= 7;
    }
    out.push_back(static_cast<std::uint8_t>(x));
}

std::uint64_t zigzag(std::int64_t x) {
    return (static_cast<std::uint64_t>(x) << 1) ^ static_cast<std::uint64_t>(x >> 63);
}

constexpr std::int64_t LIMIT = static_cast<std::int64_t>(PACKED_SNAP_LIMIT);
// Ticks a snap's ik can be told against: tick + unzigzag(z), |unzigzag(z)| <= 2^52,
// fits an int64.
constexpr std::uint64_t TICK_LIMIT = std::uint64_t{1} << 62;

}  // namespace

Error decode_snap(View data, RelativeSnap& out) {
    if (data.size == 0) return Error::truncated;
    if (data.data[0] != PACKED_SNAP) return Error::bad_field;
    std::uint64_t n[5];
    std::size_t at = 1;
    for (auto& x : n) {
        Error e = packed_number(data, at, x);
        if (e != Error::ok) return e;
    }
    RelativeSnap s;
    s.v = n[0];
    s.ts = n[1];
    s.r = n[2];
    if (n[3]) s.i = unzigzag(n[3] - 1);
    s.ik = n[4];
    s.d.assign(data.data + at, data.data + data.size);
    out = std::move(s);
    return Error::ok;
}

std::optional<std::int64_t> snap_input_tick(const RelativeSnap& raw, std::uint64_t tick) {
    if (!raw.ik || tick >= TICK_LIMIT) return std::nullopt;
    return static_cast<std::int64_t>(tick) + unzigzag(raw.ik - 1);
}

Error resolve_snap(const RelativeSnap& raw, std::uint64_t tick, const SnapFields* base,
                   Snap& out) {
    // Every number read is below 2^53 and every kept field within +-2^53: no
    // sum below overflows an int64.
    if (raw.v >= PACKED_SNAP_LIMIT || raw.ts >= PACKED_SNAP_LIMIT || raw.r >= PACKED_SNAP_LIMIT ||
        raw.ik >= PACKED_SNAP_LIMIT || tick >= TICK_LIMIT)
        return Error::bad_field;
    Snap s;
    s.v = static_cast<std::int64_t>(raw.v);
    s.ts = static_cast<std::int64_t>(raw.ts);
    if (!base) {
        if (raw.r) s.r = static_cast<std::int64_t>(raw.r - 1);
    } else {
        if (base->v < 0 || base->v >= LIMIT || base->ts < 0 || base->ts >= LIMIT ||
            (base->r && (*base->r <= -LIMIT || *base->r >= LIMIT)))
            return Error::bad_field;
        s.v += base->v;
        s.ts += base->ts;
        if (raw.r) s.r = unzigzag(raw.r - 1) + base->ts + base->r.value_or(0) - s.ts;
        if (s.v >= LIMIT || s.ts >= LIMIT || (s.r && (*s.r <= -LIMIT || *s.r >= LIMIT)))
            return Error::bad_field;
    }
    s.i = raw.i;
    s.ik = snap_input_tick(raw, tick);
    s.d = raw.d;
    out = std::move(s);
    return Error::ok;
}

Error encode_snap(const Snap& s, std::uint64_t tick, const SnapFields* base, Bytes& out) {
    // Numbers within +-2^53 first, so that the differences below cannot overflow.
    auto within = [](std::int64_t x) { return x > -LIMIT && x < LIMIT; };
    if (!within(s.v) || !within(s.ts) || (s.r && !within(*s.r)) || (s.i && !within(*s.i)) ||
        (s.ik && !within(*s.ik)) || tick >= TICK_LIMIT)
        return Error::bad_field;
    if (base && (!within(base->v) || !within(base->ts) || (base->r && !within(*base->r))))
        return Error::bad_field;
    std::int64_t v = s.v, ts = s.ts;
    std::uint64_t r = 0;
    if (!base) {
        if (s.r) {
            if (*s.r < 0) return Error::bad_field;
            r = static_cast<std::uint64_t>(*s.r) + 1;
        }
    } else {
        v -= base->v;
        ts -= base->ts;
        if (s.r) r = zigzag(s.ts + *s.r - base->ts - base->r.value_or(0)) + 1;
    }
    std::uint64_t i = s.i ? zigzag(*s.i) + 1 : 0;
    std::uint64_t ik = s.ik ? zigzag(*s.ik - static_cast<std::int64_t>(tick)) + 1 : 0;
    if (v < 0 || v >= LIMIT || ts < 0 || ts >= LIMIT)
        return Error::bad_field;
    for (std::uint64_t x : {r, i, ik})
        if (x >= PACKED_SNAP_LIMIT) return Error::bad_field;
    Bytes b;
    b.push_back(PACKED_SNAP);
    for (std::uint64_t x : {static_cast<std::uint64_t>(v), static_cast<std::uint64_t>(ts), r, i, ik})
        write_number(x, b);
    b.insert(b.end(), s.d.begin(), s.d.end());
    out = std::move(b);
    return Error::ok;
}

}  // namespace vinom
