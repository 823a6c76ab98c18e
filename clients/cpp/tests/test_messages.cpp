// The messages group (docs/protocol.md 14.1) both ways (a packed snap, which
// the client only reads, one way), and what a hostile host could send instead
// of a message. The snapshot inside a snap (`d`) is section 16's, not decoded
// here.
#include <gtest/gtest.h>

#include "support.hpp"
#include "vinom/messages.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::hex;
using vt::unhex;

namespace {

// A vector's "snap" fields.
vinom::Snap snap_of(const nlohmann::ordered_json& f) {
    vinom::Snap s;
    s.v = f.at("v");
    s.ts = f.at("ts");
    if (!f.at("r").is_null()) s.r = f.at("r").get<std::int64_t>();
    if (!f.at("i").is_null()) s.i = f.at("i").get<std::int64_t>();
    if (!f.at("ik").is_null()) s.ik = f.at("ik").get<std::int64_t>();
    s.d = unhex(f.at("d"));
    return s;
}

void expect_snap(const vinom::Snap& back, const vinom::Snap& s) {
    EXPECT_EQ(back.v, s.v);
    EXPECT_EQ(back.ts, s.ts);
    EXPECT_EQ(back.r, s.r);
    EXPECT_EQ(back.i, s.i);
    EXPECT_EQ(back.ik, s.ik);
    EXPECT_EQ(hex(back.d), hex(s.d));
}

// A packed snap: the marker, five numbers (LEB128 each, as hex), then d.
Bytes packed(const std::string& numbers, const std::string& d = "9403c0c081a17801") {
    return unhex("c1" + numbers + d);
}

}  // namespace

TEST(Messages, EveryVectorBothWays) {
    const auto& group = vt::vectors().at("messages").at("vectors");
    ASSERT_FALSE(group.empty());
    int packed_seen = 0;
    for (const auto& v : group) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        Bytes bytes = unhex(v.at("hex"));
        Bytes out;
        // Relative packed snaps ("pk": 2) are the Python client's; this one asks "pk": 1.
        if (v.at("kind") == "relative_snap") continue;
        if (v.at("kind") == "packed_snap") {
            // Read as the array (encode_snap writes only that).
            ++packed_seen;
            ASSERT_EQ(bytes.at(0), vinom::PACKED_SNAP);
            vinom::Snap back;
            ASSERT_EQ(vinom::decode_snap(bytes, back), Error::ok);
            expect_snap(back, snap_of(v.at("snap")));
            vinom::Value ignored;
            EXPECT_NE(vinom::decode_message(bytes, ignored), Error::ok);  // not msgpack
        } else if (v.at("kind") == "snap") {
            vinom::Snap s = snap_of(v.at("snap"));
            ASSERT_EQ(vinom::encode_snap(s, out), Error::ok);
            EXPECT_EQ(hex(out), v.at("hex"));
            vinom::Snap back;
            ASSERT_EQ(vinom::decode_snap(bytes, back), Error::ok);
            expect_snap(back, s);
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
    EXPECT_GT(packed_seen, 0);
}

TEST(Messages, APackedSnapReadsAsTheArrayOfTheSameFields) {
    vinom::Snap a, b;
    ASSERT_EQ(vinom::decode_snap(unhex(vt::vector("messages", "packed_snap_full").at("hex")), a),
              Error::ok);
    ASSERT_EQ(vinom::decode_snap(unhex(vt::vector("messages", "snap_full").at("hex")), b),
              Error::ok);
    expect_snap(a, b);
    vinom::Snap s;
    // Zigzag: 0 -> 0, -1 -> 1, 1 -> 2, -2 -> 3 (each plus one: 0 is nil).
    const std::pair<const char*, std::int64_t> actions[] = {
        {"01", 0}, {"02", -1}, {"03", 1}, {"04", -2}};
    for (const auto& [z, i] : actions) {
        ASSERT_EQ(vinom::decode_snap(packed(std::string("000000") + z + "00"), s), Error::ok) << z;
        EXPECT_EQ(s.i, i) << z;
        EXPECT_FALSE(s.r);
        EXPECT_FALSE(s.ik);
    }
    // The largest numbers, 2^53 - 1 in 8 bytes; r 0 ms and ik 0 are 1.
    const std::string top = "ffffffffffffff0f";
    ASSERT_EQ(vinom::decode_snap(packed(top + top + "01" + top + "01"), s), Error::ok);
    const std::int64_t max = (std::int64_t{1} << 53) - 1;
    EXPECT_EQ(s.v, max);
    EXPECT_EQ(s.ts, max);
    EXPECT_EQ(s.r, 0);
    EXPECT_EQ(s.i, max / 2);  // zigzag 2^53 - 2
    EXPECT_EQ(s.ik, 0);
    // A number longer than it needs is read as the Python reader reads it.
    ASSERT_EQ(vinom::decode_snap(packed("8500" "00000000"), s), Error::ok);
    EXPECT_EQ(s.v, 5);
    // d may be empty (its snapshot is then refused by the receiver), or any bytes.
    ASSERT_EQ(vinom::decode_snap(packed("0000000000", ""), s), Error::ok);
    EXPECT_TRUE(s.d.empty());
    ASSERT_EQ(vinom::decode_snap(packed("0000000000", "c1c1"), s), Error::ok);
    EXPECT_EQ(hex(s.d), "c1c1");
}

TEST(Messages, MalformedPackedSnapsAreRefused) {
    vinom::Snap s;
    // Cut in its numbers, at each byte: truncated (the numbers end where d begins).
    for (const char* name : {"packed_snap_full", "packed_snap_numbers"}) {
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
}

TEST(Messages, FloatsAreFloat64AndIntsSmallest) {
    Bytes out;
    ASSERT_EQ(vinom::encode_message(vinom::Value::array({1.5, 1, -1, 300, -300}), out), Error::ok);
    EXPECT_EQ(hex(out), "95cb3ff800000000000001ffcd012cd1fed4");
}

TEST(Messages, MalformedIsRefused) {
    vinom::Value v;
    vinom::Snap s;
    Bytes snap = unhex(vt::vector("messages", "snap_remaining").at("hex"));
    for (std::size_t n = 0; n < snap.size(); ++n)
        EXPECT_NE(vinom::decode_snap(Bytes(snap.begin(), snap.begin() + static_cast<long>(n)), s),
                  Error::ok) << n;
    Bytes longer = snap;
    longer.push_back(0xc0);
    EXPECT_EQ(vinom::decode_snap(longer, s), Error::bad_size);  // bytes after the message
    EXPECT_EQ(vinom::decode_message(unhex("8101c0"), v), Error::bad_field);      // int key
    EXPECT_EQ(vinom::decode_message(unhex("d40100"), v), Error::bad_field);      // ext type
    EXPECT_EQ(vinom::decode_message(unhex("c1"), v), Error::bad_field);          // never used
    // An array of 2^31 announced in 5 bytes: refused by the limits, nothing allocated.
    EXPECT_EQ(vinom::decode_message(unhex("dd7fffffff"), v), Error::bad_field);
    EXPECT_EQ(vinom::decode_snap(unhex("9505cd012cc0c0c0"), s), Error::bad_field);  // 5 long
    EXPECT_EQ(vinom::decode_snap(unhex("96a17805c0c0c0c400"), s), Error::bad_field);  // v a str
    EXPECT_EQ(vinom::decode_snap(unhex("960505c0c0c0c0"), s), Error::bad_field);  // d nil
    EXPECT_EQ(vinom::decode_snap(unhex("9605cf8000000000000000c0c0c0c400"), s), Error::bad_field);
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
