// Delta snapshots (docs/protocol.md section 16): the client's decoder of the
// `d` of a `snap` message, the same rules as vinom/rooms/delta.py and the web
// client's delta.js.
//
// A snapshot is [tick, distance, checksum, body]: the view of `tick`, in full
// (distance nil) or as a patch against the view of tick - distance, which the
// client rebuilt before. Quantised numbers (the welcome's `q`) are rebuilt with
// the host's IEEE operations (an integer n at a path of step s is n / (1 / s)),
// so the view is the host's exactly, and the optional checksum (CRC-32 of the
// view's canonical msgpack encoding, 16.4) proves it. A receiver given the
// game's view schema (the welcome's `vs`, schema.hpp) reads 16.8's schema
// snapshots, which the host sends to such a game's every session, and shows
// the rows that wait in them carried on (carry_waiting).
//
//   vinom::Quantisation q;
//   vinom::Quantisation::from_rules(welcome["q"], q);
//   vinom::SnapshotReceiver receiver(q);  // with the welcome's `vs`: (q, schema)
//   vinom::Snap snap;  // v, ts, r, i, ik resolved (messages.hpp)
//   vinom::Snapshot s;
//   if (receiver.receive_snap(message, snap, s) == vinom::Error::ok) show(s.tick, s.view);
//
// Sans-I/O, and total: any bytes give a Snapshot or an Error, never a crash.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>

#include "vinom/messages.hpp"
#include "vinom/schema.hpp"

namespace vinom {

// Deepest nesting of a view (as the host's).
constexpr std::size_t MAX_VIEW_DEPTH = 64;
// The views a receiver keeps by tick (the host keeps the last 32 it sent).
constexpr std::size_t RECEIVER_HISTORY = 64;

// A game's quantisation rules (16.3), as the welcome's `q` carries them.
class Quantisation {
public:
    struct Node;  // one step of the compiled patterns (src/delta.cpp)

    Quantisation() = default;  // no rules
    // `rules`: an array of [pattern, step or "f32"] pairs, or an object pattern
    // -> rule, or null. bad_field for a rule that is not a positive step or
    // "f32", an empty segment, or more than MAX_RULES rules.
    static Error from_rules(const Value& rules, Quantisation& out);
    static constexpr std::size_t MAX_RULES = 1024;

    const Node* root() const { return root_.get(); }

private:
    std::shared_ptr<Node> root_;
};

// One decoded snapshot.
struct Snapshot {
    std::uint64_t tick = 0;
    std::optional<std::uint64_t> baseline_tick;  // none: sent in full
    std::optional<std::uint32_t> checksum;       // as sent
    Value view;
};

// The views a client rebuilt, by tick.
using Baselines = std::map<std::uint64_t, Value>;

// Decodes a snapshot against `baselines`. Errors: bad_field (corrupt: not a
// snapshot, a patch that does not fit its baseline, a value no view holds),
// unknown_baseline (its baseline is not held), checksum_mismatch (when `verify`
// and the snapshot carries a checksum the rebuilt view does not have).
Error decode_snapshot(View data, const Baselines& baselines, const Quantisation& q,
                      Snapshot& out, bool verify = true);

// CRC-32 of bytes: zlib's (polynomial 0xEDB88320 reflected, initial and final
// xor 0xFFFFFFFF).
std::uint32_t crc32(View data);
// The canonical msgpack encoding of a view (16.4): keys sorted by code point,
// integral floats of at most 2^53 - 1 (and -0.0) as integers, others float 64.
// bad_field for a view deeper than MAX_VIEW_DEPTH.
Error canonical_encoding(const Value& view, Bytes& out);
// The checksum of a view: CRC-32 of its canonical encoding.
Error view_checksum(const Value& view, std::uint32_t& out);

// The client's side: the views it rebuilt by tick (the last `capacity`), the
// newest applied tick (the one its inputs acknowledge), and what it dropped.
class SnapshotReceiver {
public:
    struct Drops {
        std::uint64_t corrupt = 0;
        std::uint64_t unknown_baseline = 0;
        std::uint64_t checksum = 0;
        std::uint64_t stale = 0;  // not newer than the newest applied
    };

    explicit SnapshotReceiver(Quantisation q = {}, std::size_t capacity = RECEIVER_HISTORY);
    // One that reads schema snapshots (16.8) too, of `schema` (none: as above).
    SnapshotReceiver(Quantisation q, std::optional<ViewSchema> schema,
                     std::size_t capacity = RECEIVER_HISTORY);

    // A `snap` message (messages.hpp, section 14): its numbers resolved against
    // the snap of its d's baseline tick (kept for every snap applied here) into
    // `snap`, its snapshot applied as receive does: ok, `snap` and `out`. Bytes
    // that are not a snap get decode_snap's Error, not counted; any other Error
    // is a snap dropped and counted (one whose baseline's numbers are not held,
    // as unknown_baseline). Once d's header was read, `snap.ik` and `snap.i` are
    // set whatever its fate.
    Error receive_snap(View message, Snap& snap, Snapshot& out);
    // Applies a snapshot (a snap's d) newer than the newest applied one: ok and
    // `out`; any other gives its Error (stale for one not newer), is dropped and
    // counted. With a schema, one whose first byte is SCHEMA_FORMAT is a schema
    // snapshot. A snapshot applied so keeps no snap numbers: a snap against it
    // is dropped (receive_snap).
    Error receive(View data, Snapshot& out);

    std::optional<std::uint64_t> newest() const { return newest_; }
    // The view shown for `tick` (a schema snapshot's rows that wait carried
    // on, 16.8), or null.
    const Value* view(std::uint64_t tick) const;
    // A schema snapshot's wire view as received (the baseline of later deltas)
    // and the rows that waited in it (null: none listed), for `tick`.
    const SchemaWireView* wire(std::uint64_t tick) const;
    const SchemaWaiting* waiting(std::uint64_t tick) const;
    // The snap applied for `tick` (receive_snap; d left empty), or null.
    const Snap* snap(std::uint64_t tick) const;
    const Drops& drops() const { return drops_; }
    std::uint64_t applied() const { return applied_; }
    const ViewSchema* schema() const { return schema_ ? &*schema_ : nullptr; }

private:
    Error receive_schema(View data, Snapshot& out);
    Error dropped(Error e);
    void apply_view(Snapshot s, Snapshot& out);
    Error show_waiting(Snapshot& s, const SchemaWireView& wire, const SchemaWaiting& waiting);
    void keep_wire(const Snapshot& s, SchemaWireView wire, SchemaWaiting waiting);

    Quantisation q_;
    std::size_t capacity_;
    Baselines views_;
    std::optional<ViewSchema> schema_;
    SchemaBaselines wires_;  // the wire views of the schema snapshots applied
    // The rows that waited in those of wires_ that had any, by tick (nullopt:
    // a full one, which lists none).
    SchemaWaited waited_;
    std::map<std::uint64_t, Snap> snaps_;  // the snaps applied, by tick (d empty)
    std::optional<std::uint64_t> newest_;
    Drops drops_;
    std::uint64_t applied_ = 0;
};

}  // namespace vinom
