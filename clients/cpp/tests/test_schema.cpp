// Schema snapshots (docs/protocol.md 16.8) beyond the vectors (test_vectors.cpp
// decodes those): frames built bit by bit here, as vinom/rooms/schema.py's
// BitWriter writes them, against the vectors' declaration. What a hostile or
// buggy host could send instead (cut short, bits or bytes after the body, a
// value beyond its range, rows out of order) is refused as corrupt, as the
// Python decoder refuses it; declarations the host would not send are refused
// (the client then reads 16.1's snapshots only); the receiver counts its drops,
// and reads snaps (game protocol 4: relative packed) with a schema body, their
// numbers against those of the snap of its baseline, in C++ and through the C
// ABI; the inputs ask for nothing. Rows that wait (flag 02) are read, and shown
// carried on as vinom/rooms/carrying.py shows them (its values, computed with
// it, written here).
#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"
#include "vinom.h"
#include "vinom/delta.hpp"
#include "vinom/realtime.hpp"
#include "vinom/schema.hpp"

using vinom::Bytes;
using vinom::Error;
using vinom::Value;
using vt::hex;
using vt::unhex;

namespace {

// Bits most significant first, the last byte padded with zeros (schema.py's BitWriter).
struct BitWriter {
    Bytes out;
    unsigned acc = 0;
    int count = 0;

    void put(std::uint64_t value, int bits) {
        for (int i = bits - 1; i >= 0; --i) {
            acc = (acc << 1) | static_cast<unsigned>((value >> i) & 1);
            if (++count == 8) {
                out.push_back(static_cast<std::uint8_t>(acc));
                acc = 0;
                count = 0;
            }
        }
    }
    void uvar(std::uint64_t value) {
        for (; value > 0x7f; value >>= 7) put(0x80 | (value & 0x7f), 8);
        put(value, 8);
    }
    // The zero bits that pad the last byte.
    int padding() const { return count ? 8 - count : 0; }
    Bytes finish() const {
        Bytes b = out;
        if (count) b.push_back(static_cast<std::uint8_t>(acc << (8 - count)));
        return b;
    }
};

// A frame; `waits`: flag 02, the rows carry wait bits.
Bytes frame(std::uint64_t tick, std::uint64_t distance, std::optional<std::uint32_t> checksum,
            const Bytes& body, bool waits = false) {
    Bytes out{vinom::SCHEMA_FORMAT};
    for (std::uint64_t v : {tick, distance}) {
        for (; v > 0x7f; v >>= 7) out.push_back(static_cast<std::uint8_t>(0x80 | (v & 0x7f)));
        out.push_back(static_cast<std::uint8_t>(v));
    }
    out.push_back(static_cast<std::uint8_t>((checksum ? 1 : 0) | (waits ? 2 : 0)));
    if (checksum)
        for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::uint8_t>(*checksum >> (8 * i)));
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

// The vectors' declaration: hp int [0, 100] (7 bits), score int [-1000, 100000]
// (17), alive bool, name any, units rows of id int [0, 255] (8), x fixed
// [-500, 500] step 0.01 (n in [-50000, 50000], 17 bits), y fixed [0, 10] step
// 0.5 (n in [0, 20], 5 bits).
const Value& declaration() { return vt::vectors().at("schema").at("schema"); }
const Value& schema_vector(const std::string& name) { return vt::vector("schema", name); }

vinom::ViewSchema schema() {
    vinom::ViewSchema s;
    EXPECT_EQ(vinom::ViewSchema::from_declaration(declaration(), s), Error::ok);
    return s;
}

struct Unit {
    std::int64_t id, x, y;  // wire integers: x and y in steps
};

void put_unit(BitWriter& w, const Unit& u) {
    w.put(static_cast<std::uint64_t>(u.id), 8);
    w.put(static_cast<std::uint64_t>(u.x + 50000), 17);
    w.put(static_cast<std::uint64_t>(u.y), 5);
}

// A full body of the vectors' schema; the numbers as they go (an offset from
// lo, even one beyond hi when the test wants it).
BitWriter full(std::int64_t hp, std::int64_t score, bool alive, const Bytes& name,
               const std::vector<Unit>& units) {
    BitWriter w;
    w.put(static_cast<std::uint64_t>(hp), 7);
    w.put(static_cast<std::uint64_t>(score + 1000), 17);
    w.put(alive ? 1 : 0, 1);
    w.uvar(name.size());
    for (std::uint8_t b : name) w.put(b, 8);
    w.uvar(units.size());
    for (const Unit& u : units) put_unit(w, u);
    return w;
}

const Bytes ANN = {0xa3, 'a', 'n', 'n'};  // "ann" in msgpack

// The vector "schema_full" (tick 1): the baseline of the deltas below.
vinom::SchemaBaselines tick_one() {
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    Bytes full = unhex(schema_vector("schema_full").at("hex"));
    EXPECT_EQ(vinom::decode_schema_snapshot(schema(), full, {}, s, wire), Error::ok);
    return {{1, wire}};
}

Error decode(const Bytes& data, const vinom::SchemaBaselines& baselines = {}) {
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    return vinom::decode_schema_snapshot(schema(), data, baselines, s, wire);
}

}  // namespace

TEST(Schema, TheBitWriterHereWritesTheVectorsBodies) {
    // So the malformed frames below are the vectors' with one thing wrong.
    BitWriter w = full(90, 10, true, ANN, {{3, -450, 1}, {7, 123, 4}});
    EXPECT_EQ(hex(frame(1, 0, std::nullopt, w.finish())),
              schema_vector("schema_full").at("hex"));
    // Tick 2 against 1: score +2 in 7 bits; unit 3 unchanged, unit 7's x +227
    // steps in 12 bits; unit 9 added.
    BitWriter d;
    d.put(0, 1);                                  // hp unchanged
    d.put(1, 1), d.put(4, 8);                     // score changed: 0, zigzag(2) in 7 bits
    d.put(0, 1), d.put(0, 1);                     // alive, name unchanged
    d.put(1, 1);                                  // units changed:
    d.put(0b10, 2);                               //   unit 3 unchanged
    d.put(0b11, 2);                               //   unit 7 changed:
    d.put(1, 1), d.put(0b10, 2), d.put(454, 12);  //     x: 10, zigzag(227) in 12 bits
    d.put(0, 1);                                  //     y unchanged
    d.uvar(1), put_unit(d, {9, 0, 20});           //   one added, whole
    EXPECT_EQ(hex(frame(2, 1, std::nullopt, d.finish())),
              schema_vector("schema_delta").at("hex"));
}

TEST(Schema, MalformedFramesAreRefused) {
    vinom::SchemaBaselines one = tick_one();
    // Every truncation of every vector, header and body; every flipped bit
    // decodes or is refused (ASan and UBSan watch the rest).
    for (const auto& v : vt::vectors().at("schema").at("vectors")) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        Bytes bytes = unhex(v.at("hex"));
        vinom::SchemaBaselines baselines;
        if (!v.at("baseline").is_null()) {
            // Its baseline's wire view: the chain of vectors up to it.
            std::vector<std::string> chain;
            for (Value name = v.at("baseline"); !name.is_null();
                 name = schema_vector(name).at("baseline"))
                chain.insert(chain.begin(), name.get<std::string>());
            for (const std::string& name : chain) {
                vinom::Snapshot s;
                vinom::SchemaWireView wire;
                ASSERT_EQ(vinom::decode_schema_snapshot(
                              schema(), unhex(schema_vector(name).at("hex")), baselines, s,
                              wire),
                          Error::ok);
                baselines[s.tick] = wire;
            }
        }
        ASSERT_EQ(decode(bytes, baselines), Error::ok);
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            Bytes cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
            EXPECT_EQ(decode(cut, baselines), Error::bad_field) << n;
            for (int bit = 0; bit < 8; ++bit) {
                Bytes flipped = bytes;
                flipped[n] ^= static_cast<std::uint8_t>(1 << bit);
                (void)decode(flipped, baselines);
            }
        }
        // A byte after the body.
        Bytes longer = bytes;
        longer.push_back(0);
        EXPECT_EQ(decode(longer, baselines), Error::bad_field);
    }

    // The vector "schema_full" with one thing wrong at a time.
    std::vector<Unit> units = {{3, -450, 1}, {7, 123, 4}};
    ASSERT_EQ(decode(frame(1, 0, std::nullopt, full(90, 10, true, ANN, units).finish())),
              Error::ok);
    struct Case {
        const char* why;
        BitWriter body;
    };
    BitWriter long_name;
    long_name.put(90, 7), long_name.put(1010, 17), long_name.put(1, 1), long_name.uvar(200);
    long_name.put(0xa3, 8);
    BitWriter eleven_groups;
    eleven_groups.put(90, 7), eleven_groups.put(1010, 17), eleven_groups.put(1, 1);
    for (int i = 0; i < 10; ++i) eleven_groups.put(0x80, 8);
    eleven_groups.put(0, 8);
    BitWriter too_many_rows;
    too_many_rows.put(90, 7), too_many_rows.put(1010, 17), too_many_rows.put(1, 1);
    too_many_rows.uvar(1), too_many_rows.put(0xc0, 8), too_many_rows.uvar(65536);
    for (Case& c : std::vector<Case>{
             {"hp beyond its range (101 of 0..100)", full(101, 10, true, ANN, units)},
             {"score beyond its range", full(90, 100001, true, ANN, units)},
             {"a fixed x beyond its range", full(90, 10, true, ANN, {{3, 50001, 1}})},
             {"a fixed y beyond its range", full(90, 10, true, ANN, {{3, 0, 21}})},
             {"rows out of id order", full(90, 10, true, ANN, {{7, 123, 4}, {3, -450, 1}})},
             {"two rows of one id", full(90, 10, true, ANN, {{3, 0, 1}, {3, 0, 1}})},
             {"an any that is no msgpack value", full(90, 10, true, {0xc1}, units)},
             {"an any of no bytes", full(90, 10, true, {}, units)},
             {"an any of two values", full(90, 10, true, {0x01, 0x02}, units)},
             {"an any with an ext", full(90, 10, true, {0xd4, 0x01, 0x00}, units)},
             {"an any with an int map key", full(90, 10, true, {0x81, 0x01, 0x01}, units)},
             {"an any longer than the body", long_name},
             {"a length of 11 groups", eleven_groups},
             {"more rows than a snapshot holds", too_many_rows},
         }) {
        EXPECT_EQ(decode(frame(1, 0, std::nullopt, c.body.finish())), Error::bad_field) << c.why;
    }

    // Bits after the body: a padding bit set, a byte more.
    BitWriter w = full(90, 10, true, ANN, units);
    ASSERT_GT(w.padding(), 0);
    Bytes body = w.finish();
    body.back() |= 1;
    EXPECT_EQ(decode(frame(1, 0, std::nullopt, body)), Error::bad_field);
    body = w.finish();
    body.push_back(0);
    EXPECT_EQ(decode(frame(1, 0, std::nullopt, body)), Error::bad_field);

    // Deltas against tick 1 (score 10, units 3 and 7).
    auto delta = [&](auto&& write) {
        BitWriter d;
        write(d);
        return decode(frame(2, 1, std::nullopt, d.finish()), one);
    };
    EXPECT_EQ(delta([](BitWriter& d) { d.put(0, 5); }), Error::ok);  // nothing changed
    // Score 10 - 2048: the 12-bit difference takes it below -1000.
    EXPECT_EQ(delta([](BitWriter& d) {
                  d.put(0, 1), d.put(1, 1), d.put(0b10, 2), d.put(4095, 12), d.put(0, 3);
              }),
              Error::bad_field);
    // Score whole (flags 11) beyond its range.
    EXPECT_EQ(delta([](BitWriter& d) {
                  d.put(0, 1), d.put(1, 1), d.put(0b11, 2), d.put(101001, 17), d.put(0, 3);
              }),
              Error::bad_field);
    // A row added with the id of one kept.
    EXPECT_EQ(delta([](BitWriter& d) {
                  d.put(0, 4), d.put(1, 1), d.put(0b10, 2), d.put(0b10, 2);
                  d.uvar(1), put_unit(d, {7, 0, 0});
              }),
              Error::bad_field);
    // Rows added out of id order.
    EXPECT_EQ(delta([](BitWriter& d) {
                  d.put(0, 4), d.put(1, 1), d.put(0b10, 2), d.put(0b10, 2);
                  d.uvar(2), put_unit(d, {9, 0, 0}), put_unit(d, {8, 0, 0});
              }),
              Error::bad_field);
    // ... and in order, between and after those kept, they fit: rows by id.
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    BitWriter ok;
    ok.put(0, 4), ok.put(1, 1), ok.put(0, 1), ok.put(0b10, 2);  // unit 3 gone, 7 kept
    ok.uvar(2), put_unit(ok, {5, 1, 2}), put_unit(ok, {200, -50000, 20});
    ASSERT_EQ(vinom::decode_schema_snapshot(schema(), frame(2, 1, std::nullopt, ok.finish()), one,
                                            s, wire),
              Error::ok);
    EXPECT_EQ(s.view.at("units").dump(), "[[5,0.01,1.0],[7,1.23,2.0],[200,-500.0,10.0]]");
    // Bits after a delta's body.
    EXPECT_EQ(delta([](BitWriter& d) { d.put(0, 5), d.put(1, 1); }), Error::bad_field);

    // The header: flags other than 0 and 1, a distance past the tick, a
    // checksum cut short, a tick of 10 bytes, no flags byte, another format.
    for (const char* bad : {"0101000200", "0101020000", "01010001aabbcc",
                            "01808080808080808080010000", "010100", "0201000000"}) {
        EXPECT_EQ(decode(unhex(bad)), Error::bad_field) << bad;
    }
    // A delta against a tick not held.
    EXPECT_EQ(decode(frame(3, 1, std::nullopt, {0x00}), one), Error::unknown_baseline);
}

TEST(Schema, WideNumbersAreExact) {
    // Integers of up to 53 bits, anywhere in int64's range; a fixed field of
    // 51 bits (2^53 - 1 steps at most).
    const std::int64_t far = -4611686018427387904;  // -2^62
    const std::int64_t max53 = 9007199254740991;    // 2^53 - 1
    Value declared = Value::array({
        Value::array({"a", Value::array({"int", 0, max53})}),
        Value::array({"b", Value::array({"int", far, far + max53})}),
        Value::array({"c", Value::array({"fixed", -1, 1, 1e-15})}),
    });
    vinom::ViewSchema wide;
    ASSERT_EQ(vinom::ViewSchema::from_declaration(declared, wide), Error::ok);
    const auto& c = wide.fields()[2].second;
    EXPECT_EQ(c.bits, 51);
    BitWriter w;
    w.put(static_cast<std::uint64_t>(max53), 53);
    w.put(static_cast<std::uint64_t>(max53), 53);
    w.put(c.span, c.bits);
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    ASSERT_EQ(vinom::decode_schema_snapshot(wide, frame(1, 0, std::nullopt, w.finish()), {}, s,
                                            wire),
              Error::ok);
    EXPECT_EQ(s.view.at("a").get<std::int64_t>(), max53);
    EXPECT_EQ(s.view.at("b").get<std::int64_t>(), far + max53);
    EXPECT_EQ(wire[2].n, c.hi);
    EXPECT_EQ(s.view.at("c").get<double>(), static_cast<double>(c.hi) / (1.0 / 1e-15));
    // A small step down from the top, and one past it.
    vinom::SchemaBaselines baselines{{1, wire}};
    BitWriter d;
    d.put(1, 1), d.put(0, 1), d.put(9, 7), d.put(0, 2);  // a: zigzag(-5); b, c unchanged
    ASSERT_EQ(vinom::decode_schema_snapshot(wide, frame(2, 1, std::nullopt, d.finish()), baselines,
                                            s, wire),
              Error::ok);
    EXPECT_EQ(s.view.at("a").get<std::int64_t>(), max53 - 5);
    BitWriter up;
    up.put(1, 1), up.put(0, 1), up.put(2, 7), up.put(0, 2);  // +1
    EXPECT_EQ(vinom::decode_schema_snapshot(wide, frame(2, 1, std::nullopt, up.finish()),
                                            baselines, s, wire),
              Error::bad_field);
    // 2^53 values are a field of 54 bits: refused.
    vinom::ViewSchema refused;
    EXPECT_EQ(vinom::ViewSchema::from_declaration(
                  Value::parse(R"([["a", ["int", 0, 9007199254740992]]])"), refused),
              Error::bad_field);
}

TEST(Schema, DeclarationsTheHostWouldNotSendAreRefused) {
    vinom::ViewSchema s;
    for (const char* bad : {
             "null", "7", "\"x\"", "[]", "{}", "[[\"a\"]]", "[[1, [\"bool\"]]]",
             "[[\"a\", \"bool\"]]",
             "[[\"a\", [\"nope\"]]]", "[[\"a\", []]]", "[[\"a\", [\"int\", 0]]]",
             "[[\"a\", [\"int\", 1, 0]]]", "[[\"a\", [\"int\", 0.0, 1]]]",
             "[[\"a\", [\"int\", true, 1]]]", "[[\"a\", [\"int\", 0, 18446744073709551615]]]",
             "[[\"a\", [\"fixed\", 0, 1, 0]]]", "[[\"a\", [\"fixed\", 0, 1, -1]]]",
             "[[\"a\", [\"fixed\", 1, 0, 0.5]]]", "[[\"a\", [\"fixed\", 0.1, 0.4, 0.5]]]",
             "[[\"a\", [\"fixed\", 0, 1, \"0.5\"]]]", "[[\"a\", [\"fixed\", 0, 1e300, 1e-300]]]",
             "[[\"a\", [\"bool\", 1]]]", "[[\"a\", [\"any\", 1]]]", "[[\"a\", [\"rows\", []]]]",
             "[[\"a\", [\"rows\", [[\"bool\"]]]]]",
             "[[\"a\", [\"rows\", [[\"int\", 0, 1], [\"rows\", [[\"int\", 0, 1]]]]]]]",
             "[[\"a\", [\"bool\"]], [\"a\", [\"bool\"]]]",
         }) {
        EXPECT_EQ(vinom::ViewSchema::from_declaration(Value::parse(bad), s), Error::bad_field)
            << bad;
    }
    // 32 columns and 64 fields at most.
    Value columns = Value::array({Value::array({"int", 0, 1})});
    for (int i = 1; i < 33; ++i) columns.push_back(Value::array({"bool"}));
    EXPECT_EQ(vinom::ViewSchema::from_declaration(
                  Value::array({Value::array({"r", Value::array({"rows", columns})})}), s),
              Error::bad_field);
    columns.erase(columns.size() - 1);
    EXPECT_EQ(vinom::ViewSchema::from_declaration(
                  Value::array({Value::array({"r", Value::array({"rows", columns})})}), s),
              Error::ok);
    Value many = Value::array();
    for (int i = 0; i < 65; ++i)
        many.push_back(Value::array({"f" + std::to_string(i), Value::array({"bool"})}));
    EXPECT_EQ(vinom::ViewSchema::from_declaration(many, s), Error::bad_field);
    many.erase(many.size() - 1);
    EXPECT_EQ(vinom::ViewSchema::from_declaration(many, s), Error::ok);
    // A map of name -> kind is a declaration too (in its order), and a field
    // of one value takes no bits.
    ASSERT_EQ(vinom::ViewSchema::from_declaration(
                  Value::parse(R"({"k": ["int", 5, 5], "on": ["bool"]})"), s),
              Error::ok);
    vinom::Snapshot snapshot;
    vinom::SchemaWireView wire;
    ASSERT_EQ(vinom::decode_schema_snapshot(s, frame(1, 0, std::nullopt, {0x80}), {}, snapshot,
                                            wire),
              Error::ok);
    EXPECT_EQ(snapshot.view.dump(), R"({"k":5,"on":true})");
}

TEST(Schema, ReceiverAppliesSchemaSnapshotsAndCountsDrops) {
    auto hex_of = [](const char* name) { return unhex(schema_vector(name).at("hex")); };
    vinom::SnapshotReceiver r(vinom::Quantisation(), schema());
    ASSERT_NE(r.schema(), nullptr);
    vinom::Snapshot s;
    EXPECT_EQ(r.receive(hex_of("schema_delta"), s), Error::unknown_baseline);
    EXPECT_EQ(r.receive(unhex("0101"), s), Error::bad_field);
    ASSERT_EQ(r.receive(hex_of("schema_full"), s), Error::ok);
    EXPECT_EQ(r.receive(hex_of("schema_full"), s), Error::stale);
    ASSERT_EQ(r.receive(hex_of("schema_delta"), s), Error::ok);
    // A checksum one off is dropped; the right one is then applied.
    Bytes off = hex_of("schema_delta_checksum");
    off[4] ^= 1;  // the checksum's first byte (01 05 03 01 xx xx xx xx)
    EXPECT_EQ(r.receive(off, s), Error::checksum_mismatch);
    ASSERT_EQ(r.receive(hex_of("schema_delta_checksum"), s), Error::ok);
    EXPECT_EQ(s.tick, 5u);
    EXPECT_EQ(s.baseline_tick, 2u);
    ASSERT_NE(r.view(5), nullptr);
    EXPECT_EQ(r.view(5)->dump(), schema_vector("schema_delta_checksum").at("decoded").dump());
    EXPECT_EQ(r.newest(), 5u);
    EXPECT_EQ(r.applied(), 3u);
    EXPECT_EQ(r.drops().unknown_baseline, 1u);
    EXPECT_EQ(r.drops().corrupt, 1u);
    EXPECT_EQ(r.drops().stale, 1u);
    EXPECT_EQ(r.drops().checksum, 1u);

    // 16.1's snapshots are read too (the host sends none to a game with a schema).
    vinom::SnapshotReceiver both(vinom::Quantisation(), schema());
    ASSERT_EQ(both.receive(unhex(vt::vector("delta", "full").at("hex")), s), Error::ok);
    // Without a schema, a schema snapshot is corrupt.
    vinom::SnapshotReceiver plain;
    EXPECT_EQ(plain.receive(hex_of("schema_full"), s), Error::bad_field);
    EXPECT_EQ(plain.drops().corrupt, 1u);

    // It keeps the last `capacity` wire views: a delta against an older one is dropped.
    vinom::SnapshotReceiver small(vinom::Quantisation(), schema(), 1);
    ASSERT_EQ(small.receive(hex_of("schema_full"), s), Error::ok);     // tick 1
    ASSERT_EQ(small.receive(hex_of("schema_clamped"), s), Error::ok);  // tick 6, full
    EXPECT_EQ(small.receive(frame(7, 6, std::nullopt, {0x00}), s), Error::unknown_baseline);
    ASSERT_EQ(small.receive(frame(7, 1, std::nullopt, {0x00}), s), Error::ok);  // nothing changed
    EXPECT_EQ(s.view.dump(), schema_vector("schema_clamped").at("decoded").dump());
}

// The vectors' relative snaps carry schema snapshots of the vectors' declaration:
// "relative_snap_delta"'s d is against "relative_snap_full"'s tick.
TEST(Schema, ReceiverResolvesRelativeSnapsWithASchemaBody) {
    auto hex_of = [](const char* name) { return unhex(vt::vector("messages", name).at("hex")); };
    vinom::SnapshotReceiver r(vinom::Quantisation(), schema());
    vinom::Snap snap;
    vinom::Snapshot s;
    // Its baseline's snap not applied: dropped, counted as an unknown baseline;
    // its ik (against d's tick) is read all the same.
    EXPECT_EQ(r.receive_snap(hex_of("relative_snap_delta"), snap, s), Error::unknown_baseline);
    EXPECT_EQ(snap.ik, 1);
    EXPECT_EQ(r.drops().unknown_baseline, 1u);
    ASSERT_EQ(r.receive_snap(hex_of("relative_snap_full"), snap, s), Error::ok);
    EXPECT_EQ(s.tick, 1u);
    EXPECT_FALSE(s.baseline_tick);
    EXPECT_EQ(snap.v, 7);
    EXPECT_EQ(snap.ts, 1050);
    EXPECT_EQ(snap.r, 119950);
    EXPECT_FALSE(snap.i);
    EXPECT_EQ(snap.ik, 0);
    EXPECT_EQ(hex(snap.d), vt::vector("messages", "relative_snap_full").at("snap").at("d"));
    EXPECT_EQ(s.view.dump(), schema_vector("schema_full").at("decoded").dump());
    ASSERT_NE(r.snap(1), nullptr);
    EXPECT_EQ(r.snap(1)->v, 7);
    ASSERT_EQ(r.receive_snap(hex_of("relative_snap_delta"), snap, s), Error::ok);
    EXPECT_EQ(s.tick, 2u);
    EXPECT_EQ(s.baseline_tick, 1u);
    EXPECT_EQ(snap.v, 9);
    EXPECT_EQ(snap.ts, 1100);
    EXPECT_EQ(snap.r, 119900);
    EXPECT_EQ(snap.i, 4);
    EXPECT_EQ(snap.ik, 1);
    EXPECT_EQ(s.view.dump(), schema_vector("schema_delta").at("decoded").dump());
    EXPECT_EQ(r.receive_snap(hex_of("relative_snap_delta"), snap, s), Error::stale);
    EXPECT_EQ(r.applied(), 2u);
    EXPECT_EQ(r.drops().stale, 1u);
    // A view applied without its snap's numbers (receive: d alone) is no
    // baseline for a relative snap: dropped as an unknown baseline.
    vinom::SnapshotReceiver bare(vinom::Quantisation(), schema());
    ASSERT_EQ(bare.receive(unhex(schema_vector("schema_full").at("hex")), s), Error::ok);
    EXPECT_EQ(bare.receive_snap(hex_of("relative_snap_delta"), snap, s),
              Error::unknown_baseline);
    EXPECT_EQ(bare.drops().unknown_baseline, 1u);
    EXPECT_EQ(bare.snap(1), nullptr);
}

TEST(Schema, InputsAskForNothing) {
    vinom::InputQueue inputs;
    inputs.add(4, Value{{"m", 1}});
    EXPECT_EQ(inputs.message(std::nullopt).dump(), R"({"t":"input","a":null,"x":[[4,{"m":1}]]})");
    EXPECT_EQ(inputs.message(3).dump(), R"({"t":"input","a":3,"x":[[4,{"m":1}]]})");
}

TEST(SchemaCAbi, ASchemaFromTheWelcomeIsRead) {
    vinom_snapshots* snapshots = nullptr;
    ASSERT_EQ(vinom_snapshots_new(nullptr, 0, &snapshots), VINOM_OK);
    EXPECT_EQ(vinom_snapshots_asking(snapshots), 0);
    EXPECT_EQ(vinom_snapshots_asking(nullptr), 0);
    EXPECT_EQ(vinom_snapshots_schema(snapshots, "[[", 2), VINOM_BAD_JSON);
    const std::string bad = R"([["a", ["int", 1, 0]]])";
    EXPECT_EQ(vinom_snapshots_schema(snapshots, bad.data(), bad.size()), VINOM_BAD_FIELD);
    const std::string vs = declaration().dump();
    ASSERT_EQ(vinom_snapshots_schema(snapshots, vs.data(), vs.size()), VINOM_OK);
    EXPECT_EQ(vinom_snapshots_asking(snapshots), 0);  // nothing is asked

    vinom_inputs* inputs = nullptr;
    ASSERT_EQ(vinom_inputs_new(20.0, &inputs), VINOM_OK);
    std::uint8_t out[256];
    std::size_t len = 0;
    Value message;
    ASSERT_EQ(vinom_inputs_message_for(inputs, snapshots, out, sizeof out, &len), VINOM_OK);
    ASSERT_EQ(vinom::decode_message(vinom::View(out, len), message), Error::ok);
    EXPECT_EQ(message.dump(), R"({"t":"input","a":null,"x":[]})");
    EXPECT_EQ(vinom_inputs_message_for(inputs, nullptr, out, sizeof out, &len),
              VINOM_INVALID_ARGUMENT);

    // The vectors' relative snaps, full then delta.
    std::uint64_t tick = 0;
    std::int64_t ack = -2;
    char text[512];
    for (const char* name : {"relative_snap_full", "relative_snap_delta"}) {
        SCOPED_TRACE(name);
        const auto& v = vt::vector("messages", name);
        Bytes bytes = unhex(v.at("hex"));
        ASSERT_EQ(vinom_snapshots_receive(snapshots, bytes.data(), bytes.size(), &tick, &ack),
                  VINOM_OK);
        EXPECT_EQ(tick, v.at("d_tick").get<std::uint64_t>());
        EXPECT_EQ(ack, v.at("snap").at("ik").get<std::int64_t>());
        ASSERT_EQ(vinom_snapshots_state(snapshots, tick, text, sizeof text, &len), VINOM_OK);
        Value state = Value::parse(std::string(text, len));
        EXPECT_EQ(state.at("t"), "state");
        EXPECT_EQ(state.at("v"), v.at("snap").at("v"));
        EXPECT_EQ(state.at("p"), "playing");
        EXPECT_DOUBLE_EQ(state.at("r").get<double>(), v.at("snap").at("r").get<double>() / 1000.0);
        EXPECT_EQ(state.at("k"), tick);
        EXPECT_EQ(state.at("ts"), v.at("snap").at("ts"));
        EXPECT_EQ(state.at("i"), v.at("snap").at("i"));
    }
    ASSERT_EQ(vinom_snapshots_view(snapshots, 2, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(Value::parse(std::string(text, len)).dump(),
              schema_vector("schema_delta").at("decoded").dump());
    EXPECT_EQ(vinom_snapshots_state(snapshots, 3, text, sizeof text, &len), VINOM_UNEXPECTED);
    EXPECT_EQ(vinom_snapshots_state(snapshots, 2, text, 4, &len), VINOM_BUFFER_TOO_SMALL);
    // Applied: the inputs acknowledge the newest; the schema is set.
    ASSERT_EQ(vinom_inputs_message_for(inputs, snapshots, out, sizeof out, &len), VINOM_OK);
    ASSERT_EQ(vinom::decode_message(vinom::View(out, len), message), Error::ok);
    EXPECT_EQ(message.dump(), R"({"t":"input","a":2,"x":[]})");
    EXPECT_EQ(vinom_snapshots_schema(snapshots, vs.data(), vs.size()), VINOM_UNEXPECTED);
    vinom_inputs_free(inputs);
    vinom_snapshots_free(snapshots);
}

TEST(Schema, UnzigzagMapsEveryUnsignedToItsSigned) {
    EXPECT_EQ(vinom::unzigzag(0), 0);
    EXPECT_EQ(vinom::unzigzag(1), -1);
    EXPECT_EQ(vinom::unzigzag(2), 1);
    EXPECT_EQ(vinom::unzigzag(3), -2);
    // The ends of int64, with no overflow on the way.
    EXPECT_EQ(vinom::unzigzag(UINT64_MAX), INT64_MIN);
    EXPECT_EQ(vinom::unzigzag(UINT64_MAX - 1), INT64_MAX);
}

// -- rows that wait (16.8, flag 02) --

namespace {

// Wire units by id: x and y in steps.
using Units = std::map<std::int64_t, std::pair<std::int64_t, std::int64_t>>;
constexpr std::size_t UNITS = 4;  // the units field's position

// The vector "schema_delta" (tick 2: units 3, 7, 9) on its baseline: the
// baseline of "schema_waits".
vinom::SchemaBaselines tick_two() {
    vinom::SchemaBaselines one = tick_one();
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    Bytes delta = unhex(schema_vector("schema_delta").at("hex"));
    EXPECT_EQ(vinom::decode_schema_snapshot(schema(), delta, one, s, wire), Error::ok);
    return {{2, wire}};
}

Error decode_waits(const Bytes& data, const vinom::SchemaBaselines& baselines,
                   vinom::SchemaWaiting& waiting) {
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    return vinom::decode_schema_snapshot(schema(), data, baselines, s, wire, waiting);
}

// A full body of the vectors' schema with these units (hp 90, score 10, alive, "ann").
Bytes units_full(const Units& units) {
    std::vector<Unit> rows;
    for (const auto& [id, xy] : units) rows.push_back({id, xy.first, xy.second});
    return full(90, 10, true, ANN, rows).finish();
}

// A delta body in which only the units change: each baseline row gone,
// unchanged (with its wait bit when `waiting`), or changed (its changed columns
// whole); the rows added; with `waiting`, the ids waiting outside the baseline.
Bytes units_delta(const Units& base, const Units& now,
                  const std::set<std::int64_t>* waiting = nullptr) {
    BitWriter d;
    d.put(0, 4), d.put(1, 1);  // hp, score, alive, name unchanged; units written
    for (const auto& [id, old] : base) {
        auto it = now.find(id);
        if (it == now.end()) {
            d.put(0, 1);
        } else if (it->second == old) {
            d.put(0b10, 2);
            if (waiting) d.put(waiting->count(id), 1);
        } else {
            d.put(0b11, 2);
            const auto [x, y] = it->second;
            if (x == old.first)
                d.put(0, 1);
            else  // x whole: 11 and 17 bits
                d.put(1, 1), d.put(0b11, 2), d.put(static_cast<std::uint64_t>(x + 50000), 17);
            if (y == old.second)
                d.put(0, 1);
            else  // y (5 bits) whole
                d.put(1, 1), d.put(static_cast<std::uint64_t>(y), 5);
        }
    }
    std::vector<Unit> added;
    for (const auto& [id, xy] : now)
        if (!base.count(id)) added.push_back({id, xy.first, xy.second});
    d.uvar(added.size());
    for (const Unit& u : added) put_unit(d, u);
    if (waiting) {
        std::vector<std::int64_t> outside;
        for (std::int64_t id : *waiting)
            if (!base.count(id)) outside.push_back(id);
        d.uvar(outside.size());
        for (std::int64_t id : outside) d.put(static_cast<std::uint64_t>(id), 8);
    }
    return d.finish();
}

// The units of a wire view, and a wire view of the vectors' schema with these units.
Units units_of(const vinom::SchemaWireView& wire) {
    Units out;
    for (const vinom::SchemaRow& row : wire.at(UNITS).rows)
        out[row.id] = {row.columns.at(0).n, row.columns.at(1).n};
    return out;
}

vinom::SchemaWireView wire_of(const Units& units) {
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    EXPECT_EQ(vinom::decode_schema_snapshot(schema(), frame(1, 0, std::nullopt, units_full(units)),
                                            {}, s, wire),
              Error::ok);
    return wire;
}

// A unit moving along a curve (1), one moving along a line (2), one that wraps
// from x 400 to -400 (5), on ticks 10, 12 and 13 (unit 2 waits in 13, unit 5
// is gone from it): the chain below, a full snapshot then deltas.
const Units TICK_10 = {{1, {100, 2}}, {2, {0, 0}}, {5, {40000, 10}}};
const Units TICK_12 = {{1, {160, 4}}, {2, {10, 2}}, {5, {-40000, 10}}};
const Units TICK_13 = {{1, {230, 7}}, {2, {10, 2}}};
// Tick 20 against 13: units 1 and 2 wait, 9 is added, 5 and 7 wait outside the baseline.
const Units TICK_20 = {{1, {230, 7}}, {2, {10, 2}}, {9, {5, 5}}};

}  // namespace

TEST(Schema, TheBitWriterHereWritesTheWaitsVector) {
    // Tick 4 against 2 (units 3, 7, 9), flag 02: unit 3 unchanged and waits,
    // 7 unchanged, 9's x +100 steps in 12 bits; none added; 12 waits outside.
    BitWriter d;
    d.put(0, 4), d.put(1, 1);                     // hp, score, alive, name unchanged; units
    d.put(0b10, 2), d.put(1, 1);                  //   unit 3 unchanged, waits
    d.put(0b10, 2), d.put(0, 1);                  //   unit 7 unchanged, does not
    d.put(0b11, 2);                               //   unit 9 changed:
    d.put(1, 1), d.put(0b10, 2), d.put(200, 12);  //     x: 10, zigzag(100) in 12 bits
    d.put(0, 1);                                  //     y unchanged
    d.uvar(0);                                    //   none added
    d.uvar(1), d.put(12, 8);                      //   one waits outside: 12
    Bytes bytes = frame(4, 2, std::nullopt, d.finish(), true);
    const auto& v = schema_vector("schema_waits");
    EXPECT_EQ(hex(bytes), v.at("hex"));
    vinom::SchemaWaiting waiting;
    ASSERT_EQ(decode_waits(bytes, tick_two(), waiting), Error::ok);
    EXPECT_EQ(waiting, (vinom::SchemaWaiting{{UNITS, {3, 12}}}));
    // The same body without flag 02 is read as another (its bits do not fit).
    EXPECT_EQ(decode(frame(4, 2, std::nullopt, d.finish()), tick_two()), Error::bad_field);
}

TEST(Schema, MalformedWaitsAreRefused) {
    vinom::SchemaBaselines two = tick_two();
    const Units base = units_of(two.at(2));  // 3, 7, 9
    ASSERT_EQ(base.size(), 3u);
    vinom::SchemaWaiting waiting;
    std::set<std::int64_t> waits = {3, 12};
    ASSERT_EQ(decode_waits(frame(4, 2, std::nullopt, units_delta(base, base, &waits), true), two,
                           waiting),
              Error::ok);
    EXPECT_EQ(waiting, (vinom::SchemaWaiting{{UNITS, {3, 12}}}));

    // Flags: 02 in a full snapshot, any bit but 01 and 02.
    vinom::SchemaBaselines none;
    EXPECT_EQ(decode(frame(1, 0, std::nullopt, units_full(base), true)), Error::bad_field);
    Bytes vector = unhex(schema_vector("schema_waits").at("hex"));
    ASSERT_EQ(vector[3], 0x02);  // 01 04 02 flags
    for (std::uint8_t flags : {0x04, 0x06, 0x08, 0x10, 0x80, 0xff}) {
        Bytes bad = vector;
        bad[3] = flags;
        EXPECT_EQ(decode_waits(bad, two, waiting), Error::bad_field) << int(flags);
    }
    // 03: waits and a checksum, of the wire view as received.
    Value decoded = schema_vector("schema_waits").at("decoded");
    std::uint32_t sum = 0;
    ASSERT_EQ(vinom::view_checksum(decoded, sum), Error::ok);
    Bytes summed = frame(4, 2, sum, units_delta(base, {{3, base.at(3)}, {7, base.at(7)},
                                                       {9, {100, base.at(9).second}}},
                                                &waits),
                         true);
    vinom::Snapshot s;
    vinom::SchemaWireView wire;
    ASSERT_EQ(vinom::decode_schema_snapshot(schema(), summed, two, s, wire, waiting), Error::ok);
    EXPECT_EQ(s.view.dump(), decoded.dump());
    EXPECT_EQ(waiting, (vinom::SchemaWaiting{{UNITS, {3, 12}}}));
    summed[4] ^= 1;
    EXPECT_EQ(vinom::decode_schema_snapshot(schema(), summed, two, s, wire, waiting),
              Error::checksum_mismatch);

    // Ids waiting outside the baseline: one in it, one added, out of order,
    // twice, more than a snapshot holds.
    auto outside = [&](std::vector<std::uint64_t> ids, std::uint64_t count, const Units& added) {
        BitWriter d;
        d.put(0, 4), d.put(1, 1);
        for (int i = 0; i < 3; ++i) d.put(0b100, 3);  // 3, 7, 9 unchanged, not waiting
        d.uvar(added.size());
        for (const auto& [id, xy] : added) put_unit(d, {id, xy.first, xy.second});
        d.uvar(count);
        for (std::uint64_t id : ids) d.put(id, 8);
        return decode_waits(frame(4, 2, std::nullopt, d.finish(), true), two, waiting);
    };
    EXPECT_EQ(outside({12}, 1, {}), Error::ok);
    EXPECT_EQ(outside({10, 12}, 2, {{11, {0, 0}}}), Error::ok);
    EXPECT_EQ(waiting, (vinom::SchemaWaiting{{UNITS, {10, 12}}}));
    EXPECT_EQ(outside({7}, 1, {}), Error::bad_field);                // in the baseline
    EXPECT_EQ(outside({11}, 1, {{11, {0, 0}}}), Error::bad_field);   // added
    EXPECT_EQ(outside({12, 10}, 2, {}), Error::bad_field);           // out of order
    EXPECT_EQ(outside({12, 12}, 2, {}), Error::bad_field);           // twice
    EXPECT_EQ(outside({}, 65536, {}), Error::bad_field);             // more than MAX_ROWS
    EXPECT_EQ(outside({12}, 2, {}), Error::bad_field);               // cut short
    // A frame with waits whose rows field is unchanged has no wait bits: none wait.
    ASSERT_EQ(decode_waits(frame(4, 2, std::nullopt, {0x00}, true), two, waiting), Error::ok);
    EXPECT_TRUE(waiting.empty());
    // Without the decoder's `waiting`, the rows are read all the same.
    EXPECT_EQ(decode(vector, two), Error::ok);
    EXPECT_EQ(decode(vector, none), Error::unknown_baseline);
}

TEST(Schema, WaitingRowsAreShownCarriedOn) {
    // Expected values from vinom/rooms/carrying.py's carry_waiting on the same wire views.
    const vinom::ViewSchema sc = schema();
    vinom::SchemaBaselines kept = {{10, wire_of(TICK_10)}, {12, wire_of(TICK_12)},
                                   {13, wire_of(TICK_13)}};
    // 10 full (it lists no waits), 12 a delta without waits, 13 one in which 2 waits.
    vinom::SchemaWaited waited = {{10, std::nullopt}, {13, vinom::SchemaWaiting{{UNITS, {2}}}}};
    const vinom::SchemaWaiting waiting = {{UNITS, {1, 2, 5, 7}}};
    vinom::SchemaWireView wire = wire_of(TICK_20);
    // At 20: unit 1 on the parabola through 10, 12 and 13, at most 4 gaps (of 1)
    // past 13, at 17 (its y clamped to 10.0); unit 2 on the line through 10 and
    // 12 (13: it waited), at 20; unit 5 (outside the baseline) was gone at 13, a
    // delta that does not list it: older samples are of another run, none; 7 has
    // no sample: neither is shown; 9 does not wait.
    vinom::SchemaWireView shown = vinom::carry_waiting(sc, 20, wire, waiting, kept, waited);
    EXPECT_EQ(units_of(shown), (Units{{1, {777, 20}}, {2, {50, 10}}, {9, {5, 5}}}));
    // Only the rows: the other fields as received; the wire view itself untouched.
    for (std::size_t i = 0; i < UNITS; ++i) EXPECT_EQ(shown[i], wire[i]) << i;
    EXPECT_EQ(units_of(wire), TICK_20);
    // At 14: one gap past 13.
    shown = vinom::carry_waiting(sc, 14, wire, waiting, kept, waited);
    EXPECT_EQ(units_of(shown), (Units{{1, {327, 11}}, {2, {20, 4}}, {9, {5, 5}}}));
    // 13 full instead: it lists no waits, so unit 2 there is a sample, and unit 5
    // missing from it is skipped (it may have waited), 12's is its sample.
    vinom::SchemaWaited full_13 = {{10, std::nullopt}, {13, std::nullopt}};
    shown = vinom::carry_waiting(sc, 20, wire, waiting, kept, full_13);
    EXPECT_EQ(units_of(shown),
              (Units{{1, {777, 20}}, {2, {-23, 0}}, {5, {-40000, 10}}, {9, {5, 5}}}));
    // At 13 from 10 and 12 alone: lines; unit 5 outside the baseline shown, its
    // x held (from 400 to -400: more than half its range).
    kept.erase(13);
    shown = vinom::carry_waiting(sc, 13, wire_of(TICK_13), {{UNITS, {1, 2, 5}}}, kept, waited);
    EXPECT_EQ(units_of(shown), (Units{{1, {190, 5}}, {2, {15, 3}}, {5, {-40000, 10}}}));
    // One sample: that row. None: as received.
    kept.erase(10);
    shown = vinom::carry_waiting(sc, 13, wire_of(TICK_13), {{UNITS, {1, 5}}}, kept, {});
    EXPECT_EQ(units_of(shown), (Units{{1, {160, 4}}, {2, {10, 2}}, {5, {-40000, 10}}}));
    shown = vinom::carry_waiting(sc, 13, wire_of(TICK_13), {{UNITS, {1, 5}}}, {}, {});
    EXPECT_EQ(units_of(shown), TICK_13);
    // Only older snapshots are samples.
    shown = vinom::carry_waiting(sc, 12, wire_of(TICK_13), {{UNITS, {1}}},
                                 {{13, wire_of(TICK_12)}}, {});
    EXPECT_EQ(units_of(shown), TICK_13);
    // Far ticks and wide gaps: carried within the column's range (no overflow).
    const std::uint64_t far = std::uint64_t{1} << 62;
    shown = vinom::carry_waiting(sc, UINT64_MAX, wire_of(TICK_13), {{UNITS, {1}}},
                                 {{1, wire_of(TICK_10)}, {far, wire_of(TICK_12)},
                                  {far + 1, wire_of(TICK_13)}},
                                 {});
    const Units far_units = units_of(shown);
    const auto& carried = far_units.at(1);
    EXPECT_GE(carried.first, -50000);
    EXPECT_LE(carried.first, 50000);
    EXPECT_GE(carried.second, 0);
    EXPECT_LE(carried.second, 20);
}

TEST(Schema, ReceiverShowsWaitingRowsCarriedOnAndKeepsTheWireView) {
    // The chain of TICK_10 to TICK_20, then 21 against 20 with nothing changed.
    // Shown views from vinom/rooms/delta.py's SnapshotReceiver fed the same chain.
    const std::set<std::int64_t> at_13 = {2}, at_20 = {1, 2, 5, 7};
    const std::vector<Bytes> chain = {
        frame(10, 0, std::nullopt, units_full(TICK_10)),
        frame(12, 2, std::nullopt, units_delta(TICK_10, TICK_12)),
        frame(13, 1, std::nullopt, units_delta(TICK_12, TICK_13, &at_13), true),
        frame(20, 7, std::nullopt, units_delta(TICK_13, TICK_20, &at_20), true),
        frame(21, 1, std::nullopt, units_delta(TICK_20, TICK_20)),
    };
    const std::vector<std::string> shown = {
        "[[1,1.0,1.0],[2,0.0,0.0],[5,400.0,5.0]]",
        "[[1,1.6,2.0],[2,0.1,1.0],[5,-400.0,5.0]]",
        "[[1,2.3,3.5],[2,0.15,1.5]]",
        // Unit 5 was gone at 13 (a delta that does not list it waiting): not shown.
        "[[1,7.77,10.0],[2,0.5,5.0],[9,0.05,2.5]]",
        // Against 20's wire view as received: unit 2 as sent, not as shown.
        "[[1,2.3,3.5],[2,0.1,1.0],[9,0.05,2.5]]",
    };
    vinom::SnapshotReceiver r(vinom::Quantisation(), schema());
    vinom::Snapshot s;
    for (std::size_t n = 0; n < chain.size(); ++n) {
        SCOPED_TRACE(n);
        ASSERT_EQ(r.receive(chain[n], s), Error::ok);
        EXPECT_EQ(s.view.at("units").dump(), shown[n]);
        EXPECT_EQ(r.view(s.tick)->at("units").dump(), shown[n]);
    }
    // The wire views kept as received, and the rows that waited in them.
    ASSERT_NE(r.wire(20), nullptr);
    EXPECT_EQ(units_of(*r.wire(20)), TICK_20);
    EXPECT_EQ(units_of(*r.wire(13)), TICK_13);
    EXPECT_EQ(r.waiting(10), nullptr);  // full: it lists none
    EXPECT_EQ(r.waiting(12), nullptr);
    ASSERT_NE(r.waiting(13), nullptr);
    EXPECT_EQ(*r.waiting(13), (vinom::SchemaWaiting{{UNITS, {2}}}));
    ASSERT_NE(r.waiting(20), nullptr);
    EXPECT_EQ(*r.waiting(20), (vinom::SchemaWaiting{{UNITS, {1, 2, 5, 7}}}));
    EXPECT_EQ(r.waiting(21), nullptr);

    // A receiver keeping 2 views forgets the waiting rows of those it dropped.
    vinom::SnapshotReceiver small(vinom::Quantisation(), schema(), 2);
    for (std::size_t n = 0; n < chain.size(); ++n) ASSERT_EQ(small.receive(chain[n], s), Error::ok);
    EXPECT_EQ(small.waiting(13), nullptr);
    EXPECT_EQ(small.wire(13), nullptr);
    ASSERT_NE(small.waiting(20), nullptr);
    // With 12 and 13 kept at 20: unit 1 on the line through them, unit 2 as 12
    // has it (13: it waited).
    vinom::SnapshotReceiver two(vinom::Quantisation(), schema(), 2);
    for (std::size_t n = 0; n < 4; ++n) ASSERT_EQ(two.receive(chain[n], s), Error::ok);
    EXPECT_EQ(s.view.at("units").dump(), "[[1,5.1,9.5],[2,0.1,1.0],[9,0.05,2.5]]");

    // Through snaps and the C ABI: the view and the state show the carried rows.
    vinom_snapshots* snapshots = nullptr;
    ASSERT_EQ(vinom_snapshots_new(nullptr, 0, &snapshots), VINOM_OK);
    const std::string vs = declaration().dump();
    ASSERT_EQ(vinom_snapshots_schema(snapshots, vs.data(), vs.size()), VINOM_OK);
    const std::vector<std::uint64_t> ticks = {10, 12, 13, 20, 21};
    std::map<std::uint64_t, vinom::SnapFields> fields;
    char text[1024];
    std::size_t len = 0;
    for (std::size_t n = 0; n < chain.size(); ++n) {
        SCOPED_TRACE(n);
        vinom::Snap snap;
        snap.v = 3;
        snap.ts = static_cast<std::int64_t>(1000 + 50 * ticks[n]);
        snap.d = chain[n];
        fields[ticks[n]] = snap.fields();
        const vinom::SnapFields* base = n ? &fields[ticks[n - 1]] : nullptr;
        Bytes message;
        ASSERT_EQ(vinom::encode_snap(snap, ticks[n], base, message), Error::ok);
        std::uint64_t tick = 0;
        std::int64_t ack = 0;
        ASSERT_EQ(vinom_snapshots_receive(snapshots, message.data(), message.size(), &tick, &ack),
                  VINOM_OK);
        ASSERT_EQ(tick, ticks[n]);
        ASSERT_EQ(vinom_snapshots_view(snapshots, tick, text, sizeof text, &len), VINOM_OK);
        EXPECT_EQ(Value::parse(std::string(text, len)).at("units").dump(), shown[n]);
        ASSERT_EQ(vinom_snapshots_state(snapshots, tick, text, sizeof text, &len), VINOM_OK);
        EXPECT_EQ(Value::parse(std::string(text, len)).at("s").at("units").dump(), shown[n]);
    }
    vinom_snapshots_free(snapshots);
}
