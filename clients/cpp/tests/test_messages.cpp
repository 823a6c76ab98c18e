// The messages group (docs/protocol.md 14.1) both ways, and what a hostile
// host could send instead of a message. A snap (game protocol 4: the relative
// packed form only) is read as its numbers (decode_snap), resolved against the
// numbers of its baseline's snap (resolve_snap) and written back (encode_snap);
// the snapshot inside it (`d`) is section 16's, not decoded here (test_realtime:
// through a receiver).
#include <gtest/gtest.h>

#include "support.hpp"
#include "vinom/messages.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::hex;
using vt::unhex;

namespace {

std::optional<std::int64_t> opt(const nlohmann::ordered_json& x) {
    if (x.is_null()) return std::nullopt;
    return x.get<std::int64_t>();
}

// A vector's "snap" fields (r in ms).
vinom::Snap snap_of(const nlohmann::ordered_json& f) {
    vinom::Snap s;
    s.v = f.at("v");
    s.ts = f.at("ts");
    s.r = opt(f.at("r"));
    s.i = opt(f.at("i"));
    s.ik = opt(f.at("ik"));
    s.d = unhex(f.at("d"));
    return s;
}

// A relative snap vector's baseline numbers (none: d full).
std::optional<vinom::SnapFields> base_of(const nlohmann::ordered_json& v) {
    if (!v.contains("base") || v.at("base").is_null()) return std::nullopt;
    const auto& b = v.at("base");
    return vinom::SnapFields{b.at("v").get<std::int64_t>(), b.at("ts").get<std::int64_t>(),
                             opt(b.at("r"))};
}

void expect_snap(const vinom::Snap& back, const vinom::Snap& s) {
    EXPECT_EQ(back.v, s.v);
    EXPECT_EQ(back.ts, s.ts);
    EXPECT_EQ(back.r, s.r);
    EXPECT_EQ(back.i, s.i);
    EXPECT_EQ(back.ik, s.ik);
    EXPECT_EQ(hex(back.d), hex(s.d));
}

// A snap: the marker, five numbers (LEB128 each, as hex), then d.
Bytes packed(const std::string& numbers, const std::string& d = "9403c0c081a17801") {
    return unhex("c1" + numbers + d);
}

// `numbers` read then resolved against `base` for d of `tick`.
Error resolved(const std::string& numbers, std::uint64_t tick, const vinom::SnapFields* base,
               vinom::Snap& out) {
    vinom::RelativeSnap raw;
    Error e = vinom::decode_snap(packed(numbers), raw);
    if (e != Error::ok) return e;
    return vinom::resolve_snap(raw, tick, base, out);
}

}  // namespace

TEST(Messages, EveryVectorBothWays) {
    const auto& group = vt::vectors().at("messages").at("vectors");
    ASSERT_FALSE(group.empty());
    int relative_seen = 0, full_seen = 0, delta_seen = 0;
    for (const auto& v : group) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        Bytes bytes = unhex(v.at("hex"));
        Bytes out;
        const std::string kind = v.at("kind");
        if (kind == "relative_snap") {
            ++relative_seen;
            vinom::Snap s = snap_of(v.at("snap"));
            std::optional<vinom::SnapFields> base = base_of(v);
            ++(base ? delta_seen : full_seen);
            const vinom::SnapFields* b = base ? &*base : nullptr;
            std::uint64_t tick = v.at("d_tick");
            ASSERT_EQ(bytes.at(0), vinom::PACKED_SNAP);
            ASSERT_EQ(vinom::encode_snap(s, tick, b, out), Error::ok);
            EXPECT_EQ(hex(out), v.at("hex"));
            vinom::RelativeSnap raw;
            ASSERT_EQ(vinom::decode_snap(bytes, raw), Error::ok);
            vinom::Snap back;
            ASSERT_EQ(vinom::resolve_snap(raw, tick, b, back), Error::ok);
            expect_snap(back, s);
            vinom::Value ignored;
            EXPECT_NE(vinom::decode_message(bytes, ignored), Error::ok);  // not msgpack
        } else {
            const auto& message = v.at("message");
            ASSERT_EQ(vinom::encode_message(message, out), Error::ok);
            EXPECT_EQ(hex(out), v.at("hex"));
            vinom::Value back;
            ASSERT_EQ(vinom::decode_message(bytes, back), Error::ok);
            EXPECT_EQ(back, message);
            EXPECT_EQ(back.dump(), message.dump());  // the keys' order too
        }
    }
    EXPECT_GT(full_seen, 0);
    EXPECT_GT(delta_seen, 0);
    EXPECT_EQ(relative_seen, full_seen + delta_seen);
}

TEST(Messages, ASnapsNumbersAsSent) {
    vinom::RelativeSnap s;
    // Zigzag: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3 (each plus one: 0 is nil).
    const std::pair<const char*, std::int64_t> actions[] = {
        {"01", 0}, {"02", -1}, {"03", 1}, {"04", -2}};
    for (const auto& [z, i] : actions) {
        ASSERT_EQ(vinom::decode_snap(packed(std::string("000000") + z + "00"), s), Error::ok) << z;
        EXPECT_EQ(s.i, i) << z;
        EXPECT_EQ(s.r, 0u);
        EXPECT_EQ(s.ik, 0u);
    }
    // The largest numbers, 2^53 - 1 in 8 bytes.
    const std::string top = "ffffffffffffff0f";
    const std::uint64_t max = (std::uint64_t{1} << 53) - 1;
    ASSERT_EQ(vinom::decode_snap(packed(top + top + top + top + top), s), Error::ok);
    EXPECT_EQ(s.v, max);
    EXPECT_EQ(s.ts, max);
    EXPECT_EQ(s.r, max);
    EXPECT_EQ(s.i, static_cast<std::int64_t>(max / 2));  // zigzag 2^53 - 2
    EXPECT_EQ(s.ik, max);
    // A number longer than it needs is read as the Python reader reads it.
    ASSERT_EQ(vinom::decode_snap(packed("8500" "00000000"), s), Error::ok);
    EXPECT_EQ(s.v, 5u);
    // d may be empty (its snapshot is then refused by the receiver), or any bytes.
    ASSERT_EQ(vinom::decode_snap(packed("0000000000", ""), s), Error::ok);
    EXPECT_TRUE(s.d.empty());
    ASSERT_EQ(vinom::decode_snap(packed("0000000000", "c1c1"), s), Error::ok);
    EXPECT_EQ(hex(s.d), "c1c1");
}

TEST(Messages, AFullSnapsNumbersAreItsOwn) {
    vinom::Snap s;
    // v 5, ts 300, r nil, i nil, ik nil.
    ASSERT_EQ(resolved("05ac02000000", 3, nullptr, s), Error::ok);
    EXPECT_EQ(s.v, 5);
    EXPECT_EQ(s.ts, 300);
    EXPECT_FALSE(s.r);
    EXPECT_FALSE(s.i);
    EXPECT_FALSE(s.ik);
    EXPECT_EQ(hex(s.d), "9403c0c081a17801");
    // r + 1: 1 is 0 ms; ik against d's tick: zigzag(ik - k) + 1.
    ASSERT_EQ(resolved("05ac02" "01" "00" "01", 3, nullptr, s), Error::ok);
    EXPECT_EQ(s.r, 0);
    EXPECT_EQ(s.ik, 3);
    ASSERT_EQ(resolved("05ac02" "01" "00" "02", 3, nullptr, s), Error::ok);
    EXPECT_EQ(s.ik, 2);  // -1
    ASSERT_EQ(resolved("05ac02" "01" "00" "03", 3, nullptr, s), Error::ok);
    EXPECT_EQ(s.ik, 4);  // +1
    // The largest r a full snap carries: 2^53 - 2 ms.
    ASSERT_EQ(resolved("0000" "ffffffffffffff0f" "0000", 0, nullptr, s), Error::ok);
    EXPECT_EQ(s.r, (std::int64_t{1} << 53) - 2);
}

TEST(Messages, ADeltaSnapsNumbersAreAgainstItsBaselines) {
    vinom::Snap s;
    const vinom::SnapFields base{7, 1050, 119950};
    // v + 2, ts + 50, ts + r the same (zigzag 0, plus one), ik k - 1.
    ASSERT_EQ(resolved("0232" "01" "09" "02", 2, &base, s), Error::ok);
    EXPECT_EQ(s.v, 9);
    EXPECT_EQ(s.ts, 1100);
    EXPECT_EQ(s.r, 119900);
    EXPECT_EQ(s.i, 4);
    EXPECT_EQ(s.ik, 1);
    // r nil stays nil; ts + r a second later (zigzag 1000 = 2000, plus one).
    ASSERT_EQ(resolved("0000" "00" "00" "00", 2, &base, s), Error::ok);
    EXPECT_FALSE(s.r);
    ASSERT_EQ(resolved("0000" "d10f" "00" "00", 2, &base, s), Error::ok);
    EXPECT_EQ(s.r, 119950 + 1000);
    // A nil r_b counts as 0: r is then ts_b + difference - ts.
    const vinom::SnapFields nil_r{7, 1050, std::nullopt};
    ASSERT_EQ(resolved("0032" "d10f" "00" "00", 2, &nil_r, s), Error::ok);
    EXPECT_EQ(s.r, 1050 + 1000 - 1100);
    // Written back as it was read.
    Bytes out;
    ASSERT_EQ(vinom::encode_snap(s, 2, &nil_r, out), Error::ok);
    EXPECT_EQ(hex(out), "c10032d10f00009403c0c081a17801");
}

TEST(Messages, NumbersResolvedPastTheirRangeAreRefused) {
    vinom::Snap s;
    const std::string top = "ffffffffffffff0f";  // 2^53 - 1
    const vinom::SnapFields one{1, 1, std::nullopt};
    // v, ts past 2^53 - 1 once added to the baseline's.
    EXPECT_EQ(resolved(top + "00000000", 2, &one, s), Error::bad_field);
    EXPECT_EQ(resolved("00" + top + "000000", 2, &one, s), Error::bad_field);
    // A baseline's numbers out of range (never kept so) are refused too.
    const vinom::SnapFields huge{std::int64_t{1} << 60, 0, std::nullopt};
    EXPECT_EQ(resolved("0000000000", 2, &huge, s), Error::bad_field);
    // A tick past 2^62: no ik can be told against it.
    EXPECT_EQ(resolved("0000000001", std::uint64_t{1} << 62, nullptr, s), Error::bad_field);
    // What the host could not send is not written.
    Bytes out;
    vinom::Snap negative;
    negative.v = -1;
    EXPECT_EQ(vinom::encode_snap(negative, 0, nullptr, out), Error::bad_field);
    negative.v = 0;
    negative.r = -1;  // a full snap's r is never below 0
    EXPECT_EQ(vinom::encode_snap(negative, 0, nullptr, out), Error::bad_field);
    const vinom::SnapFields later{5, 0, std::nullopt};
    vinom::Snap older;  // v below its baseline's
    EXPECT_EQ(vinom::encode_snap(older, 0, &later, out), Error::bad_field);
}

TEST(Messages, MalformedSnapsAreRefused) {
    vinom::RelativeSnap s;
    // Cut in its numbers, at each byte: truncated (the numbers end where d begins).
    for (const char* name : {"relative_snap_full", "relative_snap_delta"}) {
        SCOPED_TRACE(name);
        const auto& v = vt::vector("messages", name);
        Bytes bytes = unhex(v.at("hex"));
        std::size_t head = bytes.size() - unhex(v.at("snap").at("d")).size();
        auto cut = [&](std::size_t n) { return vinom::View(bytes.data(), n); };
        for (std::size_t n = 0; n < head; ++n)
            EXPECT_EQ(vinom::decode_snap(cut(n), s), Error::truncated) << n;
        // Cut right after them: an empty d, still a snap.
        ASSERT_EQ(vinom::decode_snap(cut(head), s), Error::ok);
        EXPECT_TRUE(s.d.empty());
    }
    // A 9th byte in any of the five numbers.
    const std::string nine = "808080808080808001";
    for (int at = 0; at < 5; ++at) {
        std::string numbers;
        for (int n = 0; n < 5; ++n) numbers += n == at ? nine : "00";
        EXPECT_EQ(vinom::decode_snap(packed(numbers), s), Error::bad_field) << at;
        // 2^53, in 8 bytes: too large.
        numbers.clear();
        for (int n = 0; n < 5; ++n) numbers += n == at ? "8080808080808010" : "00";
        EXPECT_EQ(vinom::decode_snap(packed(numbers), s), Error::bad_field) << at;
        // 2^56 - 1, every bit of 8 bytes.
        numbers.clear();
        for (int n = 0; n < 5; ++n) numbers += n == at ? "ffffffffffffff7f" : "00";
        EXPECT_EQ(vinom::decode_snap(packed(numbers), s), Error::bad_field) << at;
    }
    // Eight continuation bytes and the message ends: refused (never a read past it).
    EXPECT_NE(vinom::decode_snap(unhex("c18080808080808080"), s), Error::ok);
    EXPECT_EQ(vinom::decode_snap(unhex("c1"), s), Error::truncated);
    // The array form of game protocol 3 is no snap now; nor is any msgpack.
    EXPECT_EQ(vinom::decode_snap(unhex("9605cd012cc0c0c0c4089403c0c081a17801"), s),
              Error::bad_field);
    EXPECT_EQ(vinom::decode_snap(unhex("81a174a473746174"), s), Error::bad_field);
}

TEST(Messages, FloatsAreFloat64AndIntsSmallest) {
    Bytes out;
    ASSERT_EQ(vinom::encode_message(vinom::Value::array({1.5, 1, -1, 300, -300}), out), Error::ok);
    EXPECT_EQ(hex(out), "95cb3ff800000000000001ffcd012cd1fed4");
}

TEST(Messages, MalformedIsRefused) {
    vinom::Value v;
    Bytes message = unhex(vt::vector("messages", "input").at("hex"));
    for (std::size_t n = 0; n < message.size(); ++n)
        EXPECT_NE(vinom::decode_message(Bytes(message.begin(), message.begin() + static_cast<long>(n)), v),
                  Error::ok) << n;
    Bytes longer = message;
    longer.push_back(0xc0);
    EXPECT_EQ(vinom::decode_message(longer, v), Error::bad_size);  // bytes after the message
    EXPECT_EQ(vinom::decode_message(unhex("8101c0"), v), Error::bad_field);      // int key
    EXPECT_EQ(vinom::decode_message(unhex("d40100"), v), Error::bad_field);      // ext type
    EXPECT_EQ(vinom::decode_message(unhex("c1"), v), Error::bad_field);          // never used
    // An array of 2^31 announced in 5 bytes: refused by the limits, nothing allocated.
    EXPECT_EQ(vinom::decode_message(unhex("dd7fffffff"), v), Error::bad_field);
    Bytes deep(100, 0x91);  // [[[[...]]]] past the depth limit
    deep.push_back(0xc0);
    EXPECT_EQ(vinom::decode_message(deep, v), Error::bad_field);
}

TEST(Messages, EncodeAndDecodeShareTheDepthLimit) {
    // MAX_MESSAGE_DEPTH arrays one in another are a message both ways; one more
    // (the innermost empty) is refused both ways.
    for (std::size_t depth : {vinom::MAX_MESSAGE_DEPTH, vinom::MAX_MESSAGE_DEPTH + 1}) {
        vinom::Value nested = vinom::Value::array();
        for (std::size_t i = 1; i < depth; ++i) nested = vinom::Value::array({nested});
        Bytes packed(depth - 1, 0x91);
        packed.push_back(0x90);
        Bytes out;
        vinom::Value v;
        Error want = depth == vinom::MAX_MESSAGE_DEPTH ? Error::ok : Error::bad_field;
        EXPECT_EQ(vinom::encode_message(nested, out), want) << depth;
        EXPECT_EQ(vinom::decode_message(packed, v), want) << depth;
        if (want == Error::ok) {
            EXPECT_EQ(out, packed);
            EXPECT_EQ(v, nested);
        }
    }
}
