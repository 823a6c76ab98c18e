// The messages group (docs/protocol.md 14.1) both ways, and what a hostile
// host could send instead of a message. The snapshot inside a snap (`d`) is
// section 16's, not decoded here.
#include <gtest/gtest.h>

#include "support.hpp"
#include "vinom/messages.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::hex;
using vt::unhex;

TEST(Messages, EveryVectorBothWays) {
    const auto& group = vt::vectors().at("messages").at("vectors");
    ASSERT_FALSE(group.empty());
    for (const auto& v : group) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        Bytes bytes = unhex(v.at("hex"));
        Bytes out;
        if (v.at("kind") == "snap") {
            const auto& f = v.at("snap");
            vinom::Snap s;
            s.v = f.at("v");
            s.ts = f.at("ts");
            if (!f.at("r").is_null()) s.r = f.at("r").get<std::int64_t>();
            if (!f.at("i").is_null()) s.i = f.at("i").get<std::int64_t>();
            if (!f.at("ik").is_null()) s.ik = f.at("ik").get<std::int64_t>();
            s.d = unhex(f.at("d"));
            ASSERT_EQ(vinom::encode_snap(s, out), Error::ok);
            EXPECT_EQ(hex(out), v.at("hex"));
            vinom::Snap back;
            ASSERT_EQ(vinom::decode_snap(bytes, back), Error::ok);
            EXPECT_EQ(back.v, s.v);
            EXPECT_EQ(back.ts, s.ts);
            EXPECT_EQ(back.r, s.r);
            EXPECT_EQ(back.i, s.i);
            EXPECT_EQ(back.ik, s.ik);
            EXPECT_EQ(hex(back.d), hex(s.d));
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
