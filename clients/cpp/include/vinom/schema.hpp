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
// the same for both formats. A delta under the game's byte budget says which
// rows wait (flag 02: sent as the baseline has them); a SnapshotReceiver shows
// them carried on (carry_waiting below).
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
// The rows that wait in a delta with waits (16.8, flag 02): a rows field's
// position in the schema -> the ids of its rows that wait, as read (those of
// the baseline in ascending id, then those outside it, ascending).
using SchemaWaiting = std::map<std::size_t, std::vector<std::int64_t>>;
// What the snapshots a client kept say of their rows that wait, by tick: the
// rows a delta listed (absent: none), or nullopt for a full snapshot, which
// lists none (a row it lacks may be waiting).
using SchemaWaited = std::map<std::uint64_t, std::optional<SchemaWaiting>>;

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
    // The same, of a frame with waits (flag 02) when `waiting` is given: each
    // unchanged row of a rows field written has its wait bit, and the added
    // rows are followed by the ids that wait outside the baseline; the rows
    // that wait in `waiting` (only a delta has waits: bad_field in full).
    Error decode_body(const SchemaWireView* base, View body, SchemaWireView& out,
                      SchemaWaiting* waiting) const;
    // The view a client sees: bad_field for a wire view not of this schema.
    Error rebuild(const SchemaWireView& wire, Value& out) const;

private:
    std::vector<std::pair<std::string, Field>> fields_;
};

// A schema snapshot's frame: 01, tick and distance (LEB128; distance 0: full),
// a flags byte (01: a CRC-32 follows, little-endian; 02, only in a delta: the
// rows carry wait bits; any other bit is corrupt), then the body.
struct SchemaFrame {
    static constexpr std::uint8_t CHECKSUM = 0x01;
    static constexpr std::uint8_t WAITS = 0x02;

    std::uint64_t tick = 0;
    std::uint64_t distance = 0;
    std::optional<std::uint32_t> checksum;
    bool waits = false;
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
// The same, with the rows that wait (16.8, flag 02) in `waiting` (empty: none).
// `out.view` is the wire view as received (the checksum's); a receiver shows
// the waiting rows carried on (carry_waiting).
Error decode_schema_snapshot(const ViewSchema& schema, View data,
                             const SchemaBaselines& baselines, Snapshot& out,
                             SchemaWireView& wire, SchemaWaiting& waiting, bool verify = true);
Error decode_schema_frame(const ViewSchema& schema, const SchemaFrame& frame,
                          const SchemaBaselines& baselines, Snapshot& out,
                          SchemaWireView& wire, SchemaWaiting& waiting, bool verify = true);

// How far a client carries a waiting row on: at most this many times the
// ticks between its last two samples (16.8's CARRIED_INTERVALS).
constexpr std::uint64_t CARRIED_INTERVALS = 4;

// The wire view a client shows for a schema snapshot of `tick` whose rows
// `waiting` wait (16.8, "Rows that wait"; vinom/rooms/carrying.py's
// carry_waiting, its reference): each such row carried on from its (at most
// three) newest samples among the snapshots applied before, `kept` (tick ->
// wire view) with `waited`: the newest that hold the row and in which it did
// not wait, none older than one that lacks it without listing it waiting (it
// was gone; a full snapshot lists none). Its fixed columns on the parabola
// through three samples (the line through two), evaluated at most
// CARRIED_INTERVALS times the newest two's distance past the newest, added
// left to right, rounded (a tie to even) and clamped to the column's range; a
// fixed column whose samples span more than half its range holds the newest;
// other columns the newest sample's. One sample: that row; none: the row as
// received, and a row outside the baseline is not shown. `wire` itself stays
// the baseline of later deltas; only what is shown is carried.
SchemaWireView carry_waiting(const ViewSchema& schema, std::uint64_t tick,
                             const SchemaWireView& wire, const SchemaWaiting& waiting,
                             const SchemaBaselines& kept, const SchemaWaited& waited);

}  // namespace vinom
