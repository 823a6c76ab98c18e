// What a hostile network can send: every truncation, every flipped bit, every
// malformed body of 13.4 gets an error, never a crash or a read past the end
// (run under -DVINOM_SANITIZE=ON to have ASan and UBSan check the latter).
#include <gtest/gtest.h>

#include <optional>
#include <utility>

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
    // A short payload (5.9), its sequence the nearest to the newest each side
    // accepted in the scenario (the welcome; the client's offer).
    std::uint16_t low = 0;
    if (vinom::read_short_header(p, low) != Error::ok) return e;
    std::uint64_t host_newest = derived().at("first_session_sequence");
    std::uint64_t client_newest = derived().at("client_first_sequence").get<std::uint64_t>() + 2;
    for (auto [key, newest] : {std::pair{s2c, host_newest}, std::pair{c2s, client_newest}}) {
        if (!vinom::full_sequence(low, newest, seq)) return Error::replayed;
        if ((e = vinom::open_short_payload(key, p, seq, out)) == Error::ok) return e;
    }
    return e;
}

const char* kPackets[] = {"request",        "challenge", "response",
                          "welcome",        "payload_client", "offer",
                          "payload_server", "payload_client_short", "keepalive",
                          "disconnect",     "denied"};

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

// 5.9: the full sequence nearest the newest accepted, across the 16-bit wrap; a
// tie goes back, and one that would be below 0 is none (dropped as replayed).
TEST(ShortPayload, FullSequenceNearestTheNewest) {
    struct Case {
        std::uint16_t low;
        std::uint64_t newest;
        bool found;
        std::uint64_t sequence;
    };
    for (const Case& c : {
             Case{3, 3, true, 3},
             Case{0x0000, 0x1ffff, true, 0x20000},   // forward across the wrap
             Case{0xffff, 0x20001, true, 0x1ffff},   // back across it
             Case{0x8002, 3, true, 0x8002},          // 32767 ahead
             Case{0x8003, 3, false, 0},              // a tie: 3 - 0x8000 < 0
             Case{0x8003, 0x10003, true, 0x8003},    // the same tie, back
             Case{0x8004, 4, false, 0},
             Case{0x0004, 0x8003, true, 0x0004},     // 32767 back, not 32769 ahead
             Case{0xfff0, 5, false, 0},              // 21 back: below 0
             Case{0xfff0, 0x10005, true, 0xfff0},
             Case{0x0000, UINT64_MAX, false, 0},     // past 2^64
             Case{0xffff, UINT64_MAX, true, UINT64_MAX},
         }) {
        std::uint64_t got = 0;
        EXPECT_EQ(vinom::full_sequence(c.low, c.newest, got), c.found)
            << std::hex << c.low << " " << c.newest;
        if (c.found) EXPECT_EQ(got, c.sequence) << std::hex << c.low << " " << c.newest;
    }
    // Every low value from one newest: within [newest - 32768, newest + 32767].
    const std::uint64_t newest = 0x123456789abcull;
    for (std::uint32_t low = 0; low < 0x10000; ++low) {
        std::uint64_t got = 0;
        ASSERT_TRUE(vinom::full_sequence(static_cast<std::uint16_t>(low), newest, got));
        EXPECT_EQ(got & 0xffff, low);
        EXPECT_GE(got, newest - 0x8000);
        EXPECT_LE(got, newest + 0x7fff);
    }
}

TEST(ShortPayload, MalformedHeaders) {
    Bytes p = packet("payload_server");
    std::uint16_t low = 0;
    EXPECT_EQ(vinom::read_short_header(Bytes(), low), Error::truncated);
    EXPECT_EQ(vinom::read_short_header(Bytes(p.begin(), p.begin() + 18), low), Error::truncated);
    EXPECT_EQ(vinom::read_short_header(Bytes(p.begin(), p.begin() + 19), low), Error::ok);
    Bytes big = p;
    big.resize(vinom::MAX_DATAGRAM + 1);
    EXPECT_EQ(vinom::read_short_header(big, low), Error::bad_size);
    Bytes body(vinom::MAX_BODY + 1, 0), out;
    vinom::Key s2c = vt::key(derived().at("server_to_client_key"));
    EXPECT_EQ(vinom::seal_short_payload(s2c, 1, body, out), Error::bad_size);
    body.pop_back();
    ASSERT_EQ(vinom::seal_short_payload(s2c, 1, body, out), Error::ok);
    EXPECT_EQ(out.size(), vinom::MAX_DATAGRAM - 6);
}

namespace {

vinom::PublicToken vector_token() {
    vinom::PublicToken t;
    EXPECT_EQ(vinom::parse_public_token(vt::vectors().at("session").at("token").dump(), t),
              Error::ok);
    return t;
}

// A session of the vectors' token through the challenge and a welcome of the
// host's sequence `welcome` (the vector's by default).
vinom::ClientSession connected(std::optional<std::uint64_t> welcome = std::nullopt) {
    vinom::ClientSession s(vector_token(), derived().at("client_first_sequence"));
    vinom::ClientSession::Kind kind;
    Bytes out;
    EXPECT_EQ(s.receive(packet("challenge"), kind, out), Error::ok);
    Bytes w = packet("welcome");
    if (welcome) {
        vinom::Welcome fields;
        fields.sequence = *welcome;
        fields.session_id = 1;
        EXPECT_EQ(vinom::seal_welcome(vt::key(derived().at("server_to_client_key")), fields, w),
                  Error::ok);
    }
    EXPECT_EQ(s.receive(w, kind, out), Error::ok);
    EXPECT_EQ(s.state(), vinom::ClientSession::State::connected);
    return s;
}

Bytes host_short(std::uint64_t sequence, const Bytes& body = unhex("000000000000000000")) {
    Bytes out;
    EXPECT_EQ(vinom::seal_short_payload(vt::key(derived().at("server_to_client_key")), sequence,
                                        body, out),
              Error::ok);
    return out;
}

}  // namespace

// A connected session takes the host's short payload as a payload, once: the
// same packet again is a replay, and so is one the window has passed.
TEST(ShortPayload, AcceptedOnceThenReplayed) {
    vinom::ClientSession s = connected();
    EXPECT_FALSE(s.sends_short());
    vinom::ClientSession::Kind kind;
    Bytes out;
    ASSERT_EQ(s.receive(packet("payload_server"), kind, out), Error::ok);
    EXPECT_EQ(kind, vinom::ClientSession::Kind::payload);
    EXPECT_EQ(vt::hex(out), vt::vector("session", "payload_server").at("plaintext"));
    EXPECT_TRUE(s.sends_short());
    EXPECT_EQ(s.receive(packet("payload_server"), kind, out), Error::replayed);
    EXPECT_EQ(kind, vinom::ClientSession::Kind::none);
    // The same sequence sealed long is the same packet number: replayed too.
    std::uint64_t seq = derived().at("first_session_sequence").get<std::uint64_t>() + 1;
    Bytes long_form;
    ASSERT_EQ(vinom::seal_packet(vinom::PAYLOAD, vt::key(derived().at("server_to_client_key")),
                                 seq, unhex("000000000000000000"), long_form),
              Error::ok);
    EXPECT_EQ(s.receive(long_form, kind, out), Error::replayed);
    // Long ones are still read, and short ones after them.
    ASSERT_EQ(vinom::seal_packet(vinom::PAYLOAD, vt::key(derived().at("server_to_client_key")),
                                 seq + 1, unhex("000000000000000000"), long_form),
              Error::ok);
    EXPECT_EQ(s.receive(long_form, kind, out), Error::ok);
    EXPECT_EQ(s.receive(host_short(seq + 300), kind, out), Error::ok);
    EXPECT_EQ(s.receive(host_short(seq + 2), kind, out), Error::replayed);  // 298 back: past the window
    EXPECT_EQ(s.receive(host_short(seq + 300), kind, out), Error::replayed);
    EXPECT_EQ(s.receive(host_short(seq + 299), kind, out), Error::ok);  // late, in the window
    // Before the welcome, one does not fit the state.
    vinom::ClientSession fresh(vector_token(), 1);
    EXPECT_EQ(fresh.receive(packet("payload_server"), kind, out), Error::unexpected);
}

// Every byte of the host's short payload flipped, and every truncation: dropped,
// and nothing changes (the genuine packet is accepted after them all, and the
// session's own payloads stay long until then).
TEST(ShortPayload, DamagedOnesAreDroppedAndChangeNothing) {
    vinom::ClientSession s = connected();
    Bytes p = packet("payload_server");
    vinom::ClientSession::Kind kind;
    Bytes out;
    for (std::size_t i = 0; i < p.size(); ++i) {
        for (std::uint8_t flip : {std::uint8_t{0xff}, static_cast<std::uint8_t>(1u << (i % 8))}) {
            Bytes q = p;
            q[i] ^= flip;
            out.clear();
            EXPECT_NE(s.receive(q, kind, out), Error::ok) << "byte " << i;
            EXPECT_EQ(kind, vinom::ClientSession::Kind::none);
            EXPECT_TRUE(out.empty());
        }
    }
    for (std::size_t n = 0; n < p.size(); ++n) {
        EXPECT_NE(s.receive(Bytes(p.begin(), p.begin() + static_cast<long>(n)), kind, out),
                  Error::ok)
            << "cut to " << n;
    }
    Bytes longer = p;
    longer.push_back(0);
    EXPECT_NE(s.receive(longer, kind, out), Error::ok);
    EXPECT_FALSE(s.sends_short());
    EXPECT_EQ(s.state(), vinom::ClientSession::State::connected);
    Bytes sealed;
    ASSERT_EQ(s.seal(vinom::PAYLOAD, unhex("000000000000000000"), sealed), Error::ok);
    EXPECT_EQ(sealed[0], vinom::PAYLOAD);
    ASSERT_EQ(s.receive(p, kind, out), Error::ok);
    EXPECT_EQ(kind, vinom::ClientSession::Kind::payload);
    EXPECT_TRUE(s.sends_short());
    ASSERT_EQ(s.seal(vinom::PAYLOAD, unhex("000000000000000000"), sealed), Error::ok);
    EXPECT_EQ(sealed[0], vinom::SHORT_PAYLOAD);
    EXPECT_EQ(sealed.size(), 3u + 9 + 16);
    // Keepalives and disconnects stay long.
    ASSERT_EQ(s.seal(vinom::KEEPALIVE, vinom::View(), sealed), Error::ok);
    EXPECT_EQ(sealed.size(), 25u);
    EXPECT_EQ(sealed[0], vinom::KEEPALIVE);
    ASSERT_EQ(s.seal(vinom::DISCONNECT, vinom::View(), sealed), Error::ok);
    EXPECT_EQ(sealed[0], vinom::DISCONNECT);
}

// The host's sequences across 16-bit wraps, each found whole (a long packet of
// the same number is then a replay); one a tie away is taken to be behind.
TEST(ShortPayload, SequencesAcrossTheWrap) {
    vinom::ClientSession s = connected(0x1fff0);
    vinom::ClientSession::Kind kind;
    Bytes out;
    for (std::uint64_t seq = 0x1fff1; seq < 0x20010; ++seq)
        ASSERT_EQ(s.receive(host_short(seq), kind, out), Error::ok) << std::hex << seq;
    // Far ahead, in steps under 32768: 0x20010 + 3 * 0x7fff crosses two more wraps.
    std::uint64_t seq = 0x2000f;
    for (int i = 0; i < 3; ++i) {
        seq += 0x7fff;
        ASSERT_EQ(s.receive(host_short(seq), kind, out), Error::ok) << std::hex << seq;
    }
    Bytes long_form;
    ASSERT_EQ(vinom::seal_packet(vinom::PAYLOAD, vt::key(derived().at("server_to_client_key")),
                                 seq, unhex("000000000000000000"), long_form),
              Error::ok);
    EXPECT_EQ(s.receive(long_form, kind, out), Error::replayed);
    // 32768 ahead reads as 32768 behind: outside the window, replayed.
    EXPECT_EQ(s.receive(host_short(seq + 0x8000), kind, out), Error::replayed);
    EXPECT_EQ(s.receive(host_short(seq + 0x7fff), kind, out), Error::ok);

    // The welcome at 3: a packet numbered 0x8003 reads as 3 - 0x8000, below 0: dropped
    // as replayed; 0x8002 is ahead.
    vinom::ClientSession low = connected(3);
    EXPECT_EQ(low.receive(host_short(0x8003), kind, out), Error::replayed);
    EXPECT_FALSE(low.sends_short());
    EXPECT_EQ(low.receive(host_short(0x8002), kind, out), Error::ok);
    EXPECT_TRUE(low.sends_short());
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
    EXPECT_EQ(vinom_game_protocol(), vinom::GAME_PROTOCOL);
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
