// The application messages of docs/protocol.md section 14: one msgpack value
// per message (but for a packed snap, read by decode_snap below), written as
// the host writes them (the smallest encoding of each value, floats as float
// 64), read with the host's rules (exactly one value, no bytes after it, map
// keys strings). Values are nlohmann::ordered_json, so a map keeps its keys'
// order; bin is a JSON binary value.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>

#include "vinom/codec.hpp"

namespace vinom {

using Value = nlohmann::ordered_json;

// The nesting a message may have; deeper is refused (bad_field).
constexpr std::size_t MAX_MESSAGE_DEPTH = 32;

Error encode_message(const Value& message, Bytes& out);
Error decode_message(View data, Value& out);

// The server's snap, [v, ts, r, i, ik, d] (section 14): r in whole ms. Or
// packed, to a client that asks "vs": 1, "pk": 1: the byte PACKED_SNAP (never
// msgpack's), five unsigned LEB128 numbers (each at most 8 bytes, below 2^53)
// v, ts, r + 1, zigzag(i) + 1, ik + 1 (0: nil), then d to the end. decode_snap reads both
// (a number cut short: truncated; too long or too large: bad_field);
// encode_snap writes the array.
constexpr std::uint8_t PACKED_SNAP = 0xc1;
constexpr std::uint64_t PACKED_SNAP_LIMIT = std::uint64_t{1} << 53;
struct Snap {
    std::int64_t v = 0;
    std::int64_t ts = 0;
    std::optional<std::int64_t> r;
    std::optional<std::int64_t> i;
    std::optional<std::int64_t> ik;
    Bytes d;  // the section 16.1 snapshot, undecoded
};
Error encode_snap(const Snap& snap, Bytes& out);
Error decode_snap(View data, Snap& out);

}  // namespace vinom
