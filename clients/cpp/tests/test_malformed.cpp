// What a hostile network can send: every truncation, every flipped bit, every
// malformed body of 13.4 gets an error, never a crash or a read past the end
// (run under -DVINOM_SANITIZE=ON to have ASan and UBSan check the latter).
#include <gtest/gtest.h>

#include "support.hpp"
#include "vinom.h"
#include "vinom/session.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::unhex;

namespace {

const nlohmann::ordered_json& derived() { return vt::vectors().at("session").at("derived"); }
Bytes packet(const std::string& name) { return unhex(vt::vector("session", name).at("hex")); }

// Every way the client reads a packet from the network.
Error read_any(const Bytes& p) {
    vinom::Key c2s = vt::key(derived().at("client_to_server_key"));
    vinom::Key s2c = vt::key(derived().at("server_to_client_key"));
    std::uint64_t seq = 0;
    std::uint8_t type = 0;
    Bytes out;
    vinom::Welcome w;
    vinom::Request r;
    Error e = vinom::open_challenge(s2c, p, seq, out);
    if (e == Error::ok) return e;
    if ((e = vinom::open_welcome(s2c, p, w)) == Error::ok) return e;
    if ((e = vinom::open_packet(s2c, p, type, seq, out)) == Error::ok) return e;
    if ((e = vinom::open_packet(c2s, p, type, seq, out)) == Error::ok) return e;
    if ((e = vinom::open_response(c2s, p, seq, out)) == Error::ok) return e;
    if ((e = vinom::decode_request(p, r)) == Error::ok) return e;
    return e;
}

const char* kPackets[] = {"request", "challenge", "response", "welcome", "payload_client",
                          "payload_server", "keepalive", "disconnect", "denied"};

}  // namespace

TEST(Malformed, EveryTruncationIsRefused) {
    for (const char* name : kPackets) {
        Bytes p = packet(name);
        ASSERT_EQ(read_any(p), Error::ok) << name;
        for (std::size_t n = 0; n < p.size(); ++n)
            EXPECT_NE(read_any(Bytes(p.begin(), p.begin() + static_cast<long>(n))), Error::ok)
                << name << " cut to " << n;
    }
}

TEST(Malformed, EveryFlippedBitIsRefused) {
    // The request is plaintext (the host's AEAD checks its token); the rest is sealed.
    for (const char* name : kPackets) {
        if (std::string(name) == "request") continue;
        Bytes p = packet(name);
        for (std::size_t i = 0; i < p.size(); ++i) {
            Bytes q = p;
            q[i] ^= static_cast<std::uint8_t>(1u << (i % 8));
            EXPECT_NE(read_any(q), Error::ok) << name << " byte " << i;
        }
    }
}

TEST(Malformed, RequestPaddingMustBeZero) {
    Bytes p = packet("request");
    p.back() = 1;
    vinom::Request r;
    EXPECT_EQ(vinom::decode_request(p, r), Error::bad_field);
    p.push_back(0);
    EXPECT_EQ(vinom::decode_request(p, r), Error::bad_size);
}

TEST(Malformed, OversizedPacketsAreRefused) {
    vinom::Key c2s = vt::key(derived().at("client_to_server_key"));
    Bytes body(vinom::MAX_BODY + 1, 0);
    Bytes out;
    EXPECT_EQ(vinom::seal_packet(vinom::PAYLOAD, c2s, 1, body, out), Error::bad_size);
    body.pop_back();
    EXPECT_EQ(vinom::seal_packet(vinom::PAYLOAD, c2s, 1, body, out), Error::ok);
    EXPECT_EQ(out.size(), vinom::MAX_DATAGRAM);
    out.push_back(0);
    std::uint8_t type = 0;
    std::uint64_t seq = 0;
    EXPECT_EQ(vinom::open_packet(c2s, out, type, seq, body), Error::bad_size);
}

TEST(Malformed, BodiesOfSection13_4) {
    Bytes header = unhex("0000ffff0000000000");
    auto body = [&](const std::string& messages) {
        Bytes b = header;
        Bytes m = unhex(messages);
        b.insert(b.end(), m.begin(), m.end());
        return b;
    };
    vinom::BodyHeader h;
    std::vector<vinom::Message> m;
    auto decode = [&](const Bytes& b, std::size_t max = vinom::MAX_BODY) {
        return vinom::decode_body(b, max, h, m);
    };
    EXPECT_EQ(decode(body("")), Error::ok);                      // ack-only
    EXPECT_EQ(decode(unhex("0000ffff00000000")), Error::truncated);  // version 1's 8 bytes
    EXPECT_EQ(decode(body("0540000068656c6c")), Error::truncated);   // data past the end
    EXPECT_EQ(decode(body("054000")), Error::truncated);             // header past the end
    EXPECT_EQ(decode(body("01800000ff")), Error::bad_field);         // channel 2
    EXPECT_EQ(decode(body("01c00000ff")), Error::bad_field);         // channel 3
    EXPECT_EQ(decode(body("01600000" "0000" "ff")), Error::bad_field);  // last = 0
    EXPECT_EQ(decode(body("01600000" "0302" "ff")), Error::bad_field);  // index > last
    EXPECT_EQ(decode(body("00600000" "0001")), Error::bad_field);       // no data
    EXPECT_EQ(decode(body("01200000" "0010" "ff")), Error::bad_field);  // channel 0, last 16
    EXPECT_EQ(decode(body("01200000" "000f" "ff")), Error::ok);         // channel 0, last 15
    EXPECT_EQ(decode(body("0020000000")), Error::truncated);            // fragment header cut
    EXPECT_EQ(decode(body(""), 8), Error::bad_size);                    // longer than max_body
    std::string many;
    for (int i = 0; i < 65; ++i) many += "00000000";
    EXPECT_EQ(decode(body(many)), Error::bad_field);  // 65 messages
    EXPECT_EQ(decode(body(many.substr(8))), Error::ok);  // 64
    // Every prefix of a body with messages: an error or a shorter valid body, never a crash.
    Bytes b = unhex(vt::vector("reliability", "reliable_fragments").at("bodies")[0]);
    for (std::size_t n = 0; n < b.size(); ++n)
        (void)decode(Bytes(b.begin(), b.begin() + static_cast<long>(n)), 32);
}

TEST(Malformed, PublicTokenFields) {
    const auto& good = vt::vectors().at("session").at("token");
    vinom::PublicToken t;
    ASSERT_EQ(vinom::parse_public_token(good.dump(), t), Error::ok);
    EXPECT_EQ(vinom::parse_public_token("", t), Error::bad_json);
    EXPECT_EQ(vinom::parse_public_token("[1]", t), Error::bad_json);
    EXPECT_EQ(vinom::parse_public_token(std::string(100000, '['), t), Error::bad_json);
    for (const auto& item : good.items()) {
        nlohmann::ordered_json j = good;
        j.erase(item.key());
        EXPECT_EQ(vinom::parse_public_token(j.dump(), t), Error::bad_json) << item.key();
        j = good;
        j[item.key()] = nullptr;
        EXPECT_EQ(vinom::parse_public_token(j.dump(), t), Error::bad_json) << item.key();
    }
    auto with = [&](const char* key, nlohmann::ordered_json value) {
        nlohmann::ordered_json j = good;
        j[key] = std::move(value);
        return vinom::parse_public_token(j.dump(), t);
    };
    EXPECT_EQ(with("application_id", 9007199254740992ull), Error::bad_json);  // 2^53
    EXPECT_EQ(with("timeout_ms", 0), Error::bad_json);
    EXPECT_EQ(with("timeout_ms", -1), Error::bad_json);
    EXPECT_EQ(with("hosts", nlohmann::ordered_json::array()), Error::bad_json);
    EXPECT_EQ(with("hosts", {{{"host", "h"}, {"port", 0}}}), Error::bad_json);
    EXPECT_EQ(with("hosts", {{{"host", "h"}, {"port", 65536}}}), Error::bad_json);
    EXPECT_EQ(with("nonce", "YGFiY2RlZmdoaWpr="), Error::bad_json);   // bad padding
    EXPECT_EQ(with("nonce", "YGFiY2RlZmdoaWp"), Error::bad_json);     // not a multiple of 4
    EXPECT_EQ(with("nonce", "YGFiY2RlZmdoaW=r"), Error::bad_json);    // data after padding
    EXPECT_EQ(with("nonce", "YGFiY2RlZmdoaWpr" "AAAA"), Error::bad_json);  // 15 bytes
    EXPECT_EQ(with("client_to_server_key", "!!!!"), Error::bad_json);
}

TEST(Malformed, Base64) {
    Bytes out;
    EXPECT_EQ(vinom::base64_decode("", out), Error::ok);
    EXPECT_TRUE(out.empty());
    EXPECT_EQ(vinom::base64_decode("aGk=", out), Error::ok);
    EXPECT_EQ(out, (Bytes{'h', 'i'}));
    EXPECT_EQ(vinom::base64_decode("aA==", out), Error::ok);
    EXPECT_EQ(out, (Bytes{'h'}));
    EXPECT_EQ(vinom::base64_decode("a===", out), Error::bad_field);
    EXPECT_EQ(vinom::base64_decode("aGk=aGk=", out), Error::bad_field);
}

TEST(ReplayWindow, Section6) {
    vinom::ReplayWindow w;
    EXPECT_TRUE(w.check(1000));
    w.start(1000);
    EXPECT_FALSE(w.check(1000));  // accepted already
    EXPECT_TRUE(w.check(999));
    EXPECT_TRUE(w.check(1000 - 255));
    EXPECT_FALSE(w.check(1000 - 256));  // more than 255 below the newest
    w.accept(999);
    EXPECT_FALSE(w.check(999));
    w.accept(1100);  // moves the window by 100: 1000 and 999 stay recorded
    EXPECT_FALSE(w.check(1000));
    EXPECT_FALSE(w.check(999));
    EXPECT_TRUE(w.check(998));
    EXPECT_TRUE(w.check(1001));
    EXPECT_FALSE(w.check(1100 - 256));
    w.accept(1100 + 64);  // a shift of a whole word
    EXPECT_FALSE(w.check(1000));
    EXPECT_FALSE(w.check(1100));
    EXPECT_TRUE(w.check(1101));
    w.accept(5000);  // beyond the window: everything older is refused or new
    EXPECT_FALSE(w.check(1100));
    EXPECT_TRUE(w.check(4999));
    EXPECT_FALSE(w.check(5000));
    EXPECT_TRUE(w.check(UINT64_MAX));
}

TEST(CAbi, Arguments) {
    EXPECT_EQ(vinom_abi_version(), static_cast<std::uint32_t>(VINOM_ABI_VERSION));
    EXPECT_EQ(vinom_protocol_version(), vinom::PROTOCOL_VERSION);
    vinom_token* t = nullptr;
    EXPECT_EQ(vinom_token_parse(nullptr, 0, &t), VINOM_INVALID_ARGUMENT);
    EXPECT_EQ(vinom_token_parse("{}", 2, &t), VINOM_BAD_JSON);
    EXPECT_EQ(t, nullptr);
    std::string json = vt::vectors().at("session").at("token").dump();
    ASSERT_EQ(vinom_token_parse(json.data(), json.size(), &t), VINOM_OK);
    vinom_session* s = nullptr;
    ASSERT_EQ(vinom_session_new(t, 1, &s), VINOM_OK);
    std::uint8_t small[10];
    std::size_t len = 0;
    EXPECT_EQ(vinom_session_request(s, small, sizeof small, &len), VINOM_BUFFER_TOO_SMALL);
    EXPECT_EQ(len, 1200u);
    // Sealing before the welcome does not fit the state; nothing is spent.
    std::uint8_t out[VINOM_MAX_DATAGRAM];
    EXPECT_EQ(vinom_session_seal(s, VINOM_PACKET_KEEPALIVE, nullptr, 0, out, sizeof out, &len),
              VINOM_UNEXPECTED);
    vinom_event ev;
    std::uint8_t junk[3] = {9, 9, 9};
    EXPECT_EQ(vinom_session_receive(s, junk, sizeof junk, &ev, out, sizeof out, &len),
              VINOM_TRUNCATED);
    EXPECT_EQ(vinom_session_receive(s, nullptr, 0, &ev, out, sizeof out, &len), VINOM_TRUNCATED);
    EXPECT_STREQ(vinom_status_name(VINOM_REPLAYED), "replayed");
    vinom_session_free(s);
    vinom_token_free(t);
    vinom_session_free(nullptr);
    vinom_token_free(nullptr);
}
