// The application messages of docs/protocol.md section 14: one msgpack value
// per message (but for a snap, read by decode_snap below), written as
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

// The server's snap (section 14; game protocol 4, GAME_PROTOCOL, has no other
// form): the byte PACKED_SNAP (never msgpack's), five unsigned LEB128 numbers
// (each at most 8 bytes, below 2^53), then d, the snapshot of tick k (16.1's,
// first byte 0x94, or 16.8's, 0x01), to the end. The numbers are relative:
// when d is a delta against tick b, v - v_b, ts - ts_b and r as
// zigzag((ts + r) - (ts_b + r_b)) + 1 (0: nil; a nil r_b counts as 0), against
// the snap of tick b, which the client kept (SnapshotReceiver::receive_snap);
// when d is full, v, ts and r + 1 (0: nil). Then zigzag(i) + 1 (0: nil) and ik
// as zigzag(ik - k) + 1 (0: nil). r is in whole ms.
constexpr std::uint8_t PACKED_SNAP = 0xc1;
constexpr std::uint64_t PACKED_SNAP_LIMIT = std::uint64_t{1} << 53;

// A snap as it travels: its numbers as sent, d undecoded.
struct RelativeSnap {
    std::uint64_t v = 0;
    std::uint64_t ts = 0;
    std::uint64_t r = 0;             // 0: nil
    std::optional<std::int64_t> i;   // read already: no base needed
    std::uint64_t ik = 0;            // 0: nil; else zigzag(ik - k) + 1
    Bytes d;                         // the snapshot of section 16, undecoded
};

// A snap's own numbers, kept by tick for the snaps against it: r in whole ms.
struct SnapFields {
    std::int64_t v = 0;
    std::int64_t ts = 0;
    std::optional<std::int64_t> r;
};

// A snap resolved: the numbers of the state it stands for (r in whole ms).
struct Snap {
    std::int64_t v = 0;
    std::int64_t ts = 0;
    std::optional<std::int64_t> r;
    std::optional<std::int64_t> i;
    std::optional<std::int64_t> ik;
    Bytes d;  // the section 16 snapshot, undecoded

    SnapFields fields() const { return SnapFields{v, ts, r}; }
};

// Reads a snap's numbers: truncated for one cut short (or no marker), bad_field
// for a first byte that is not PACKED_SNAP, a number longer than 8 bytes or not
// below 2^53.
Error decode_snap(View data, RelativeSnap& out);
// `raw`'s numbers resolved into `out` (d copied; `out` unchanged on error), `tick`
// the tick its d rebuilds and `base` the fields of the snap of d's baseline tick
// (null: d is full). bad_field when a number resolves beyond 2^53 (or v, ts
// below 0), or `tick` is not below 2^62.
Error resolve_snap(const RelativeSnap& raw, std::uint64_t tick, const SnapFields* base,
                   Snap& out);
// A snap's ik alone, from d's tick (none: nil, or beyond what it could be).
std::optional<std::int64_t> snap_input_tick(const RelativeSnap& raw, std::uint64_t tick);
// A snap written as the host writes it, against `base` (null: d full), `tick`
// d's tick: bad_field when a number does not fit.
Error encode_snap(const Snap& snap, std::uint64_t tick, const SnapFields* base, Bytes& out);

}  // namespace vinom
