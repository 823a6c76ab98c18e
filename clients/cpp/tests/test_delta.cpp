// The delta group (docs/protocol.md 16.7) both ways: every snapshot decodes
// against its baseline to its view, its checksum verified, and its bytes are
// rebuilt from its tick, distance, the checksum of the expected view and its
// body; the `d` of the snap messages (14.1) decodes to their view. Then what a
// hostile host could send instead of a snapshot.
#include <gtest/gtest.h>

#include "support.hpp"
#include "vinom/delta.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::hex;
using vt::unhex;

namespace {

vinom::Quantisation rules_of(const vinom::Value& rules) {
    vinom::Quantisation q;
    EXPECT_EQ(vinom::Quantisation::from_rules(rules, q), Error::ok) << rules.dump();
    return q;
}

void append(Bytes& out, const vinom::Value& v) {
    Bytes b;
    ASSERT_EQ(vinom::encode_message(v, b), Error::ok);
    out.insert(out.end(), b.begin(), b.end());
}

// A snapshot's bytes around a body given as hex (16.1).
Bytes frame(std::uint64_t tick, std::optional<std::uint64_t> distance,
            std::optional<std::uint32_t> checksum, const std::string& body) {
    Bytes out{0x94};
    append(out, tick);
    append(out, distance ? vinom::Value(*distance) : vinom::Value(nullptr));
    append(out, checksum ? vinom::Value(*checksum) : vinom::Value(nullptr));
    Bytes b = unhex(body);
    out.insert(out.end(), b.begin(), b.end());
    return out;
}

vinom::Snapshot decoded(const std::string& name) {
    const auto& v = vt::vector("delta", name);
    vinom::Snapshot s;
    EXPECT_EQ(vinom::decode_snapshot(unhex(v.at("hex")), {}, rules_of(v.at("rules")), s),
              Error::ok);
    return s;
}

Error decode(const Bytes& bytes, const vinom::Baselines& baselines = {}) {
    vinom::Snapshot s;
    return vinom::decode_snapshot(bytes, baselines, vinom::Quantisation(), s);
}

}  // namespace

TEST(Delta, EveryVectorBothWays) {
    const auto& group = vt::vectors().at("delta").at("vectors");
    ASSERT_FALSE(group.empty());
    for (const auto& v : group) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        vinom::Quantisation q = rules_of(v.at("rules"));
        vinom::Baselines baselines;
        std::optional<std::uint64_t> baseline_tick;
        if (!v.at("baseline").is_null()) {
            vinom::Snapshot base = decoded(v.at("baseline"));
            baselines[base.tick] = base.view;
            baseline_tick = vt::vector("delta", v.at("baseline")).at("tick").get<std::uint64_t>();
            EXPECT_EQ(base.tick, *baseline_tick);
        }
        vinom::Snapshot s;
        ASSERT_EQ(vinom::decode_snapshot(unhex(v.at("hex")), baselines, q, s), Error::ok);
        std::uint64_t tick = v.at("tick");
        EXPECT_EQ(s.tick, tick);
        EXPECT_EQ(s.baseline_tick, baseline_tick);
        EXPECT_EQ(s.checksum.has_value(), v.at("checksum").get<bool>());
        // The same view, types (1 or 1.0), values and keys' order alike.
        EXPECT_EQ(s.view.dump(), v.at("decoded").dump());

        // The other way: the checksum of the expected view (16.4), and the bytes.
        std::optional<std::uint32_t> sum;
        if (v.at("checksum").get<bool>()) {
            std::uint32_t c = 0;
            ASSERT_EQ(vinom::view_checksum(v.at("decoded"), c), Error::ok);
            sum = c;
            EXPECT_EQ(s.checksum, sum);
        }
        std::optional<std::uint64_t> distance;
        if (baseline_tick) distance = tick - *baseline_tick;
        EXPECT_EQ(hex(frame(tick, distance, sum, v.at("body"))), v.at("hex"));
        // Without rules, a full snapshot's body is the view's msgpack.
        if (v.at("rules").empty() && !baseline_tick) {
            Bytes body;
            ASSERT_EQ(vinom::encode_message(v.at("view"), body), Error::ok);
            EXPECT_EQ(hex(body), v.at("body"));
        }
    }
}

// The vectors' snaps whose d is a 16.1 snapshot (the others' are 16.8's,
// test_schema.cpp): its tick and view, a delta's against the view of an
// earlier vector.
TEST(Delta, SnapMessagesCarryTheirView) {
    vinom::Baselines views;
    int seen = 0;
    for (const auto& v : vt::vectors().at("messages").at("vectors")) {
        if (v.at("kind") != "relative_snap" || !v.contains("d_view")) continue;
        SCOPED_TRACE(v.at("name").get<std::string>());
        ++seen;
        vinom::RelativeSnap snap;
        ASSERT_EQ(vinom::decode_snap(unhex(v.at("hex")), snap), Error::ok);
        ASSERT_FALSE(snap.d.empty());
        ASSERT_EQ(snap.d[0], 0x94);
        vinom::Snapshot s;
        ASSERT_EQ(vinom::decode_snapshot(snap.d, views, vinom::Quantisation(), s), Error::ok);
        EXPECT_EQ(s.tick, v.at("d_tick").get<std::uint64_t>());
        if (v.contains("base_tick")) EXPECT_EQ(s.baseline_tick, v.at("base_tick").get<std::uint64_t>());
        else EXPECT_FALSE(s.baseline_tick);
        EXPECT_EQ(s.view.dump(), v.at("d_view").dump());
        views[s.tick] = s.view;
    }
    EXPECT_GE(seen, 2);
}

TEST(Delta, Crc32IsZlibs) {
    const std::string text = "123456789";
    EXPECT_EQ(vinom::crc32(vinom::View(reinterpret_cast<const std::uint8_t*>(text.data()),
                                       text.size())),
              0xcbf43926u);
}

TEST(Delta, CanonicalEncoding) {
    Bytes out;
    // Keys by code point (UTF-8 byte order: "é" after "z"), integral floats and
    // -0.0 as integers, other floats as float 64.
    auto view = vinom::Value::parse(R"({"z": 2.0, "\u00e9": -0.0, "a": [1.5, 300]})");
    ASSERT_EQ(vinom::canonical_encoding(view, out), Error::ok);
    EXPECT_EQ(hex(out), "83a16192cb3ff8000000000000cd012ca17a02a2c3a900");
}

TEST(Delta, LiteralRulesWinOverWildcards) {
    vinom::Quantisation q = rules_of(vinom::Value::parse(R"([["p.*.x", 0.01], ["p.ann.x", 0.1]])"));
    Bytes view;
    ASSERT_EQ(vinom::encode_message(
                  vinom::Value::parse(R"({"p": {"ann": {"x": 12, "y": 12}, "bob": {"x": 12}}})"),
                  view),
              Error::ok);
    vinom::Snapshot s;
    ASSERT_EQ(vinom::decode_snapshot(frame(1, std::nullopt, std::nullopt, hex(view)), {}, q, s),
              Error::ok);
    EXPECT_EQ(s.view.dump(), R"({"p":{"ann":{"x":1.2,"y":12},"bob":{"x":0.12}}})");
}

TEST(Delta, BadRulesAreRefused) {
    vinom::Quantisation q;
    for (const char* rules : {R"({"a": 0})", R"({"a": -1})", R"({"a": "f16"})", R"({"a..b": 1})",
                              R"({"": 1})", R"([["a"]])", R"([[1, 0.5]])", R"(7)"}) {
        EXPECT_EQ(vinom::Quantisation::from_rules(vinom::Value::parse(rules), q),
                  Error::bad_field)
            << rules;
    }
}

TEST(Delta, MalformedIsRefused) {
    // Every truncation of every vector; every flipped bit decodes or is refused
    // (ASan and UBSan watch the rest).
    for (const auto& v : vt::vectors().at("delta").at("vectors")) {
        Bytes bytes = unhex(v.at("hex"));
        vinom::Quantisation q = rules_of(v.at("rules"));
        vinom::Baselines baselines;
        if (!v.at("baseline").is_null()) {
            vinom::Snapshot base = decoded(v.at("baseline"));
            baselines[base.tick] = base.view;
        }
        vinom::Snapshot s;
        for (std::size_t n = 0; n < bytes.size(); ++n) {
            Bytes cut(bytes.begin(), bytes.begin() + static_cast<long>(n));
            EXPECT_EQ(vinom::decode_snapshot(cut, baselines, q, s), Error::bad_field) << n;
            for (int bit = 0; bit < 8; ++bit) {
                Bytes flipped = bytes;
                flipped[n] ^= static_cast<std::uint8_t>(1 << bit);
                (void)vinom::decode_snapshot(flipped, baselines, q, s);
            }
        }
    }
    vinom::Baselines one;
    one[1] = vinom::Value::parse(R"({"a": 1, "l": [1, 2]})");
    struct Case {
        const char* why;
        const char* hex;
    };
    for (const Case& c : {
             Case{"not an array", "c0"},
             Case{"3 long", "9301c0c0"},
             Case{"bytes after", "9401c0c0c0c0"},
             Case{"a negative tick", "94ffc0c0c0"},
             Case{"a float tick", "94cb3ff0000000000000c0c0c0"},
             Case{"distance 0", "940200c0c0"},
             Case{"distance past the tick", "940203c0c0"},
             Case{"a checksum past 32 bits", "9401c0cf0000000100000000c0"},
             Case{"an ext in a view", "9401c0c0d40100"},
             Case{"a delete marker in a full view", "9401c0c081a161c70000"},
             Case{"an int map key", "9401c0c0810101"},
             Case{"an array of 2^31 announced", "9401c0c0dd7fffffff"},
             Case{"a removed key that is not there", "940201c081a162c70000"},
             Case{"a delete marker of another type", "940201c081a161c70001"},
             Case{"a delete marker with data", "940201c081a161d40000"},
             Case{"a list patch of even length", "940201c081a16c920201"},
             Case{"a list patch's index out of range", "940201c081a16c93020205"},
             Case{"a list patch growing with a hole", "940201c081a16c950403050009"},
             Case{"a list patch's length past its pairs", "940201c081a16c9103"},
             Case{"a list patch's float index", "940201c081a16c9302cb000000000000000005"},
             Case{"a delete marker outside a map", "940201c0c70000"},
         }) {
        EXPECT_EQ(decode(unhex(c.hex), one), Error::bad_field) << c.why;
    }
    // A grown list with every added index given, and a cut one, do fit.
    vinom::Snapshot s;
    ASSERT_EQ(vinom::decode_snapshot(unhex("940201c081a16c9704010502070303"), one, {}, s), Error::ok);
    EXPECT_EQ(s.view.dump(), R"({"a":1,"l":[1,5,7,3]})");
    ASSERT_EQ(vinom::decode_snapshot(unhex("940201c081a16c9101"), one, {}, s), Error::ok);
    EXPECT_EQ(s.view.dump(), R"({"a":1,"l":[1]})");
    // 64 nested arrays are a view; 65 are not.
    for (std::size_t depth : {std::size_t{64}, std::size_t{65}}) {
        Bytes deep{0x94, 0x01, 0xc0, 0xc0};
        deep.insert(deep.end(), depth, 0x91);
        deep.push_back(0xc0);
        EXPECT_EQ(decode(deep), depth == 64 ? Error::ok : Error::bad_field) << depth;
    }
}

TEST(Delta, BaselinesAndChecksums) {
    Bytes delta = unhex(vt::vector("delta", "delta").at("hex"));
    EXPECT_EQ(decode(delta), Error::unknown_baseline);
    // A checksum one off: refused when verified, taken when not.
    const auto& v = vt::vector("delta", "full_quantised");
    Bytes bytes = unhex(v.at("hex"));
    Bytes off = bytes;
    off[7] ^= 1;  // the last byte of the checksum (94 07 c0 ce xx xx xx xx)
    vinom::Quantisation q = rules_of(v.at("rules"));
    vinom::Snapshot s;
    EXPECT_EQ(vinom::decode_snapshot(off, {}, q, s), Error::checksum_mismatch);
    EXPECT_EQ(vinom::decode_snapshot(off, {}, q, s, false), Error::ok);
    EXPECT_EQ(s.view.dump(), v.at("decoded").dump());
}

TEST(Delta, ReceiverAppliesNewerSnapshotsAndCountsDrops) {
    Bytes full = unhex(vt::vector("delta", "full").at("hex"));
    Bytes delta = unhex(vt::vector("delta", "delta").at("hex"));
    vinom::SnapshotReceiver r;
    vinom::Snapshot s;
    EXPECT_EQ(r.receive(delta, s), Error::unknown_baseline);
    EXPECT_EQ(r.receive(unhex("c0"), s), Error::bad_field);
    EXPECT_EQ(r.receive(full, s), Error::ok);
    EXPECT_EQ(r.newest(), 1u);
    EXPECT_EQ(r.receive(full, s), Error::stale);
    ASSERT_EQ(r.receive(delta, s), Error::ok);
    EXPECT_EQ(s.view.dump(), vt::vector("delta", "delta").at("decoded").dump());
    EXPECT_EQ(r.newest(), 2u);
    EXPECT_EQ(r.receive(delta, s), Error::stale);
    EXPECT_EQ(r.applied(), 2u);
    EXPECT_EQ(r.drops().unknown_baseline, 1u);
    EXPECT_EQ(r.drops().corrupt, 1u);
    EXPECT_EQ(r.drops().stale, 2u);
    EXPECT_EQ(r.drops().checksum, 0u);
    ASSERT_NE(r.view(1), nullptr);
    EXPECT_EQ(r.view(1)->dump(), vt::vector("delta", "full").at("decoded").dump());

    // It keeps the last `capacity` views: a patch against an older one is dropped.
    vinom::SnapshotReceiver small(vinom::Quantisation(), 1);
    ASSERT_EQ(small.receive(full, s), Error::ok);
    ASSERT_EQ(small.receive(unhex("9403c0c080"), s), Error::ok);  // tick 3, {}
    EXPECT_EQ(small.view(1), nullptr);
    EXPECT_EQ(small.receive(unhex("940403c080"), s), Error::unknown_baseline);  // against 1
}
