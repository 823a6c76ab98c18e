// Every vector of the groups the native core implements, both ways: encoding
// the inputs gives the vector's bytes, decoding the bytes gives its fields.
// Groups: session (docs/protocol.md 12), reliability (13.14, the body codec;
// the endpoint that decides what goes into a body is not here) and
// route_tokens (15.1), and schema (16.8) one way: each snapshot decodes against
// its baseline to its view (the native core decodes schema snapshots, and
// encodes none); messages (14.1) are in test_messages.cpp, delta (16.7) in
// test_delta.cpp, schema's malformed frames in test_schema.cpp. The rest is
// not a native client's (as for the web client,
// tests/webclient/vectors.test.mjs): webtransport (17) is the browsers'
// transport, and a native client speaks UDP; records and state_hashes (18)
// are the host's files and hashes, which no client reads (a replay reaches a
// client as views).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "support.hpp"
#include "vinom.h"
#include "vinom/client.hpp"
#include "vinom/delta.hpp"
#include "vinom/endpoint.hpp"
#include "vinom/schema.hpp"
#include "vinom/session.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::hex;
using vt::unhex;

namespace {

const nlohmann::ordered_json& session() { return vt::vectors().at("session"); }
const nlohmann::ordered_json& inputs() { return session().at("inputs"); }
const nlohmann::ordered_json& derived() { return session().at("derived"); }
Bytes packet(const std::string& name) { return unhex(vt::vector("session", name).at("hex")); }
vinom::Key c2s() { return vt::key(derived().at("client_to_server_key")); }
vinom::Key s2c() { return vt::key(derived().at("server_to_client_key")); }
std::uint64_t client_first() { return derived().at("client_first_sequence"); }
std::uint64_t host_first() { return derived().at("first_session_sequence"); }
std::uint64_t stateless_first() { return derived().at("first_stateless_sequence"); }

vinom::PublicToken public_token() {
    vinom::PublicToken t;
    EXPECT_EQ(vinom::parse_public_token(session().at("token").dump(), t), Error::ok);
    return t;
}

Bytes cookie() {
    std::uint64_t seq = 0;
    Bytes c;
    EXPECT_EQ(vinom::open_challenge(s2c(), packet("challenge"), seq, c), Error::ok);
    return c;
}

}  // namespace

TEST(Vectors, FileShape) {
    EXPECT_EQ(vt::vectors().at("format"), "vinom-protocol-vectors");
    EXPECT_EQ(vt::vectors().at("version"), 1);
    EXPECT_EQ(inputs().at("protocol_version"), vinom::PROTOCOL_VERSION);
}

// Each group of the file is checked here or said not to be a client's (above):
// a new group fails this until it is one or the other.
TEST(Vectors, EveryGroupIsAccountedFor) {
    const std::vector<std::string> checked = {"session", "reliability", "messages",
                                              "route_tokens", "delta", "schema"};
    const std::vector<std::string> not_a_clients = {"webtransport", "records", "state_hashes"};
    for (const auto& item : vt::vectors().items()) {
        const std::string& group = item.key();
        if (group == "format" || group == "version" || group == "about") continue;
        bool known = std::count(checked.begin(), checked.end(), group) +
                         std::count(not_a_clients.begin(), not_a_clients.end(), group) ==
                     1;
        EXPECT_TRUE(known) << "the group " << group << " is neither checked nor excluded";
    }
    for (const auto& group : checked) {
        ASSERT_TRUE(vt::vectors().contains(group)) << group;
        EXPECT_FALSE(vt::vectors().at(group).at("vectors").empty()) << group;
    }
}

TEST(Session, PublicTokenJson) {
    const auto& j = session().at("token");
    vinom::PublicToken t = public_token();
    EXPECT_EQ(t.version, j.at("version"));
    EXPECT_EQ(t.application_id, inputs().at("application_id"));
    EXPECT_EQ(t.player_id, inputs().at("player_id"));
    EXPECT_EQ(t.match_id, inputs().at("match_id"));
    EXPECT_EQ(t.created_at, inputs().at("created_at"));
    EXPECT_EQ(t.expires_at, inputs().at("created_at").get<std::uint64_t>() +
                                inputs().at("token_lifetime").get<std::uint64_t>());
    EXPECT_EQ(t.timeout_ms, inputs().at("timeout_ms"));
    ASSERT_EQ(t.hosts.size(), inputs().at("hosts").size());
    EXPECT_EQ(t.hosts[0].host, inputs().at("hosts")[0].at("host"));
    EXPECT_EQ(t.hosts[0].port, inputs().at("hosts")[0].at("port"));
    EXPECT_EQ(hex(Bytes(t.nonce.begin(), t.nonce.end())), derived().at("token_nonce"));
    EXPECT_EQ(t.client_to_server_key, c2s());
    EXPECT_EQ(t.server_to_client_key, s2c());
}

TEST(Session, PrivateTokenBothWays) {
    vinom::PrivateToken t;
    t.created_at = inputs().at("created_at");
    t.timeout_ms = inputs().at("timeout_ms");
    t.client_to_server_key = c2s();
    t.server_to_client_key = s2c();
    t.player_id = inputs().at("player_id");
    t.match_id = inputs().at("match_id");
    for (const auto& h : inputs().at("hosts")) t.hosts.push_back({h.at("host"), h.at("port")});
    t.user_data = unhex(inputs().at("user_data_hex"));
    Bytes encoded;
    ASSERT_EQ(vinom::encode_private_token(t, encoded), Error::ok);
    EXPECT_EQ(hex(encoded), vt::vector("session", "private_token").at("hex"));

    vinom::PrivateToken back;
    ASSERT_EQ(vinom::decode_private_token(packet("private_token"), back), Error::ok);
    EXPECT_EQ(back.created_at, t.created_at);
    EXPECT_EQ(back.timeout_ms, t.timeout_ms);
    EXPECT_EQ(back.client_to_server_key, t.client_to_server_key);
    EXPECT_EQ(back.server_to_client_key, t.server_to_client_key);
    EXPECT_EQ(back.player_id, t.player_id);
    EXPECT_EQ(back.match_id, t.match_id);
    EXPECT_EQ(back.hosts, t.hosts);
    EXPECT_EQ(back.user_data, t.user_data);

    // 4.2: the public token's sealed part is seal(token_key, nonce, ad, private).
    vinom::PublicToken pub = public_token();
    Bytes ad = vinom::token_ad(pub.version, pub.application_id, pub.expires_at);
    Bytes sealed;
    vinom::Key token_key = vt::key(inputs().at("token_key"));
    ASSERT_EQ(vinom::seal(token_key, pub.nonce, ad, encoded, sealed), Error::ok);
    EXPECT_EQ(hex(sealed), hex(pub.sealed_token));
    Bytes opened;
    ASSERT_EQ(vinom::open(token_key, pub.nonce, ad, pub.sealed_token, opened), Error::ok);
    EXPECT_EQ(hex(opened), hex(encoded));
}

TEST(Session, RequestBothWays) {
    vinom::PublicToken t = public_token();
    EXPECT_EQ(hex(vinom::encode_request(t)), hex(packet("request")));
    vinom::Request r;
    ASSERT_EQ(vinom::decode_request(packet("request"), r), Error::ok);
    EXPECT_EQ(r.version, t.version);
    EXPECT_EQ(r.application_id, t.application_id);
    EXPECT_EQ(r.expires_at, t.expires_at);
    EXPECT_EQ(r.nonce, t.nonce);
    EXPECT_EQ(r.sealed_token, t.sealed_token);
}

TEST(Session, ChallengeBothWays) {
    std::uint64_t seq = 0;
    Bytes c;
    ASSERT_EQ(vinom::open_challenge(s2c(), packet("challenge"), seq, c), Error::ok);
    EXPECT_EQ(seq, stateless_first());
    EXPECT_GE(c.size(), vinom::MIN_COOKIE);
    Bytes again;
    ASSERT_EQ(vinom::seal_challenge(s2c(), seq, c, again), Error::ok);
    EXPECT_EQ(hex(again), hex(packet("challenge")));
}

TEST(Session, ResponseBothWays) {
    Bytes c = cookie();
    Bytes r;
    ASSERT_EQ(vinom::seal_response(c2s(), client_first(), c, r), Error::ok);
    EXPECT_EQ(hex(r), hex(packet("response")));
    std::uint64_t seq = 0;
    Bytes echoed;
    ASSERT_EQ(vinom::open_response(c2s(), packet("response"), seq, echoed), Error::ok);
    EXPECT_EQ(seq, client_first());
    EXPECT_EQ(echoed, c);
}

TEST(Session, WelcomeBothWays) {
    const auto& v = vt::vector("session", "welcome");
    vinom::Welcome w;
    ASSERT_EQ(vinom::open_welcome(s2c(), packet("welcome"), w), Error::ok);
    EXPECT_EQ(w.sequence, host_first());
    EXPECT_EQ(w.session_id, v.at("session_id"));
    EXPECT_EQ(w.server_time, v.at("server_time").get<double>());
    EXPECT_EQ(w.server_time, inputs().at("host_time").get<double>());
    Bytes plain;
    Bytes p = packet("welcome");
    ASSERT_EQ(vinom::open(s2c(), vinom::make_nonce(0, w.sequence), vinom::View(p).sub(0, 9),
                          vinom::View(p).sub(9, p.size() - 9), plain),
              Error::ok);
    EXPECT_EQ(hex(plain), v.at("plaintext"));
    Bytes again;
    ASSERT_EQ(vinom::seal_welcome(s2c(), w, again), Error::ok);
    EXPECT_EQ(hex(again), hex(p));
}

namespace {

struct Sealed {
    const char* name;
    std::uint8_t type;
    bool from_client;
    std::uint64_t sequence;
};

// The packets with a long header (5.1), in the scenario's order: the client's
// response is its first sequence, the host's welcome its.
std::vector<Sealed> sealed_vectors() {
    return {
        {"payload_client", vinom::PAYLOAD, true, client_first() + 1},
        {"offer", vinom::KEEPALIVE, true, client_first() + 2},
        {"keepalive", vinom::KEEPALIVE, true, client_first() + 4},
        {"disconnect", vinom::DISCONNECT, true, client_first() + 5},
        {"denied", vinom::DENIED, false, stateless_first()},
    };
}

// The short payloads (5.9), and the newest sequence their receiver had
// accepted from the sender (the welcome; the client's offer).
struct Short {
    const char* name;
    bool from_client;
    std::uint64_t sequence;
    std::uint64_t newest;
};

std::vector<Short> short_vectors() {
    return {
        {"payload_server", false, host_first() + 1, host_first()},
        {"payload_client_short", true, client_first() + 3, client_first() + 2},
    };
}

// The 9-byte header of 5.1.
Bytes long_header(std::uint8_t type, std::uint64_t sequence) {
    Bytes h{type};
    for (int i = 0; i < 8; ++i) h.push_back(static_cast<std::uint8_t>(sequence >> (8 * i)));
    return h;
}

}  // namespace

TEST(Session, SealedPacketsBothWays) {
    for (const Sealed& s : sealed_vectors()) {
        SCOPED_TRACE(s.name);
        const auto& v = vt::vector("session", s.name);
        Bytes plain = v.contains("plaintext") ? unhex(v.at("plaintext")) : Bytes();
        vinom::Key k = s.from_client ? c2s() : s2c();
        Bytes out;
        ASSERT_EQ(vinom::seal_packet(s.type, k, s.sequence, plain, out), Error::ok);
        EXPECT_EQ(hex(out), v.at("hex"));
        std::uint8_t type = 0;
        std::uint64_t seq = 0;
        Bytes opened;
        ASSERT_EQ(vinom::open_packet(k, unhex(v.at("hex")), type, seq, opened), Error::ok);
        EXPECT_EQ(type, s.type);
        EXPECT_EQ(seq, s.sequence);
        EXPECT_EQ(opened, plain);
        // The other direction's key never opens it.
        EXPECT_EQ(vinom::open_packet(s.from_client ? s2c() : c2s(), unhex(v.at("hex")), type,
                                     seq, opened),
                  Error::auth_failed);
    }
}

// 5.9: type 8, the sequence's low 16 bits, the seal whose associated data is the
// long header of type 8 (not 5) and the full sequence, which the receiver finds
// from the newest it accepted.
TEST(Session, ShortPayloadsBothWays) {
    for (const Short& s : short_vectors()) {
        SCOPED_TRACE(s.name);
        const auto& v = vt::vector("session", s.name);
        Bytes plain = unhex(v.at("plaintext"));
        Bytes p = unhex(v.at("hex"));
        vinom::Key k = s.from_client ? c2s() : s2c();
        Bytes out;
        ASSERT_EQ(vinom::seal_short_payload(k, s.sequence, plain, out), Error::ok);
        EXPECT_EQ(hex(out), v.at("hex"));
        EXPECT_EQ(p.size(), vinom::SHORT_HEADER_SIZE + plain.size() + vinom::TAG_SIZE);
        std::uint16_t low = 0;
        ASSERT_EQ(vinom::read_short_header(p, low), Error::ok);
        EXPECT_EQ(low, s.sequence & 0xffff);
        std::uint64_t seq = 0;
        ASSERT_TRUE(vinom::full_sequence(low, s.newest, seq));
        EXPECT_EQ(seq, s.sequence);
        Bytes opened;
        ASSERT_EQ(vinom::open_short_payload(k, p, seq, opened), Error::ok);
        EXPECT_EQ(opened, plain);
        // The seal is the long packet's, but for its associated data: type 8.
        vinom::View sealed = vinom::View(p).sub(3, p.size() - 3);
        ASSERT_EQ(vinom::open(k, vinom::make_nonce(0, seq), long_header(vinom::SHORT_PAYLOAD, seq),
                              sealed, opened),
                  Error::ok);
        EXPECT_EQ(opened, plain);
        EXPECT_EQ(vinom::open(k, vinom::make_nonce(0, seq), long_header(vinom::PAYLOAD, seq),
                              sealed, opened),
                  Error::auth_failed);
        // Another full sequence with the same low bits, or the other direction's key: refused.
        EXPECT_EQ(vinom::open_short_payload(k, p, seq + 0x10000, opened), Error::auth_failed);
        EXPECT_EQ(vinom::open_short_payload(k, p, seq + 1, opened), Error::bad_field);
        EXPECT_EQ(vinom::open_short_payload(s.from_client ? s2c() : c2s(), p, seq, opened),
                  Error::auth_failed);
        // A long payload is not a short one.
        EXPECT_EQ(vinom::read_short_header(packet("payload_client"), low), Error::bad_type);
    }
}

// The payloads' plaintexts are bodies of 13.3 carrying the scenario's messages:
// the client's `hello` reliable, the host's `state` (acking the client's body 0),
// then the client's `hello` again, unreliable (its body 1, acking the host's 0).
TEST(Session, PayloadBodies) {
    struct Case {
        const char* name;
        const char* message;
        int channel;
        std::uint16_t sequence;
        std::uint16_t ack;
    };
    for (const Case& c : {Case{"payload_client", "client_message", 1, 0, 0xffff},
                          Case{"payload_server", "host_message", 0, 0, 0},
                          Case{"payload_client_short", "client_message", 0, 1, 0}}) {
        SCOPED_TRACE(c.name);
        vinom::BodyHeader h;
        std::vector<vinom::Message> m;
        ASSERT_EQ(vinom::decode_body(unhex(vt::vector("session", c.name).at("plaintext")),
                                     vinom::MAX_BODY, h, m),
                  Error::ok);
        EXPECT_EQ(h.sequence, c.sequence);
        EXPECT_EQ(h.ack, c.ack);
        EXPECT_EQ(h.ack_bits, 0u);
        EXPECT_EQ(h.ack_delay, 0);
        ASSERT_EQ(m.size(), 1u);
        EXPECT_EQ(m[0].channel, c.channel);
        EXPECT_EQ(m[0].id, 0);
        EXPECT_EQ(hex(m[0].data), inputs().at(c.message).at("hex"));
    }
    EXPECT_EQ(inputs().at("client_message").at("channel"), 1);
    EXPECT_EQ(inputs().at("host_message").at("channel"), 0);
    // The offer's plaintext: bit 0 of its first byte (5.9), and bit 1 (5.10).
    EXPECT_EQ(vt::vector("session", "offer").at("plaintext"), "01");
    EXPECT_EQ(vt::vector("session", "offer_slim").at("plaintext"), "03");
}

// The scenario of section 12 as tests/protocol/test_protocol_vectors.py's run()
// plays it, the client's side by the core's Client (its timers and endpoint):
// every datagram it sends is the vector's, and it takes every one the host sent.
// `slim`: the client offers slim payloads too (5.10), and the names of the three
// vectors that differ are the `_slim` ones.
void scenario_through_the_client(bool slim) {
    const double now = inputs().at("host_time");
    vinom::Client client(public_token(), client_first(), now, 0.0, true, slim);
    const std::string offer = slim ? "offer_slim" : "offer";
    const std::string server = slim ? "payload_server_slim" : "payload_server";
    const std::string mine = slim ? "payload_client_slim" : "payload_client_short";
    auto sent = [&] {
        std::vector<std::string> out;
        Bytes d;
        while (client.next_datagram(d)) out.push_back(hex(d));
        return out;
    };
    auto events = [&] {
        std::vector<vinom::Client::Event> out;
        vinom::Client::Event e;
        while (client.next_event(e)) out.push_back(std::move(e));
        return out;
    };
    using Strings = std::vector<std::string>;
    client.update(now);
    EXPECT_EQ(sent(), Strings{hex(packet("request"))});
    ASSERT_EQ(client.receive(packet("challenge"), now), Error::ok);
    EXPECT_EQ(sent(), Strings{hex(packet("response"))});
    ASSERT_EQ(client.receive(packet("welcome"), now), Error::ok);
    ASSERT_EQ(events().size(), 1u);
    EXPECT_EQ(client.state(), vinom::Client::State::connected);

    // `hello` on channel 1, then the offer of short payloads, at the first update.
    ASSERT_EQ(client.send(unhex(inputs().at("client_message").at("hex"))), Error::ok);
    client.update(now);
    EXPECT_EQ(sent(), (Strings{hex(packet("payload_client")), hex(packet(offer))}));
    EXPECT_FALSE(client.sends_short());
    // The host's short payload: its `state`, and the ack of the client's body 0.
    ASSERT_EQ(client.receive(packet(server), now), Error::ok);
    auto got = events();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].kind, vinom::Client::Event::Kind::message);
    EXPECT_EQ(got[0].channel, 0);
    EXPECT_EQ(hex(got[0].data), inputs().at("host_message").at("hex"));
    EXPECT_EQ(client.pending(), 0u);
    EXPECT_TRUE(client.sends_short());
    EXPECT_EQ(client.sends_slim(), slim);
    // So the client's payloads go short: `hello` on channel 0.
    ASSERT_EQ(client.send_unreliable(unhex(inputs().at("client_message").at("hex"))), Error::ok);
    client.update(now);
    EXPECT_EQ(sent(), Strings{hex(packet(mine))});
    // Keepalives stay long; no offer more.
    double later = inputs().at("keepalive_time");
    client.update(later - 0.5);
    EXPECT_TRUE(sent().empty());
    client.update(later);
    EXPECT_EQ(sent(), Strings{hex(packet("keepalive"))});
    client.close();
    Strings out = sent();
    ASSERT_EQ(out.size(), static_cast<std::size_t>(vinom::Client::DISCONNECT_REDUNDANCY));
    EXPECT_EQ(out[0], hex(packet("disconnect")));

    const vinom::Client::Counts& n = client.counts();
    EXPECT_EQ(n.offers, 1u);
    EXPECT_EQ(n.payloads_sent, 2u);
    EXPECT_EQ(n.short_sent, 1u);
    EXPECT_EQ(n.payloads_received, 1u);
    EXPECT_EQ(n.short_received, 1u);
    EXPECT_EQ(n.slim_sent, slim ? 1u : 0u);
    EXPECT_EQ(n.slim_received, slim ? 1u : 0u);
    EXPECT_EQ(n.dropped, 0u);
}

TEST(Session, ScenarioThroughTheClient) { scenario_through_the_client(false); }
TEST(Session, ScenarioThroughTheClientWithSlimPayloads) { scenario_through_the_client(true); }

// The slim vectors' plaintexts (5.10) are the slim layout of their bodies (13.3),
// both ways; so are the layout's documented examples; malformed ones are refused.
TEST(Session, SlimBodies) {
    for (const char* name : {"payload_server_slim", "payload_client_slim"}) {
        SCOPED_TRACE(name);
        const auto& v = vt::vector("session", name);
        Bytes slim, body;
        ASSERT_EQ(vinom::slim_body(unhex(v.at("body")), slim), Error::ok);
        EXPECT_EQ(hex(slim), v.at("plaintext"));
        ASSERT_EQ(vinom::body_of_slim(unhex(v.at("plaintext")), body), Error::ok);
        EXPECT_EQ(hex(body), v.at("body"));
    }
    const std::pair<const char*, const char*> examples[] = {
        {"07000300ffffffff0c020009006865", "10070003000c09006865"},
        {"07000300ffffffff0c024009006865", "30070003000c09006865"},
        {"07000300ff00ff120c0100090061" "01400a0062", "0a070003000c0012010009006101400a0062"},
        {"0000ffff0000000000", "0f0000ffff0000000000"},
    };
    for (const auto& [full, slim_hex] : examples) {
        SCOPED_TRACE(full);
        Bytes slim, body;
        ASSERT_EQ(vinom::slim_body(unhex(full), slim), Error::ok);
        EXPECT_EQ(hex(slim), slim_hex);
        ASSERT_EQ(vinom::body_of_slim(unhex(slim_hex), body), Error::ok);
        EXPECT_EQ(hex(body), full);
    }
    Bytes out;
    EXPECT_EQ(vinom::body_of_slim(unhex("1007000300"), out), Error::truncated);
    EXPECT_EQ(vinom::body_of_slim(unhex("40070003000c"), out), Error::bad_field);
    EXPECT_EQ(vinom::body_of_slim(unhex("20070003000c0900"), out), Error::bad_field);
    EXPECT_EQ(vinom::body_of_slim(unhex("0f070003000cffff"), out), Error::truncated);
    EXPECT_EQ(vinom::body_of_slim(unhex("10070003000c09"), out), Error::truncated);
    EXPECT_EQ(vinom::slim_body(unhex("0700030000"), out), Error::truncated);
}

// The whole scenario through the C ABI, as an engine would drive it.
TEST(Session, ClientThroughCAbi) {
    std::string json = session().at("token").dump();
    vinom_token* token = nullptr;
    ASSERT_EQ(vinom_token_parse(json.data(), json.size(), &token), VINOM_OK);
    vinom_session* s = nullptr;
    ASSERT_EQ(vinom_session_new(token, client_first(), &s), VINOM_OK);
    vinom_token_free(token);  // the session keeps its own copy

    std::uint8_t out[VINOM_MAX_DATAGRAM];
    std::size_t len = 0;
    vinom_event event = VINOM_EVENT_NONE;
    auto got = [&] { return hex(Bytes(out, out + len)); };
    auto feed = [&](const std::string& name) {
        Bytes p = packet(name);
        return vinom_session_receive(s, p.data(), p.size(), &event, out, sizeof out, &len);
    };

    ASSERT_EQ(vinom_session_request(s, out, sizeof out, &len), VINOM_OK);
    EXPECT_EQ(got(), hex(packet("request")));
    ASSERT_EQ(feed("challenge"), VINOM_OK);
    EXPECT_EQ(event, VINOM_EVENT_CHALLENGE);
    EXPECT_EQ(got(), hex(packet("response")));
    EXPECT_EQ(vinom_session_state(s), VINOM_STATE_RESPONDING);
    ASSERT_EQ(feed("welcome"), VINOM_OK);
    EXPECT_EQ(event, VINOM_EVENT_WELCOME);
    EXPECT_EQ(vinom_session_state(s), VINOM_STATE_CONNECTED);
    EXPECT_EQ(vinom_session_id(s), vt::vector("session", "welcome").at("session_id"));
    EXPECT_EQ(vinom_session_server_time(s), inputs().at("host_time").get<double>());

    Bytes body = unhex(vt::vector("session", "payload_client").at("plaintext"));
    ASSERT_EQ(vinom_session_seal(s, VINOM_PACKET_PAYLOAD, body.data(), body.size(), out,
                                 sizeof out, &len),
              VINOM_OK);
    EXPECT_EQ(got(), hex(packet("payload_client")));
    // The offer (5.9): a keepalive whose plaintext is 01.
    const std::uint8_t offer[] = {0x01};
    ASSERT_EQ(vinom_session_seal(s, VINOM_PACKET_KEEPALIVE, offer, sizeof offer, out, sizeof out,
                                 &len),
              VINOM_OK);
    EXPECT_EQ(got(), hex(packet("offer")));
    // The host's payload, short: read as a payload.
    ASSERT_EQ(feed("payload_server"), VINOM_OK);
    EXPECT_EQ(event, VINOM_EVENT_PAYLOAD);
    EXPECT_EQ(got(), vt::vector("session", "payload_server").at("plaintext"));
    // Section 6: the same packet again is a replay.
    EXPECT_EQ(feed("payload_server"), VINOM_REPLAYED);
    EXPECT_EQ(event, VINOM_EVENT_NONE);
    // A challenge once connected does not fit the state.
    EXPECT_EQ(feed("challenge"), VINOM_UNEXPECTED);

    // A short payload came: the client's go short (the size needed says so first).
    body = unhex(vt::vector("session", "payload_client_short").at("plaintext"));
    ASSERT_EQ(vinom_session_seal(s, VINOM_PACKET_PAYLOAD, body.data(), body.size(), out, 3, &len),
              VINOM_BUFFER_TOO_SMALL);
    EXPECT_EQ(len, packet("payload_client_short").size());
    ASSERT_EQ(vinom_session_seal(s, VINOM_PACKET_PAYLOAD, body.data(), body.size(), out,
                                 sizeof out, &len),
              VINOM_OK);
    EXPECT_EQ(got(), hex(packet("payload_client_short")));

    ASSERT_EQ(vinom_session_seal(s, VINOM_PACKET_KEEPALIVE, nullptr, 0, out, sizeof out, &len),
              VINOM_OK);
    EXPECT_EQ(got(), hex(packet("keepalive")));
    ASSERT_EQ(vinom_session_seal(s, VINOM_PACKET_DISCONNECT, nullptr, 0, out, sizeof out, &len),
              VINOM_OK);
    EXPECT_EQ(got(), hex(packet("disconnect")));
    EXPECT_EQ(vinom_session_state(s), VINOM_STATE_CLOSED);
    vinom_session_free(s);
}

TEST(Session, DeniedThroughCAbi) {
    std::string json = session().at("token").dump();
    vinom_token* token = nullptr;
    ASSERT_EQ(vinom_token_parse(json.data(), json.size(), &token), VINOM_OK);
    vinom_session* s = nullptr;
    ASSERT_EQ(vinom_session_new(token, client_first(), &s), VINOM_OK);
    Bytes p = packet("denied");
    std::uint8_t out[VINOM_MAX_DATAGRAM];
    std::size_t len = 0;
    vinom_event event = VINOM_EVENT_NONE;
    ASSERT_EQ(vinom_session_receive(s, p.data(), p.size(), &event, out, sizeof out, &len),
              VINOM_OK);
    EXPECT_EQ(event, VINOM_EVENT_DENIED);
    EXPECT_EQ(vinom_session_state(s), VINOM_STATE_FAILED);
    vinom_session_free(s);
    vinom_token_free(token);
}

// -- reliability (13.14): every body decodes and re-encodes to its bytes, and
// carries what the vector says: the fresh endpoint's sequences, the acks of
// the bodies it received, the ack delay, and the messages sent and delivered.

namespace {

struct Decoded {
    vinom::BodyHeader header;
    std::vector<vinom::Message> messages;
};

Decoded decode_both_ways(const std::string& text, std::size_t max_body) {
    Decoded d;
    Bytes bytes = unhex(text);
    EXPECT_EQ(vinom::decode_body(bytes, max_body, d.header, d.messages), Error::ok) << text;
    Bytes again;
    EXPECT_EQ(vinom::encode_body(d.header, d.messages, max_body, again), Error::ok);
    EXPECT_EQ(hex(again), text);
    return d;
}

// Whole messages, in body order, fragments joined (13.4).
std::vector<std::pair<int, std::string>> joined(const std::vector<Decoded>& bodies) {
    std::vector<std::pair<int, std::string>> out;
    Bytes partial;
    for (const Decoded& d : bodies) {
        for (const vinom::Message& m : d.messages) {
            partial.insert(partial.end(), m.data.begin(), m.data.end());
            if (m.fragment && m.index != m.last) continue;
            out.emplace_back(m.channel, hex(partial));
            partial.clear();
        }
    }
    return out;
}

std::vector<std::pair<int, std::string>> listed(const nlohmann::ordered_json& list) {
    std::vector<std::pair<int, std::string>> out;
    for (const auto& m : list) out.emplace_back(m.at("channel").get<int>(), m.at("hex"));
    return out;
}

}  // namespace

TEST(Reliability, BodiesBothWays) {
    const auto& group = vt::vectors().at("reliability").at("vectors");
    ASSERT_FALSE(group.empty());
    for (const auto& v : group) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        std::size_t max_body = v.at("max_body");
        std::vector<Decoded> received;
        for (const auto& r : v.at("received")) received.push_back(decode_both_ways(r.at("hex"), max_body));
        std::vector<Decoded> bodies;
        for (const auto& b : v.at("bodies")) bodies.push_back(decode_both_ways(b, max_body));

        // The acks a fresh endpoint owes for what it received (13.2, 13.3, 13.6).
        std::uint16_t ack = 0xffff;
        std::uint32_t bits = 0;
        double at = 0;
        bool any = false;
        for (std::size_t i = 0; i < received.size(); ++i) {
            std::uint16_t seq = received[i].header.sequence;
            if (!any || static_cast<std::uint16_t>(seq - ack) < 0x8000) {
                ack = seq;
                at = v.at("received")[i].at("at");
            }
            any = true;
        }
        for (const Decoded& r : received) {
            std::uint16_t back = static_cast<std::uint16_t>(ack - r.header.sequence);
            if (back >= 1 && back <= 32) bits |= 1u << (back - 1);
        }
        double held = any ? std::round((v.at("now").get<double>() - at) * 1000) : 0;
        std::uint8_t delay = static_cast<std::uint8_t>(std::min(held, 255.0));
        for (std::size_t i = 0; i < bodies.size(); ++i) {
            EXPECT_EQ(bodies[i].header.sequence, i);
            EXPECT_EQ(bodies[i].header.ack, ack);
            EXPECT_EQ(bodies[i].header.ack_bits, bits);
            EXPECT_EQ(bodies[i].header.ack_delay, delay);
        }

        // What was sent is what the bodies carry (snapshots go before new reliable
        // messages, 13.5, so compare as sets) ...
        auto carried = joined(bodies);
        auto sent = listed(v.at("send"));
        std::sort(carried.begin(), carried.end());
        std::sort(sent.begin(), sent.end());
        EXPECT_EQ(carried, sent);
        // ... and a fresh endpoint delivers them in body order.
        if (v.contains("delivered")) {
            EXPECT_EQ(joined(bodies), listed(v.at("delivered")));
            // The client's endpoint, given the bodies, delivers the same.
            vinom::Endpoint endpoint;
            std::vector<std::pair<int, std::string>> got;
            for (const auto& b : v.at("bodies")) {
                Bytes bytes = unhex(b.get<std::string>());
                for (auto& [channel, data] : endpoint.receive(vinom::View(bytes), 0.0)) {
                    got.emplace_back(channel, hex(data));
                }
            }
            EXPECT_EQ(got, listed(v.at("delivered")));
        }
    }
}

// -- route tokens (15.1), sealed and opened as the lobby and the relay do.

namespace {

std::array<std::uint8_t, 16> address_of(const std::string& host) {
    std::array<std::uint8_t, 16> a{};
    std::uint8_t v4[4];
    if (inet_pton(AF_INET, host.c_str(), v4) == 1) {
        a[10] = a[11] = 0xff;
        std::copy(v4, v4 + 4, a.begin() + 12);
    } else {
        EXPECT_EQ(inet_pton(AF_INET6, host.c_str(), a.data()), 1) << host;
    }
    return a;
}

}  // namespace

TEST(RouteTokens, EveryVectorBothWays) {
    const auto& group = vt::vectors().at("route_tokens");
    vinom::Key key = vt::key(group.at("inputs").at("key"));
    Bytes nonce_bytes = unhex(group.at("inputs").at("nonce"));
    vinom::Nonce nonce{};
    std::copy(nonce_bytes.begin(), nonce_bytes.end(), nonce.begin());
    ASSERT_FALSE(group.at("vectors").empty());
    for (const auto& v : group.at("vectors")) {
        SCOPED_TRACE(v.at("name").get<std::string>());
        vinom::Route route;
        route.expires_at = v.at("expires_at");
        route.port = v.at("port");
        route.address = address_of(v.at("host"));
        Bytes out;
        ASSERT_EQ(vinom::seal_route_token(key, nonce, route, out), Error::ok);
        EXPECT_EQ(hex(out), v.at("hex"));
        Bytes token = unhex(v.at("hex"));
        vinom::Route back;
        ASSERT_EQ(vinom::open_route_token(key, token, back), Error::ok);
        EXPECT_EQ(back.expires_at, route.expires_at);
        EXPECT_EQ(back.port, route.port);
        EXPECT_EQ(back.address, route.address);
        Bytes plain;
        ASSERT_EQ(vinom::open(key, nonce, vinom::View(token).sub(0, 1),
                              vinom::View(token).sub(13, token.size() - 13), plain),
                  Error::ok);
        EXPECT_EQ(hex(plain), v.at("plaintext"));
        // Every truncation and every flipped bit is refused.
        for (std::size_t n = 0; n < token.size(); ++n) {
            EXPECT_NE(vinom::open_route_token(key, vinom::View(token.data(), n), back), Error::ok);
            Bytes q = token;
            q[n] ^= 0x10;
            EXPECT_NE(vinom::open_route_token(key, q, back), Error::ok) << n;
        }
    }
}

// -- schema snapshots (16.8), decoded as a client that applied their baselines.

namespace {

// The wire view and snapshot of the schema vector `name`, its baselines (named
// by `baseline`, one after another) decoded first.
// `waiting`: the rows that wait in it (flag 02).
void decode_schema_vector(const vinom::ViewSchema& schema, const std::string& name,
                          vinom::Snapshot& out, vinom::SchemaWireView& wire,
                          vinom::SchemaWaiting& waiting) {
    const auto& v = vt::vector("schema", name);
    vinom::SchemaBaselines baselines;
    if (!v.at("baseline").is_null()) {
        vinom::Snapshot base;
        vinom::SchemaWireView base_wire;
        vinom::SchemaWaiting base_waiting;
        ASSERT_NO_FATAL_FAILURE(
            decode_schema_vector(schema, v.at("baseline"), base, base_wire, base_waiting));
        baselines[base.tick] = base_wire;
    }
    ASSERT_EQ(vinom::decode_schema_snapshot(schema, unhex(v.at("hex")), baselines, out, wire,
                                            waiting),
              Error::ok)
        << name;
}

}  // namespace

TEST(Schema, EveryVector) {
    const auto& group = vt::vectors().at("schema");
    vinom::ViewSchema schema;
    ASSERT_EQ(vinom::ViewSchema::from_declaration(group.at("schema"), schema), Error::ok);
    ASSERT_FALSE(group.at("vectors").empty());
    for (const auto& v : group.at("vectors")) {
        const std::string name = v.at("name");
        SCOPED_TRACE(name);
        Bytes bytes = unhex(v.at("hex"));
        ASSERT_FALSE(bytes.empty());
        EXPECT_EQ(bytes[0], vinom::SCHEMA_FORMAT);
        vinom::Snapshot s;
        vinom::SchemaWireView wire;
        vinom::SchemaWaiting waiting;
        ASSERT_NO_FATAL_FAILURE(decode_schema_vector(schema, name, s, wire, waiting));
        EXPECT_EQ(s.tick, v.at("tick").get<std::uint64_t>());
        std::optional<std::uint64_t> baseline_tick;
        if (!v.at("baseline").is_null())
            baseline_tick = vt::vector("schema", v.at("baseline")).at("tick").get<std::uint64_t>();
        EXPECT_EQ(s.baseline_tick, baseline_tick);
        // The same view, types (1 or 1.0), values and keys' order (the declaration's) alike:
        // the wire view as received (a waiting row as its baseline has it).
        EXPECT_EQ(s.view.dump(), v.at("decoded").dump());
        // The checksum sent is the expected view's (16.4), verified on the way.
        EXPECT_EQ(s.checksum.has_value(), v.at("checksum").get<bool>());
        if (s.checksum) {
            std::uint32_t sum = 0;
            ASSERT_EQ(vinom::view_checksum(v.at("decoded"), sum), Error::ok);
            EXPECT_EQ(*s.checksum, sum);
        }
        vinom::Value rebuilt;
        ASSERT_EQ(schema.rebuild(wire, rebuilt), Error::ok);
        EXPECT_EQ(rebuilt.dump(), v.at("decoded").dump());
        // The rows that wait (flag 02), by field name; none when the vector says none.
        vinom::Value waits = vinom::Value::object();
        for (const auto& [index, ids] : waiting) waits[schema.fields().at(index).first] = ids;
        EXPECT_EQ(waits.dump(), v.value("waiting", vinom::Value::object()).dump());
    }
    // Every frame form is among them: a delta with waits too.
    std::size_t with_waits = 0;
    for (const auto& v : group.at("vectors")) with_waits += v.contains("waiting");
    EXPECT_GE(with_waits, 1u);
}
