// The client of the C ABI (vinom_client_*) against a host scripted from the
// codec and the session vectors' keys: section 8's timers on a clock the test
// turns, the handshake, messages both ways with their acks, failures, and the
// message <-> JSON calls.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "support.hpp"
#include "vinom.h"
#include "vinom/client.hpp"
#include "vinom/codec.hpp"
#include "vinom/messages.hpp"

using vinom::Bytes;
using vinom::Error;
using vt::hex;
using vt::unhex;

namespace {

const nlohmann::ordered_json& session() { return vt::vectors().at("session"); }
const nlohmann::ordered_json& derived() { return session().at("derived"); }
Bytes packet(const std::string& name) { return unhex(vt::vector("session", name).at("hex")); }
vinom::Key c2s() { return vt::key(derived().at("client_to_server_key")); }
vinom::Key s2c() { return vt::key(derived().at("server_to_client_key")); }
std::uint64_t client_first() { return derived().at("client_first_sequence"); }

struct Polled {
    vinom_client_event event = VINOM_CLIENT_NONE;
    int channel = -1;
    Bytes data;
};

// A client of the vector's token, and the host's side of its datagrams.
class ClientTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string json = session().at("token").dump();
        vinom_token* token = nullptr;
        ASSERT_EQ(vinom_token_parse(json.data(), json.size(), &token), VINOM_OK);
        ASSERT_EQ(vinom_client_new(token, client_first(), 100.0, 0.0, &client), VINOM_OK);
        vinom_token_free(token);  // the client keeps its own copy
    }
    void TearDown() override { vinom_client_free(client); }

    std::vector<Bytes> sent() {
        std::vector<Bytes> out;
        std::uint8_t buffer[VINOM_MAX_DATAGRAM];
        std::size_t len = 0;
        while (vinom_client_datagram(client, buffer, sizeof buffer, &len) == VINOM_OK && len)
            out.emplace_back(buffer, buffer + len);
        return out;
    }

    Polled poll() {
        Polled p;
        std::uint8_t buffer[4096];
        std::size_t len = 0;
        EXPECT_EQ(vinom_client_poll(client, &p.event, &p.channel, buffer, sizeof buffer, &len),
                  VINOM_OK);
        p.data.assign(buffer, buffer + len);
        return p;
    }

    vinom_status feed(const Bytes& datagram, double now) {
        return vinom_client_receive(client, datagram.data(), datagram.size(), now);
    }

    // Through the vectors' challenge and welcome (at 100.04 s), and the first
    // update after it, which offers short payloads (5.9).
    void connect() {
        vinom_client_update(client, 100.0);
        ASSERT_EQ(sent(), std::vector<Bytes>{packet("request")});
        ASSERT_EQ(feed(packet("challenge"), 100.02), VINOM_OK);
        ASSERT_EQ(sent(), std::vector<Bytes>{packet("response")});
        ASSERT_EQ(feed(packet("welcome"), 100.04), VINOM_OK);
        ASSERT_EQ(poll().event, VINOM_CLIENT_WELCOME);
        ASSERT_EQ(vinom_client_state(client), VINOM_STATE_CONNECTED);
        vinom_client_update(client, 100.04);
        std::vector<Bytes> out = sent();
        ASSERT_EQ(out.size(), 1u);
        ASSERT_TRUE(is_offer(out[0]));
    }

    // A keepalive from the client whose plaintext is the offer of short and slim
    // payloads, 03.
    bool is_offer(const Bytes& datagram) {
        std::uint8_t type = 0;
        std::uint64_t sequence = 0;
        Bytes plain;
        return vinom::open_packet(c2s(), datagram, type, sequence, plain) == Error::ok &&
               type == vinom::KEEPALIVE && plain == Bytes{0x03};
    }

    // A payload from the host carrying `messages`, its body sequence `body`;
    // short (5.9) with `short_form`, slim (5.10) with `slim`.
    Bytes host_payload(std::uint16_t body, const std::vector<vinom::Message>& messages,
                       std::uint16_t ack = 0xffff, std::uint32_t ack_bits = 0,
                       bool short_form = false, bool slim = false) {
        vinom::BodyHeader h;
        h.sequence = body;
        h.ack = ack;
        h.ack_bits = ack_bits;
        Bytes plain, out;
        EXPECT_EQ(vinom::encode_body(h, messages, vinom::MAX_BODY, plain), Error::ok);
        if (slim) {
            Bytes slim_plain;
            EXPECT_EQ(vinom::slim_body(plain, slim_plain), Error::ok);
            EXPECT_EQ(vinom::seal_short_payload(s2c(), host_sequence++, slim_plain, out,
                                                vinom::SLIM_PAYLOAD),
                      Error::ok);
        } else if (short_form) {
            EXPECT_EQ(vinom::seal_short_payload(s2c(), host_sequence++, plain, out), Error::ok);
        } else {
            EXPECT_EQ(vinom::seal_packet(vinom::PAYLOAD, s2c(), host_sequence++, plain, out),
                      Error::ok);
        }
        return out;
    }

    // The body of a payload the client sent (long, or short with the client's
    // sequence `short_sequence`), opened with the host's key.
    vinom::BodyHeader opened(const Bytes& datagram, std::vector<vinom::Message>& messages,
                             std::uint64_t short_sequence = 0) {
        Bytes plain;
        if (short_sequence) {
            EXPECT_EQ(vinom::open_short_payload(c2s(), datagram, short_sequence, plain),
                      Error::ok);
        } else {
            std::uint8_t type = 0;
            std::uint64_t sequence = 0;
            EXPECT_EQ(vinom::open_packet(c2s(), datagram, type, sequence, plain), Error::ok);
            EXPECT_EQ(type, vinom::PAYLOAD);
        }
        vinom::BodyHeader h;
        EXPECT_EQ(vinom::decode_body(plain, vinom::MAX_BODY, h, messages), Error::ok);
        return h;
    }

    vinom_client* client = nullptr;
    // The host's payloads follow its welcome's sequence.
    std::uint64_t host_sequence =
        derived().at("first_session_sequence").get<std::uint64_t>() + 10;
};

Bytes message(const vinom::Value& v) {
    Bytes out;
    EXPECT_EQ(vinom::encode_message(v, out), Error::ok);
    return out;
}

vinom::Message reliable(std::uint16_t id, Bytes data) {
    vinom::Message m;
    m.channel = 1;
    m.id = id;
    m.data = std::move(data);
    return m;
}

}  // namespace

TEST_F(ClientTest, HandshakeResendsAt10HzThenWelcome) {
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_REQUESTING);
    vinom_client_update(client, 100.0);
    EXPECT_EQ(sent(), std::vector<Bytes>{packet("request")});
    vinom_client_update(client, 100.05);
    EXPECT_TRUE(sent().empty());
    vinom_client_update(client, 100.11);
    EXPECT_EQ(sent(), std::vector<Bytes>{packet("request")});
    ASSERT_EQ(feed(packet("challenge"), 100.12), VINOM_OK);
    EXPECT_EQ(sent(), std::vector<Bytes>{packet("response")});
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_RESPONDING);
    vinom_client_update(client, 100.2);
    EXPECT_TRUE(sent().empty());
    vinom_client_update(client, 100.23);
    EXPECT_EQ(sent(), std::vector<Bytes>{packet("response")});
    ASSERT_EQ(feed(packet("welcome"), 100.25), VINOM_OK);
    Polled p = poll();
    EXPECT_EQ(p.event, VINOM_CLIENT_WELCOME);
    EXPECT_EQ(vinom_client_session_id(client), vt::vector("session", "welcome").at("session_id"));
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    // A replayed welcome does not fit the state and changes nothing.
    EXPECT_EQ(feed(packet("welcome"), 100.3), VINOM_UNEXPECTED);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
}

TEST_F(ClientTest, NoWelcomeWithinTheAttemptTimeoutFails) {
    // The token's timeout is 5 s: the attempt timeout is 6 s.
    vinom_client_update(client, 100.0);
    vinom_client_update(client, 106.0);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    vinom_client_update(client, 106.01);
    EXPECT_EQ(poll().event, VINOM_CLIENT_FAILED);
    EXPECT_STREQ(vinom_client_failure(client), "timeout");
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_FAILED);
    sent();
    vinom_client_update(client, 107.0);  // nothing more once failed
    EXPECT_TRUE(sent().empty());
}

TEST_F(ClientTest, DeniedFails) {
    vinom_client_update(client, 100.0);
    ASSERT_EQ(feed(packet("denied"), 100.01), VINOM_OK);
    EXPECT_EQ(poll().event, VINOM_CLIENT_FAILED);
    EXPECT_STREQ(vinom_client_failure(client), "denied");
}

TEST_F(ClientTest, MessagesBothWaysWithAcks) {
    connect();
    // Before the welcome nothing can be sent; now one reliable message can.
    Bytes action = message({{"t", "action"}, {"a", {{"cell", 4}}}});
    ASSERT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_OK);
    EXPECT_EQ(vinom_client_pending(client), 1u);
    vinom_client_update(client, 100.05);
    std::vector<Bytes> out = sent();
    ASSERT_EQ(out.size(), 1u);
    std::vector<vinom::Message> ms;
    vinom::BodyHeader h = opened(out[0], ms);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].channel, 1);
    EXPECT_EQ(hex(ms[0].data), hex(action));
    // Not acked: resent after 200 ms, not before.
    vinom_client_update(client, 100.2);
    EXPECT_TRUE(sent().empty());
    vinom_client_update(client, 100.26);
    EXPECT_EQ(sent().size(), 1u);

    // The host's reliable messages, the second arriving first: delivered in order.
    Bytes first = message({{"t", "welcome"}}), second = message({{"t", "phase"}, {"p", "playing"}});
    ASSERT_EQ(feed(host_payload(1, {reliable(1, second)}, h.sequence), 100.3), VINOM_OK);
    EXPECT_EQ(vinom_client_pending(client), 0u);  // the ack of the body that carried it
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    ASSERT_EQ(feed(host_payload(0, {reliable(0, first)}), 100.31), VINOM_OK);
    Polled a = poll(), b = poll();
    EXPECT_EQ(a.event, VINOM_CLIENT_MESSAGE);
    EXPECT_EQ(a.channel, 1);
    EXPECT_EQ(hex(a.data), hex(first));
    EXPECT_EQ(hex(b.data), hex(second));
    // Both bodies are acked by the client's next one.
    vinom_client_update(client, 100.32);
    out = sent();
    ASSERT_EQ(out.size(), 1u);
    ms.clear();
    vinom::BodyHeader ack = opened(out[0], ms);
    EXPECT_TRUE(ms.empty());
    EXPECT_EQ(ack.ack, 1);
    EXPECT_EQ(ack.ack_bits, 1u);
}

TEST_F(ClientTest, ALargeMessageWaitsForALargerBuffer) {
    connect();
    Bytes big = message(std::string(900, 'x'));
    ASSERT_EQ(feed(host_payload(0, {reliable(0, big)}), 100.1), VINOM_OK);
    vinom_client_event event = VINOM_CLIENT_NONE;
    int channel = 0;
    std::uint8_t small[16];
    std::size_t len = 0;
    EXPECT_EQ(vinom_client_poll(client, &event, &channel, small, sizeof small, &len),
              VINOM_BUFFER_TOO_SMALL);
    EXPECT_EQ(len, big.size());
    Polled p = poll();  // still first in line
    EXPECT_EQ(p.event, VINOM_CLIENT_MESSAGE);
    EXPECT_EQ(hex(p.data), hex(big));
}

TEST_F(ClientTest, SilenceOnceConnectedTimesOutAndKeepalivesGoOut) {
    connect();
    vinom_client_update(client, 101.0);
    EXPECT_TRUE(sent().empty());
    vinom_client_update(client, 101.71);  // keepalive: min(2 s, timeout / 3)
    std::vector<Bytes> out = sent();
    // The keepalive, then the second offer (due at 101.04), as the Python client.
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0][0], vinom::KEEPALIVE);
    EXPECT_EQ(out[0].size(), 25u);
    EXPECT_TRUE(is_offer(out[1]));
    vinom_client_update(client, 105.0);  // the welcome was the last heard, at 100.04
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    vinom_client_update(client, 105.1);
    EXPECT_EQ(poll().event, VINOM_CLIENT_FAILED);
    EXPECT_STREQ(vinom_client_failure(client), "timeout");
}

TEST_F(ClientTest, AHostThatStopsAckingGetsAtMostAMebibyteQueued) {
    connect();
    Bytes action = message(std::string(2045, 'x'));
    ASSERT_EQ(action.size(), VINOM_MAX_RELIABLE_MESSAGE);
    for (int i = 0; i < 512; ++i)  // 1 MiB
        ASSERT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_OK) << i;
    EXPECT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_QUEUE_FULL);
    EXPECT_STREQ(vinom_status_name(VINOM_QUEUE_FULL), "queue_full");
    // Nothing was queued and the session goes on: a host that catches up frees room.
    EXPECT_EQ(vinom_client_pending(client), 1024u);  // two fragments each
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_CONNECTED);
    vinom_client_update(client, 100.05);
    std::vector<Bytes> out = sent();
    ASSERT_GE(out.size(), 2u);
    std::vector<vinom::Message> ms;
    vinom::BodyHeader h = opened(out[1], ms);  // the first message's second fragment
    ASSERT_EQ(feed(host_payload(0, {}, h.sequence, 1), 100.06), VINOM_OK);  // and its first
    EXPECT_EQ(vinom_client_pending(client), 1022u);
    EXPECT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_OK);
    EXPECT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_QUEUE_FULL);
}

TEST_F(ClientTest, CloseSendsFiveDisconnects) {
    Bytes action = message({{"t", "action"}});
    EXPECT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_UNEXPECTED);
    connect();
    std::uint8_t too_big[VINOM_MAX_RELIABLE_MESSAGE + 1] = {0};
    EXPECT_EQ(vinom_client_send(client, too_big, sizeof too_big), VINOM_BAD_SIZE);
    EXPECT_EQ(vinom_client_send_unreliable(client, too_big, VINOM_MAX_MESSAGE + 1),
              VINOM_BAD_SIZE);
    ASSERT_EQ(vinom_client_close(client), VINOM_OK);
    std::vector<Bytes> out = sent();
    ASSERT_EQ(out.size(), 5u);
    for (const Bytes& d : out) EXPECT_EQ(d[0], vinom::DISCONNECT);
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_CLOSED);
    vinom_client_update(client, 200.0);  // closed: no timers
    EXPECT_TRUE(sent().empty());
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
}

// The match's end is one event, after the phase message that says it: a
// closed port, a disconnect or silence after it is no second one, and a send
// after it is VINOM_ENDED, never a failure.
TEST_F(ClientTest, TheMatchsEndIsOneEventAndLaterSendsAreNoOps) {
    connect();
    EXPECT_STREQ(vinom_client_ended(client), "");
    Bytes playing = message({{"t", "phase"}, {"p", "playing"}, {"v", 3}, {"r", nullptr}});
    Bytes finished = message({{"t", "phase"}, {"p", "finished"}, {"v", 9}, {"r", nullptr},
                              {"result", {{"winner", "p1"}}}});
    ASSERT_EQ(feed(host_payload(0, {reliable(0, playing), reliable(1, finished)}), 100.1),
              VINOM_OK);
    EXPECT_EQ(hex(poll().data), hex(playing));
    Polled last = poll();
    EXPECT_EQ(last.event, VINOM_CLIENT_MESSAGE);  // the game still reads the result
    EXPECT_EQ(hex(last.data), hex(finished));
    Polled end = poll();
    EXPECT_EQ(end.event, VINOM_CLIENT_ENDED);
    EXPECT_TRUE(end.data.empty());
    EXPECT_STREQ(vinom_client_ended(client), "match_ended");
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);

    Bytes action = message({{"t", "action"}, {"a", {{"cell", 4}}}});
    EXPECT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_ENDED);
    EXPECT_EQ(vinom_client_send_unreliable(client, action.data(), action.size()), VINOM_ENDED);
    EXPECT_STREQ(vinom_status_name(VINOM_ENDED), "ended");
    EXPECT_EQ(vinom_client_pending(client), 0u);
    // The host's acks still go: it learns the result arrived.
    vinom_client_update(client, 100.15);
    EXPECT_EQ(sent().size(), 1u);
    // Then it closes its port; the game's socket says so: no second event.
    EXPECT_EQ(vinom_client_socket_error(client, ECONNREFUSED), VINOM_OK);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    EXPECT_STREQ(vinom_client_ended(client), "match_ended");
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_CLOSED);
    vinom_client_update(client, 200.0);  // long past the session timeout: no failure
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    EXPECT_TRUE(sent().empty());
    EXPECT_STREQ(vinom_client_failure(client), "");
}

// A match that ends with silence (the host gone without a refusal the game
// saw): closed at the session timeout, and no failure.
TEST_F(ClientTest, SilenceAfterTheMatchsEndIsNoFailure) {
    connect();
    Bytes aborted = message({{"t", "phase"}, {"p", "aborted"}, {"v", 2}, {"r", nullptr},
                             {"reason", "player_left"}});
    ASSERT_EQ(feed(host_payload(0, {reliable(0, aborted)}), 100.1), VINOM_OK);
    EXPECT_EQ(poll().event, VINOM_CLIENT_MESSAGE);
    EXPECT_EQ(poll().event, VINOM_CLIENT_ENDED);
    vinom_client_update(client, 106.0);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_CLOSED);
    EXPECT_STREQ(vinom_client_failure(client), "");
}

// The host's port closed (ECONNREFUSED from the game's connected socket): one
// event, nothing more to send, sends and close no-ops; other socket errors
// change nothing.
TEST_F(ClientTest, AClosedHostPortIsOneEventAndNothingMoreIsSent) {
    connect();
    Bytes action = message({{"t", "action"}, {"a", {{"cell", 4}}}});
    ASSERT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_OK);
    EXPECT_EQ(vinom_client_socket_error(client, EAGAIN), VINOM_OK);
    EXPECT_EQ(vinom_client_socket_error(client, EMSGSIZE), VINOM_OK);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_CONNECTED);
    vinom_client_update(client, 100.05);  // the action's datagram, queued not taken
    EXPECT_EQ(vinom_client_socket_error(client, ECONNREFUSED), VINOM_OK);
    EXPECT_TRUE(sent().empty());  // dropped: it would only be refused again
    Polled end = poll();
    EXPECT_EQ(end.event, VINOM_CLIENT_ENDED);
    EXPECT_STREQ(vinom_client_ended(client), "host_closed");
    EXPECT_EQ(vinom_client_state(client), VINOM_STATE_CLOSED);
    EXPECT_EQ(vinom_client_socket_error(client, ECONNREFUSED), VINOM_OK);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    EXPECT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_ENDED);
    EXPECT_EQ(vinom_client_close(client), VINOM_OK);
    vinom_client_update(client, 200.0);
    EXPECT_TRUE(sent().empty());
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    EXPECT_EQ(vinom_client_socket_error(nullptr, ECONNREFUSED), VINOM_INVALID_ARGUMENT);
    EXPECT_EQ(vinom_client_host_closed(client), VINOM_OK);  // the same end: no second event
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
}

// 5.9: the offer goes with the first update after the welcome, then one a
// second, at most Client::SHORT_OFFERS in all, while no short payload comes;
// they are keepalives (26 bytes) and count as something sent.
TEST_F(ClientTest, ShortPayloadsAreOfferedAtMostFourTimesASecondApart) {
    connect();  // the first, at 100.04
    std::vector<double> offered = {100.04};
    for (double now = 100.05; now < 104.7; now += 0.01) {
        vinom_client_update(client, now);
        for (const Bytes& d : sent()) {
            EXPECT_TRUE(is_offer(d)) << now;
            EXPECT_EQ(d.size(), 26u);
            offered.push_back(now);
        }
    }
    ASSERT_EQ(offered.size(), static_cast<std::size_t>(vinom::Client::SHORT_OFFERS));
    for (std::size_t i = 1; i < offered.size(); ++i)
        EXPECT_NEAR(offered[i] - offered[i - 1], vinom::Client::SHORT_OFFER_INTERVAL, 0.011);
    // No more offers; a plain keepalive once nothing was sent for 1.67 s.
    vinom_client_update(client, 104.75);
    std::vector<Bytes> out = sent();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0][0], vinom::KEEPALIVE);
    EXPECT_EQ(out[0].size(), 25u);
}

// Once a short payload came the offers stop, and the client's payloads go short
// (the next sequence, 5.9's header); keepalives and disconnects stay long; the
// host's long payloads are still read, and its short one again is a replay.
TEST_F(ClientTest, AfterAShortPayloadTheOffersStopAndPayloadsGoShort) {
    connect();  // the response was the client's first sequence, the offer its second
    Bytes state = message({{"t", "state"}});
    vinom::Message snapshot;
    snapshot.channel = 0;
    snapshot.data = state;
    Bytes first = host_payload(0, {snapshot}, 0xffff, 0, true);
    ASSERT_EQ(feed(first, 100.5), VINOM_OK);
    Polled p = poll();
    EXPECT_EQ(p.event, VINOM_CLIENT_MESSAGE);
    EXPECT_EQ(p.channel, 0);
    EXPECT_EQ(hex(p.data), hex(state));
    // The same datagram again: a replay, no event.
    EXPECT_EQ(feed(first, 100.51), VINOM_REPLAYED);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
    for (double now = 100.6; now < 101.6; now += 0.05) {
        vinom_client_update(client, now);
        EXPECT_TRUE(sent().empty()) << now;  // no offer at 101.04
    }
    Bytes action = message({{"t", "action"}});
    ASSERT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_OK);
    vinom_client_update(client, 101.6);
    std::vector<Bytes> out = sent();
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0][0], vinom::SHORT_PAYLOAD);
    std::vector<vinom::Message> ms;
    vinom::BodyHeader h = opened(out[0], ms, client_first() + 2);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(hex(ms[0].data), hex(action));
    // A long payload from the host acks it.
    ASSERT_EQ(feed(host_payload(1, {}, h.sequence), 101.7), VINOM_OK);
    EXPECT_EQ(vinom_client_pending(client), 0u);
    vinom_client_update(client, 103.2);
    EXPECT_TRUE(sent().empty());
    vinom_client_update(client, 103.3);  // 1.67 s after the payload
    out = sent();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0][0], vinom::KEEPALIVE);
    EXPECT_EQ(out[0].size(), 25u);
    ASSERT_EQ(vinom_client_close(client), VINOM_OK);
    out = sent();
    ASSERT_EQ(out.size(), 5u);
    for (const Bytes& d : out) EXPECT_EQ(d[0], vinom::DISCONNECT);
}

// Once a slim payload came (5.10) the client's payloads go slim: 5 bytes fewer
// than a short one for one message on a clean path; the body they stand for
// is the one the client built, and a malformed slim body is dropped.
TEST_F(ClientTest, AfterASlimPayloadPayloadsGoSlim) {
    connect();
    Bytes state = message({{"t", "state"}});
    vinom::Message snapshot;
    snapshot.channel = 0;
    snapshot.data = state;
    ASSERT_EQ(feed(host_payload(0, {snapshot}, 0xffff, 0, false, true), 100.5), VINOM_OK);
    Polled p = poll();
    EXPECT_EQ(p.event, VINOM_CLIENT_MESSAGE);
    EXPECT_EQ(hex(p.data), hex(state));
    Bytes action = message({{"t", "action"}});
    ASSERT_EQ(vinom_client_send(client, action.data(), action.size()), VINOM_OK);
    vinom_client_update(client, 100.6);
    std::vector<Bytes> out = sent();
    ASSERT_EQ(out.size(), 1u);
    ASSERT_EQ(out[0][0], vinom::SLIM_PAYLOAD);
    Bytes plain, body;
    ASSERT_EQ(vinom::open_short_payload(c2s(), out[0], client_first() + 2, plain), Error::ok);
    ASSERT_EQ(vinom::body_of_slim(plain, body), Error::ok);
    // 3 (the short header) + 6 + 4 (the ack bits: only body 0 came) + 2 (id) + 16.
    EXPECT_EQ(out[0].size(), 31u + action.size());
    vinom::BodyHeader h;
    std::vector<vinom::Message> ms;
    ASSERT_EQ(vinom::decode_body(body, vinom::MAX_BODY, h, ms), Error::ok);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].channel, 1);
    EXPECT_EQ(hex(ms[0].data), hex(action));
    // A genuine slim payload whose form sets a reserved bit: dropped.
    Bytes bad;
    const Bytes reserved = unhex("4001000000000000");
    ASSERT_EQ(vinom::seal_short_payload(s2c(), host_sequence++, reserved, bad,
                                        vinom::SLIM_PAYLOAD),
              Error::ok);
    EXPECT_EQ(feed(bad, 100.7), VINOM_BAD_FIELD);
    EXPECT_EQ(poll().event, VINOM_CLIENT_NONE);
}

// Short and slim payloads off (ClientConfig's short_payloads and slim_payloads
// False): no offer, and every payload long, as an older client.
TEST(ClientShortPayloads, OffNoOfferAndEveryPayloadLong) {
    vinom::PublicToken token;
    ASSERT_EQ(vinom::parse_public_token(session().at("token").dump(), token), Error::ok);
    vinom::Client c(token, client_first(), 100.0, 0.0, false, false);
    Bytes d;
    c.update(100.0);
    ASSERT_TRUE(c.next_datagram(d));
    ASSERT_EQ(c.receive(packet("challenge"), 100.01), Error::ok);
    ASSERT_TRUE(c.next_datagram(d));
    ASSERT_EQ(c.receive(packet("welcome"), 100.02), Error::ok);
    std::vector<Bytes> out;
    for (double now = 100.02; now < 104.0; now += 0.1) {
        c.update(now);
        while (c.next_datagram(d)) out.push_back(d);
    }
    ASSERT_EQ(out.size(), 2u);  // keepalives at 1.67 s and 3.33 s
    for (const Bytes& k : out) EXPECT_EQ(k.size(), 25u);
    EXPECT_EQ(c.counts().offers, 0u);
    ASSERT_EQ(c.send(message({{"t", "action"}})), Error::ok);
    c.update(104.0);
    ASSERT_TRUE(c.next_datagram(d));
    EXPECT_EQ(d[0], vinom::PAYLOAD);
    EXPECT_EQ(c.counts().short_sent, 0u);
}

TEST(MessageJson, BothWaysAndRefusals) {
    const std::string text = "{\"t\":\"action\",\"a\":{\"cell\":0},\"x\":[1.5,null,true,-2]}";
    std::uint8_t packed[256];
    std::size_t len = 0;
    ASSERT_EQ(vinom_message_from_json(text.data(), text.size(), packed, sizeof packed, &len),
              VINOM_OK);
    Bytes expected = message(vinom::Value::parse(text));
    EXPECT_EQ(hex(Bytes(packed, packed + len)), hex(expected));
    char json[256];
    std::size_t json_len = 0;
    ASSERT_EQ(vinom_message_to_json(packed, len, json, sizeof json, &json_len), VINOM_OK);
    EXPECT_EQ(std::string(json, json_len), text);
    // Too small a buffer says how much is needed.
    EXPECT_EQ(vinom_message_to_json(packed, len, json, 4, &json_len), VINOM_BUFFER_TOO_SMALL);
    EXPECT_EQ(json_len, text.size());
    // Not JSON; bytes after a message; invalid UTF-8 in a string is replaced.
    EXPECT_EQ(vinom_message_from_json("{\"t\":", 5, packed, sizeof packed, &len), VINOM_BAD_JSON);
    std::uint8_t trailing[] = {0x01, 0x02};
    EXPECT_EQ(vinom_message_to_json(trailing, 2, json, sizeof json, &json_len), VINOM_BAD_SIZE);
    std::uint8_t bad_utf8[] = {0xa2, 0xff, 0x41};
    ASSERT_EQ(vinom_message_to_json(bad_utf8, 3, json, sizeof json, &json_len), VINOM_OK);
    EXPECT_EQ(std::string(json, json_len), "\"\xef\xbf\xbd" "A\"");
    // A snap (first byte 0xc1, not msgpack): its numbers are relative to its
    // baseline's, which only vinom_snapshots_receive holds: no JSON of it.
    Bytes snap = vt::unhex(vt::vector("messages", "relative_snap_full").at("hex"));
    EXPECT_EQ(vinom_message_to_json(snap.data(), snap.size(), json, sizeof json, &json_len),
              VINOM_BAD_TYPE);
    EXPECT_EQ(vinom_message_to_json(snap.data(), 3, json, sizeof json, &json_len),
              VINOM_BAD_TYPE);
    // Deeper than a message may be: refused, not a crash.
    std::string deep(10000, '[');
    deep += std::string(10000, ']');
    EXPECT_EQ(vinom_message_from_json(deep.data(), deep.size(), packed, sizeof packed, &len),
              VINOM_BAD_FIELD);
}
