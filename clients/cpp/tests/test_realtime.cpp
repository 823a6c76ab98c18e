// Real-time inputs (include/vinom/realtime.hpp) and the endpoint's channel 0,
// as vinom/client/realtime.py and the host's rules (docs/protocol.md 14) have them.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "support.hpp"
#include "vinom.h"
#include "vinom/codec.hpp"
#include "vinom/endpoint.hpp"
#include "vinom/realtime.hpp"

using vinom::Bytes;
using vinom::Value;

TEST(TickClock, StampsTheFirstTickTheHostRunsAfterTheInputArrives) {
    vinom::TickClock clock(20.0);
    EXPECT_FALSE(clock.estimate(5.0));
    EXPECT_EQ(clock.input_tick(5.0, 0.1), 1u);  // before any snapshot
    clock.observe(100, 10.0);
    EXPECT_DOUBLE_EQ(*clock.estimate(10.05), 101.0);
    // 100 + 0.05 s and a 0.1 s round trip at 20 Hz: 103 run by arrival, so 104.
    EXPECT_EQ(clock.input_tick(10.05, 0.1), 104u);
    clock.observe(99, 10.2);  // older: nothing changes
    EXPECT_DOUBLE_EQ(*clock.estimate(10.05), 101.0);
    EXPECT_EQ(clock.input_tick(9.0, -1.0), 101u);  // no time goes backwards
}

TEST(TickClock, ASnapshotHeldUpOnTheWayDoesNotPullTheEstimateBack) {
    vinom::TickClock clock(20.0);
    clock.observe(100, 10.0);
    // Tick 101 came 300 ms late (resent behind a lost datagram): the estimate
    // stays with the fastest trip, 6 ticks on by then, not 101.
    clock.observe(101, 10.3);
    EXPECT_DOUBLE_EQ(*clock.estimate(10.3), 106.0);
    EXPECT_EQ(clock.input_tick(10.3, 0.0), 107u);
}

TEST(InputQueue, RepeatsWhatIsNotAcknowledgedAndForgetsTheRest) {
    vinom::InputQueue inputs;
    EXPECT_EQ(inputs.add(5, Value{{"n", 1}}), 5u);
    EXPECT_EQ(inputs.add(5, Value{{"n", 2}}), 6u);  // one input per tick
    EXPECT_EQ(inputs.add(9, Value{{"n", 3}}), 9u);
    EXPECT_EQ(inputs.message(std::nullopt).dump(),
              R"({"t":"input","a":null,"x":[[5,{"n":1}],[6,{"n":2}],[9,{"n":3}]]})");
    inputs.acknowledge(6);
    EXPECT_EQ(inputs.message(40).dump(), R"({"t":"input","a":40,"x":[[9,{"n":3}]]})");
    inputs.acknowledge(9);
    EXPECT_EQ(inputs.message(41).dump(), R"({"t":"input","a":41,"x":[]})");
    EXPECT_EQ(inputs.overflowed(), 0u);
}

TEST(InputQueue, KeepsAtMostEightTheOldestDroppedAndCounted) {
    vinom::InputQueue inputs;
    for (int n = 0; n < 10; ++n) inputs.add(n, Value{{"n", n}});
    EXPECT_EQ(inputs.pending(), vinom::InputQueue::MAX_UNACKED);
    EXPECT_EQ(inputs.overflowed(), 2u);
    EXPECT_EQ(inputs.message(std::nullopt)["x"][0][0], 2);
}

TEST(EndpointChannel0, AnUnreliableMessageGoesOnceFirstInItsBody) {
    vinom::Endpoint endpoint;
    endpoint.send_reliable(Bytes{0x91, 0x01});
    endpoint.send_unreliable(Bytes{0x91, 0x02});
    endpoint.send_unreliable(Bytes{0x91, 0x03});
    std::vector<Bytes> bodies = endpoint.build(1.0);
    ASSERT_EQ(bodies.size(), 1u);
    vinom::BodyHeader h;
    std::vector<vinom::Message> messages;
    ASSERT_EQ(vinom::decode_body(vinom::View(bodies[0]), vinom::MAX_BODY, h, messages),
              vinom::Error::ok);
    ASSERT_EQ(messages.size(), 3u);
    EXPECT_EQ(messages[0].channel, 0);
    EXPECT_EQ(messages[0].id, 0);
    EXPECT_EQ(messages[0].data, (Bytes{0x91, 0x02}));
    EXPECT_EQ(messages[1].channel, 0);
    EXPECT_EQ(messages[1].id, 1);
    EXPECT_EQ(messages[2].channel, 1);
    // Later: the reliable message is resent, the unreliable ones are not.
    bodies = endpoint.build(1.0 + 2 * vinom::Endpoint::RESEND_INTERVAL);
    ASSERT_EQ(bodies.size(), 1u);
    ASSERT_EQ(vinom::decode_body(vinom::View(bodies[0]), vinom::MAX_BODY, h, messages),
              vinom::Error::ok);
    ASSERT_EQ(messages.size(), 1u);
    EXPECT_EQ(messages[0].channel, 1);
}

// Host bodies carrying channel-0 fragments (13.4): snapshot `id`, fragment `index`
// of `last + 1`, `size` bytes each, the bytes counting from `first`.
namespace {

struct HostBodies {
    std::uint16_t sequence = 0;

    Bytes fragment(std::uint16_t id, std::uint8_t index, std::uint8_t last, std::size_t size,
                   std::uint8_t first) {
        vinom::BodyHeader h;
        h.sequence = sequence++;
        vinom::Message m;
        m.channel = 0;
        m.id = id;
        m.fragment = true;
        m.index = index;
        m.last = last;
        for (std::size_t i = 0; i < size; ++i) m.data.push_back(static_cast<std::uint8_t>(first + i));
        Bytes body;
        EXPECT_EQ(vinom::encode_body(h, {m}, vinom::MAX_BODY, body), vinom::Error::ok);
        return body;
    }
};

Bytes counting(std::size_t size, std::uint8_t first = 0) {
    Bytes b;
    for (std::size_t i = 0; i < size; ++i) b.push_back(static_cast<std::uint8_t>(first + i));
    return b;
}

}  // namespace

TEST(EndpointChannel0, ASnapshotLargerThanABodyIsReassembledInAnyOrder) {
    vinom::Endpoint endpoint;
    HostBodies host;
    // Snapshot 7 in three fragments of 1160, 1160 and 100 bytes, the last first and
    // the middle one twice.
    auto third = host.fragment(7, 2, 2, 100, 2320 % 256);
    auto first = host.fragment(7, 0, 2, 1160, 0);
    auto second = host.fragment(7, 1, 2, 1160, 1160 % 256);
    EXPECT_TRUE(endpoint.receive(vinom::View(third), 1.0).empty());
    EXPECT_TRUE(endpoint.receive(vinom::View(second), 1.01).empty());
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(7, 1, 2, 1160, 1160 % 256)), 1.02)
                    .empty());
    auto done = endpoint.receive(vinom::View(first), 1.03);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].first, 0);
    EXPECT_EQ(done[0].second, counting(2420));
    // Its fragments again, and an older snapshot's, deliver nothing more.
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(7, 0, 2, 1160, 0)), 1.04).empty());
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(6, 0, 1, 10, 0)), 1.05).empty());
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(6, 1, 1, 10, 10)), 1.06).empty());
}

TEST(EndpointChannel0, ANewerSnapshotReplacesOneInAssemblyAndOlderFragmentsAreDropped) {
    vinom::Endpoint endpoint;
    HostBodies host;
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(3, 0, 1, 50, 0)), 1.0).empty());
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(4, 1, 1, 20, 50)), 1.01).empty());
    // Snapshot 3's second fragment comes after 4's assembly began: 3 is gone.
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(3, 1, 1, 20, 50)), 1.02).empty());
    auto done = endpoint.receive(vinom::View(host.fragment(4, 0, 1, 50, 0)), 1.03);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].second, counting(70));
    // Sequences wrap: 65535 then 0 is newer.
    vinom::Endpoint wrapping;
    HostBodies again;
    EXPECT_EQ(wrapping.receive(vinom::View(again.fragment(65535, 0, 1, 5, 0)), 2.0).size(), 0u);
    EXPECT_EQ(wrapping.receive(vinom::View(again.fragment(65535, 1, 1, 5, 5)), 2.0).size(), 1u);
    EXPECT_EQ(wrapping.receive(vinom::View(again.fragment(0, 0, 1, 5, 0)), 2.0).size(), 0u);
    EXPECT_EQ(wrapping.receive(vinom::View(again.fragment(0, 1, 1, 5, 5)), 2.0).size(), 1u);
}

TEST(EndpointChannel0, AnIncompleteSnapshotExpiresAfterASecond) {
    vinom::Endpoint endpoint;
    HostBodies host;
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(1, 0, 1, 40, 0)), 10.0).empty());
    // Its other half 1 s later: the first half is gone, so nothing is whole.
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(1, 1, 1, 40, 40)), 11.0).empty());
    // Both halves again within the second: delivered.
    EXPECT_EQ(endpoint.receive(vinom::View(host.fragment(1, 0, 1, 40, 0)), 11.5).size(), 1u);
}

TEST(EndpointChannel0, ASnapshotOverTheLimitIsPassedOverAndAMismatchedCountDropped) {
    vinom::Endpoint endpoint;
    HostBodies host;
    // 15 fragments of 1160 bytes: 17,400 > 16 KiB. Nothing is delivered, nor when
    // the rest of that snapshot comes.
    std::size_t delivered = 0;
    for (std::uint8_t i = 0; i <= 14; ++i) {
        delivered += endpoint.receive(vinom::View(host.fragment(2, i, 14, 1160, 0)), 1.0).size();
    }
    EXPECT_EQ(delivered, 0u);
    EXPECT_EQ(endpoint.receive(vinom::View(host.fragment(2, 0, 1, 10, 0)), 1.0).size(), 0u);
    // A fragment naming another count under the snapshot in assembly is dropped.
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(5, 0, 1, 10, 0)), 1.1).empty());
    EXPECT_TRUE(endpoint.receive(vinom::View(host.fragment(5, 1, 2, 10, 10)), 1.1).empty());
    auto done = endpoint.receive(vinom::View(host.fragment(5, 1, 1, 10, 10)), 1.1);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].second, counting(20));
}

// What the client's endpoint sends, read back (13.3, 13.4).
namespace {

std::vector<vinom::Message> carried(const Bytes& body, vinom::BodyHeader& h) {
    std::vector<vinom::Message> messages;
    EXPECT_EQ(vinom::decode_body(vinom::View(body), vinom::MAX_BODY, h, messages),
              vinom::Error::ok);
    return messages;
}

// A host body acking the client's packet `ack` and the 32 before it.
Bytes host_ack(std::uint16_t sequence, std::uint16_t ack, std::uint32_t bits) {
    vinom::BodyHeader h;
    h.sequence = sequence;
    h.ack = ack;
    h.ack_bits = bits;
    Bytes body;
    EXPECT_EQ(vinom::encode_body(h, {}, vinom::MAX_BODY, body), vinom::Error::ok);
    return body;
}

}  // namespace

TEST(EndpointChannel1, AMessageLargerThanABodyGoesInFragmentsWithTheirOwnIds) {
    vinom::Endpoint client;
    EXPECT_FALSE(client.send_reliable(Bytes{}));
    EXPECT_FALSE(client.send_reliable(Bytes(vinom::Endpoint::MAX_RELIABLE + 1, 0)));
    ASSERT_TRUE(client.send_reliable(counting(3000)));
    ASSERT_TRUE(client.send_reliable(Bytes{0x91, 0x07}));
    auto bodies = client.build(1.0);
    ASSERT_EQ(bodies.size(), 3u);
    std::vector<std::pair<int, int>> fragments;  // (index, last) by id
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        vinom::BodyHeader h;
        for (const auto& m : carried(bodies[i], h)) {
            EXPECT_EQ(m.channel, 1);
            if (!m.fragment) {
                EXPECT_EQ(m.id, 3);  // the small message after the three fragments
                continue;
            }
            EXPECT_EQ(m.id, fragments.size());
            fragments.emplace_back(m.index, m.last);
            EXPECT_EQ(m.data.size(), m.index < 2 ? vinom::Endpoint::FRAGMENT_SIZE : 680u);
        }
    }
    EXPECT_EQ(fragments, (std::vector<std::pair<int, int>>{{0, 2}, {1, 2}, {2, 2}}));
    // A receiving endpoint given them in any order delivers the message once, whole.
    vinom::Endpoint peer;
    EXPECT_TRUE(peer.receive(vinom::View(bodies[2]), 1.0).empty());
    EXPECT_TRUE(peer.receive(vinom::View(bodies[1]), 1.0).empty());
    auto done = peer.receive(vinom::View(bodies[0]), 1.0);
    ASSERT_EQ(done.size(), 2u);
    EXPECT_EQ(done[0], (std::pair<int, Bytes>{1, counting(3000)}));
    EXPECT_EQ(done[1], (std::pair<int, Bytes>{1, Bytes{0x91, 0x07}}));
    // Unacked, all of it is resent 200 ms on; nothing before.
    EXPECT_TRUE(client.build(1.1).empty());
    EXPECT_EQ(client.build(1.001 + vinom::Endpoint::RESEND_INTERVAL).size(), 3u);
}

TEST(EndpointChannel1, NewMessagesWaitForTheMessageWindow) {
    vinom::Endpoint client;
    for (int i = 0; i < 300; ++i) client.send_reliable(Bytes{0x91, 0x01});
    auto bodies = client.build(1.0);
    // 8 a body: ids 0-255 in packets 0-31, then the receiver's window is full.
    ASSERT_EQ(bodies.size(), 32u);
    vinom::BodyHeader h;
    EXPECT_EQ(carried(bodies.back(), h).back().id, 255);
    EXPECT_TRUE(client.build(1.01).empty());
    // The host acks packets 0-31: the rest goes.
    client.receive(vinom::View(host_ack(0, 31, 0xffffffffu)), 1.02);
    bodies = client.build(1.03);
    ASSERT_EQ(bodies.size(), 6u);
    EXPECT_EQ(carried(bodies.back(), h).back().id, 299);
    EXPECT_EQ(client.pending(), 44u);
}

TEST(EndpointChannel1, NewMessagesWaitForTheAckWindow) {
    vinom::Endpoint client;
    for (int i = 0; i < 40; ++i) client.send_reliable(Bytes(1000, 0x01));
    // One a body: packets 0-32, the last 32 past the oldest unacked one.
    EXPECT_EQ(client.build(1.0).size(), 33u);
    EXPECT_TRUE(client.build(1.01).empty());
    // Packet 0 acked: one more.
    client.receive(vinom::View(host_ack(0, 0, 0)), 1.02);
    EXPECT_EQ(client.build(1.03).size(), 1u);
    EXPECT_TRUE(client.build(1.04).empty());
}

TEST(EndpointChannel1, AtMostAMebibyteWaitsForAcks) {
    vinom::Endpoint client;
    const std::size_t size = 1000;
    const std::size_t fit = vinom::Endpoint::MAX_PENDING_BYTES / size;  // 1048
    for (std::size_t i = 0; i < fit; ++i) ASSERT_TRUE(client.send_reliable(Bytes(size, 0x01)));
    EXPECT_FALSE(client.send_reliable(Bytes(size, 0x01)));  // past the bound: not queued
    EXPECT_EQ(client.pending(), fit);
    EXPECT_EQ(client.pending_bytes(), fit * size);
    // What is sent and then acked makes room again, once however many of the
    // packets that carried it are acked.
    EXPECT_EQ(client.build(1.0).size(), 33u);  // packets 0-32: one a body, the ack window's
    EXPECT_EQ(client.build(1.001 + vinom::Endpoint::RESEND_INTERVAL).size(), 33u);  // 33-65
    client.receive(vinom::View(host_ack(0, 33, 0xffffffffu)), 1.3);  // 1-33: ids 0-32
    EXPECT_EQ(client.pending(), fit - 33);
    EXPECT_EQ(client.pending_bytes(), (fit - 33) * size);
    client.receive(vinom::View(host_ack(1, 65, 0xffffffffu)), 1.31);  // 33-65: the same ids
    EXPECT_EQ(client.pending_bytes(), (fit - 33) * size);
    EXPECT_TRUE(client.send_reliable(Bytes(size, 0x01)));
    EXPECT_EQ(client.pending(), fit - 32);
}

// The same through the C ABI (vinom.h), with the snap messages of the vectors
// (14.1), arrays and packed.
TEST(RealtimeCAbi, SnapshotsRebuildEachSnapsViewAndGiveItsInputAck) {
    int seen = 0, packed = 0;
    for (const auto& v : vt::vectors().at("messages").at("vectors")) {
        if (v.at("kind") != "snap" && v.at("kind") != "packed_snap") continue;
        SCOPED_TRACE(v.at("name").get<std::string>());
        ++seen;
        packed += v.at("kind") == "packed_snap";
        vinom_snapshots* snapshots = nullptr;
        ASSERT_EQ(vinom_snapshots_new(nullptr, 0, &snapshots), VINOM_OK);
        EXPECT_EQ(vinom_snapshots_newest(snapshots), -1);
        Bytes snap = vt::unhex(v.at("hex"));
        vinom::Snap decoded;
        ASSERT_EQ(vinom::decode_snap(vinom::View(snap), decoded), vinom::Error::ok);
        uint64_t tick = 0;
        int64_t ack = -2;
        ASSERT_EQ(vinom_snapshots_receive(snapshots, snap.data(), snap.size(), &tick, &ack),
                  VINOM_OK);
        EXPECT_EQ(tick, v.at("d_tick").get<uint64_t>());
        EXPECT_EQ(ack, decoded.ik ? *decoded.ik : -1);
        EXPECT_EQ(vinom_snapshots_newest(snapshots), static_cast<int64_t>(tick));
        char text[4096];
        size_t len = 0;
        ASSERT_EQ(vinom_snapshots_view(snapshots, tick, text, sizeof text, &len), VINOM_OK);
        EXPECT_EQ(Value::parse(std::string(text, len)).dump(), v.at("d_view").dump());
        ASSERT_EQ(vinom_snapshots_view(snapshots, tick, text, len - 1, &len),
                  VINOM_BUFFER_TOO_SMALL);
        EXPECT_EQ(vinom_snapshots_view(snapshots, tick + 1, text, sizeof text, &len),
                  VINOM_UNEXPECTED);
        // The same snapshot again is stale; bytes that are not a snap change nothing.
        EXPECT_EQ(vinom_snapshots_receive(snapshots, snap.data(), snap.size(), &tick, &ack),
                  VINOM_STALE);
        EXPECT_STREQ(vinom_status_name(VINOM_STALE), "stale");
        const uint8_t junk[] = {0x93, 0x01, 0x02, 0x03};
        EXPECT_NE(vinom_snapshots_receive(snapshots, junk, sizeof junk, &tick, &ack), VINOM_OK);
        EXPECT_EQ(ack, -1);
        const uint8_t cut[] = {0xc1, 0x05, 0x80};  // a packed snap cut in its ts
        EXPECT_EQ(vinom_snapshots_receive(snapshots, cut, sizeof cut, &tick, &ack),
                  VINOM_TRUNCATED);
        EXPECT_EQ(ack, -1);
        vinom_snapshots_free(snapshots);
    }
    EXPECT_GT(seen, packed);
    EXPECT_GT(packed, 0);
    vinom_snapshots* bad = nullptr;
    EXPECT_EQ(vinom_snapshots_new("[[\"x\", -1]]", 11, &bad), VINOM_BAD_FIELD);
    EXPECT_EQ(bad, nullptr);
}

TEST(RealtimeCAbi, InputsAreStampedRepeatedAndForgottenOnceAcknowledged) {
    vinom_inputs* inputs = nullptr;
    EXPECT_EQ(vinom_inputs_new(0.0, &inputs), VINOM_INVALID_ARGUMENT);
    ASSERT_EQ(vinom_inputs_new(20.0, &inputs), VINOM_OK);
    vinom_inputs_observe(inputs, 100, -1, 10.0);
    uint64_t tick = 0;
    const std::string move = R"({"move": [1, 2]})";
    ASSERT_EQ(vinom_inputs_add(inputs, move.data(), move.size(), 10.05, 0.1, &tick), VINOM_OK);
    EXPECT_EQ(tick, 104u);
    EXPECT_EQ(vinom_inputs_add(inputs, "[1]", 3, 10.05, 0.1, &tick), VINOM_BAD_JSON);
    uint8_t out[256];
    size_t len = 0;
    ASSERT_EQ(vinom_inputs_message(inputs, 100, out, sizeof out, &len), VINOM_OK);
    Value message;
    ASSERT_EQ(vinom::decode_message(vinom::View(out, len), message), vinom::Error::ok);
    EXPECT_EQ(message.dump(), R"({"t":"input","a":100,"x":[[104,{"move":[1,2]}]]})");
    EXPECT_EQ(vinom_inputs_message(inputs, -1, out, 3, &len), VINOM_BUFFER_TOO_SMALL);
    EXPECT_EQ(vinom_inputs_pending(inputs), 1u);
    vinom_inputs_observe(inputs, UINT64_MAX, 104, 10.1);  // a snap whose ik is 104
    EXPECT_EQ(vinom_inputs_pending(inputs), 0u);
    EXPECT_EQ(vinom_inputs_overflowed(inputs), 0u);
    vinom_inputs_free(inputs);
    EXPECT_EQ(vinom_client_send_unreliable(nullptr, out, 1), VINOM_INVALID_ARGUMENT);
}
