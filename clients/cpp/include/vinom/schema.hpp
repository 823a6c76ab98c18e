// Schema snapshots (docs/protocol.md section 16.8): the client's decoder of
// the `d` of a `snap` that starts with 0x01 rather than 16.1's 0x94, the same
// rules as vinom/rooms/schema.py (its reference) and as strict.
//
// A game that declares its view field by field sends the declaration in the
// welcome (`vs`) and sends every session, from its first snap, frames
// whose body is bit-packed: each field's value whole, or against the wire view
// of an acknowledged tick (one bit when unchanged, a small difference in 8 or
// 14 bits, rows matched by id). The rebuilt view is the Value the 16.1 decoder
// gives (a map in declaration order; fixed numbers n / (1 / step); rows in
// ascending id), so the 16.4 checksum and everything after the receiver are
// the same for both formats.
//
//   vinom::ViewSchema schema;
//   if (vinom::ViewSchema::from_declaration(welcome["vs"], schema) == vinom::Error::ok)
//       receiver = vinom::SnapshotReceiver(q, schema);
//
// Sans-I/O, and total: any bytes give a wire view or an Error, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vinom/messages.hpp"

namespace vinom {

// The first byte of a schema snapshot (a 16.1 snapshot starts with 0x94).
constexpr std::uint8_t SCHEMA_FORMAT = 0x01;

struct SchemaRow;
struct Snapshot;  // delta.hpp

// One field's value as it travels: int and fixed the wire integer n (a fixed
// value is n steps), bool 0 or 1, any its msgpack bytes, rows by ascending id.
struct SchemaWire {
    std::int64_t n = 0;
    Bytes bytes;
    std::vector<SchemaRow> rows;

    bool operator==(const SchemaWire& other) const;
    bool operator!=(const SchemaWire& other) const { return !(*this == other); }
};

// One row of a rows field: its id (the first column) and the other columns.
struct SchemaRow {
    std::int64_t id = 0;
    std::vector<SchemaWire> columns;

    bool operator==(const SchemaRow& other) const {
        return id == other.id && columns == other.columns;
    }
};

// A view as it travels: one value per field, in declaration order.
using SchemaWireView = std::vector<SchemaWire>;
// The wire views a client applied, by tick: a delta's baselines.
using SchemaBaselines = std::map<std::uint64_t, SchemaWireView>;

// A game's declared view (the welcome's `vs`), ready to decode.
class ViewSchema {
public:
    // The limits of vinom/rooms/schema.py: a declaration past them is refused,
    // a frame past them corrupt.
    static constexpr int MAX_BITS = 53;
    static constexpr std::size_t MAX_ROWS = 65535;
    static constexpr std::size_t MAX_COLUMNS = 32;
    static constexpr std::size_t MAX_FIELDS = 64;
    // A changed number wider than SMALL_BITS travels as a zig-zag difference in
    // SMALL_BITS, in MEDIUM_BITS when wider than that, or whole.
    static constexpr int SMALL_BITS = 7;
    static constexpr int MEDIUM_BITS = 12;

    enum class Kind { integer, fixed, boolean, any, rows };

    struct Field {
        Kind kind = Kind::boolean;
        std::int64_t lo = 0, hi = 0;  // int, fixed: the wire integers' range
        std::uint64_t span = 0;       // hi - lo
        int bits = 0;                 // the width of a whole value (int, fixed, bool)
        double scale = 0;             // fixed: 1 / step, one IEEE division
        std::vector<Field> columns;   // rows: the id's (an int) first
    };

    ViewSchema() = default;

    // `declaration`: [[name, kind], ...] (or an object name -> kind, in its
    // order), a kind ["int", lo, hi], ["fixed", lo, hi, step], ["bool"],
    // ["any"] or ["rows", [kind, ...]]. bad_field for anything the host would
    // not declare: then the client reads 16.1 snapshots only.
    static Error from_declaration(const Value& declaration, ViewSchema& out);

    const std::vector<std::pair<std::string, Field>>& fields() const { return fields_; }

    // A frame's body (16.8), in full (`base` null) or against `base`: bad_field
    // for one that breaks any rule (cut short, bits or bytes after it, a value
    // beyond its range, rows out of order or a row id already there, an `any`
    // that is not one msgpack value a view holds).
    Error decode_body(const SchemaWireView* base, View body, SchemaWireView& out) const;
    // The view a client sees: bad_field for a wire view not of this schema.
    Error rebuild(const SchemaWireView& wire, Value& out) const;

private:
    std::vector<std::pair<std::string, Field>> fields_;
};

// A schema snapshot's frame: 01, tick and distance (LEB128; distance 0: full),
// a flags byte (01: a CRC-32 follows, little-endian), then the body.
struct SchemaFrame {
    std::uint64_t tick = 0;
    std::uint64_t distance = 0;
    std::optional<std::uint32_t> checksum;
    View body;  // within the bytes parsed
};
Error parse_schema_frame(View data, SchemaFrame& out);

// ZigZag's inverse (16.8, and a snap's numbers): 0, 1, 2, 3, ... -> 0, -1, 1, -2, ...
std::int64_t unzigzag(std::uint64_t z);

// One schema snapshot decoded against `baselines`: its tick, baseline and
// checksum in `out` with the rebuilt view, and its wire view (the baseline of
// the next ones) in `wire`. Errors as decode_snapshot's (delta.hpp): bad_field
// (corrupt), unknown_baseline, checksum_mismatch (when `verify`).
Error decode_schema_snapshot(const ViewSchema& schema, View data,
                             const SchemaBaselines& baselines, Snapshot& out,
                             SchemaWireView& wire, bool verify = true);
// decode_schema_snapshot of a frame parse_schema_frame read already (a receiver
// reads its tick first, to drop a stale one undecoded).
Error decode_schema_frame(const ViewSchema& schema, const SchemaFrame& frame,
                          const SchemaBaselines& baselines, Snapshot& out,
                          SchemaWireView& wire, bool verify = true);

}  // namespace vinom
