// Real-time inputs (include/vinom/realtime.hpp) and the endpoint's channel 0,
// as vinom/client/realtime.py and the host's rules (docs/protocol.md 14) have them.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "support.hpp"
#include "vinom.h"
#include "vinom/codec.hpp"
#include "vinom/delta.hpp"
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

namespace {

// A snap (game protocol 4) written as the host writes it: `d` of `tick`, its
// numbers against `base` (null: d full).
Bytes snap_bytes(std::int64_t v, std::int64_t ts, std::optional<std::int64_t> r,
                 std::optional<std::int64_t> i, std::optional<std::int64_t> ik,
                 const std::string& d, std::uint64_t tick, const vinom::SnapFields* base) {
    vinom::Snap s;
    s.v = v;
    s.ts = ts;
    s.r = r;
    s.i = i;
    s.ik = ik;
    s.d = vt::unhex(d);
    Bytes out;
    EXPECT_EQ(vinom::encode_snap(s, tick, base, out), vinom::Error::ok);
    return out;
}

// 16.1 snapshots of the view {"x": n}: tick 3 full, tick 4 and 5 against 3.
const std::string FULL_3 = "9403c0c081a17801";    // [3, nil, nil, {"x": 1}]
const std::string DELTA_4 = "940401c081a17802";   // [4, 1, nil, {"x": 2}]
const std::string DELTA_5 = "940502c081a17803";   // [5, 2, nil, {"x": 3}]

}  // namespace

// Relative snaps with a 16.1 body (docs/protocol.md 14, 16.1): the numbers of a
// full one are its own; a delta's are against the snap of its baseline, kept
// for every snap applied, whatever its body.
TEST(SnapshotReceiver, ResolvesRelativeSnapsWithA161Body) {
    vinom::SnapshotReceiver r;
    vinom::Snap snap;
    vinom::Snapshot s;
    const vinom::SnapFields at_3{5, 300, 29500};
    Bytes full = snap_bytes(5, 300, 29500, std::nullopt, 2, FULL_3, 3, nullptr);
    EXPECT_EQ(vt::hex(full), "c105ac02bde60100" "02" + FULL_3);  // ik 2: zigzag(-1) + 1
    ASSERT_EQ(r.receive_snap(full, snap, s), vinom::Error::ok);
    EXPECT_EQ(s.tick, 3u);
    EXPECT_EQ(s.view.dump(), R"({"x":1})");
    EXPECT_EQ(snap.v, 5);
    EXPECT_EQ(snap.ts, 300);
    EXPECT_EQ(snap.r, 29500);
    EXPECT_FALSE(snap.i);
    EXPECT_EQ(snap.ik, 2);
    EXPECT_EQ(vt::hex(snap.d), FULL_3);
    // Tick 4 against 3: 50 ms later, the same end of phase (r 50 ms less), v + 1.
    Bytes delta = snap_bytes(6, 350, 29450, -3, 4, DELTA_4, 4, &at_3);
    EXPECT_EQ(vt::hex(delta), "c1013201" "06" "01" + DELTA_4);
    ASSERT_EQ(r.receive_snap(delta, snap, s), vinom::Error::ok);
    EXPECT_EQ(s.tick, 4u);
    EXPECT_EQ(s.baseline_tick, 3u);
    EXPECT_EQ(s.view.dump(), R"({"x":2})");
    EXPECT_EQ(snap.v, 6);
    EXPECT_EQ(snap.ts, 350);
    EXPECT_EQ(snap.r, 29450);
    EXPECT_EQ(snap.i, -3);
    EXPECT_EQ(snap.ik, 4);
    ASSERT_NE(r.snap(4), nullptr);
    EXPECT_EQ(r.snap(4)->ts, 350);
    EXPECT_TRUE(r.snap(4)->d.empty());
    // Tick 5 against 3 too (the host's baseline is the acknowledged tick), r nil.
    Bytes nil_r = snap_bytes(7, 400, std::nullopt, std::nullopt, std::nullopt, DELTA_5, 5, &at_3);
    ASSERT_EQ(r.receive_snap(nil_r, snap, s), vinom::Error::ok);
    EXPECT_EQ(snap.v, 7);
    EXPECT_EQ(snap.ts, 400);
    EXPECT_FALSE(snap.r);
    EXPECT_FALSE(snap.ik);
    EXPECT_EQ(r.applied(), 3u);
    // Again: stale, its ik read all the same.
    EXPECT_EQ(r.receive_snap(delta, snap, s), vinom::Error::stale);
    EXPECT_EQ(snap.ik, 4);
    EXPECT_EQ(r.drops().stale, 1u);
    // Not a snap (the array of game protocol 3, msgpack): its decoding's error, not counted.
    EXPECT_EQ(r.receive_snap(vt::unhex("9605cd012cc0c0c0c408" + FULL_3), snap, s),
              vinom::Error::bad_field);
    // A corrupt d: dropped, counted.
    EXPECT_EQ(r.receive_snap(vt::unhex("c10000000000" "94"), snap, s), vinom::Error::bad_field);
    EXPECT_EQ(r.drops().corrupt, 1u);
    EXPECT_EQ(r.drops().unknown_baseline, 0u);
}

TEST(SnapshotReceiver, DropsARelativeSnapWhoseBaselinesNumbersAreNotHeld) {
    vinom::Snap snap;
    vinom::Snapshot s;
    const vinom::SnapFields at_3{5, 300, std::nullopt};
    Bytes delta = snap_bytes(6, 350, std::nullopt, std::nullopt, 4, DELTA_4, 4, &at_3);
    // Neither view nor numbers of tick 3.
    vinom::SnapshotReceiver none;
    EXPECT_EQ(none.receive_snap(delta, snap, s), vinom::Error::unknown_baseline);
    EXPECT_EQ(snap.ik, 4);
    EXPECT_EQ(none.drops().unknown_baseline, 1u);
    // Its view applied alone (receive: no snap, no numbers): unknown all the same.
    vinom::SnapshotReceiver bare;
    ASSERT_EQ(bare.receive(vt::unhex(FULL_3), s), vinom::Error::ok);
    EXPECT_EQ(bare.receive_snap(delta, snap, s), vinom::Error::unknown_baseline);
    EXPECT_EQ(bare.drops().unknown_baseline, 1u);
    EXPECT_EQ(bare.applied(), 1u);
    // Numbers kept for the last `capacity` snaps only, as the views.
    vinom::SnapshotReceiver small(vinom::Quantisation(), 1);
    ASSERT_EQ(small.receive_snap(snap_bytes(5, 300, std::nullopt, std::nullopt, std::nullopt,
                                            FULL_3, 3, nullptr),
                                 snap, s),
              vinom::Error::ok);
    ASSERT_EQ(small.receive_snap(delta, snap, s), vinom::Error::ok);
    EXPECT_EQ(small.snap(3), nullptr);
    EXPECT_NE(small.snap(4), nullptr);
    Bytes against_3 = snap_bytes(7, 400, std::nullopt, std::nullopt, std::nullopt, DELTA_5, 5,
                                 &at_3);
    EXPECT_EQ(small.receive_snap(against_3, snap, s), vinom::Error::unknown_baseline);
    // Numbers that resolve past 2^53: corrupt.
    vinom::SnapshotReceiver r;
    ASSERT_EQ(r.receive_snap(snap_bytes(5, 300, std::nullopt, std::nullopt, std::nullopt, FULL_3,
                                        3, nullptr),
                             snap, s),
              vinom::Error::ok);
    Bytes past = vt::unhex("c1ffffffffffffff0f00000000" + DELTA_4);
    EXPECT_EQ(r.receive_snap(past, snap, s), vinom::Error::bad_field);
    EXPECT_EQ(r.drops().corrupt, 1u);
    EXPECT_EQ(r.newest(), 3u);
}

// The same through the C ABI (vinom.h): the vectors' relative snaps with a
// 16.1 body (full, and a delta against it), and those above.
TEST(RealtimeCAbi, SnapshotsRebuildEachSnapsViewAndGiveItsInputAck) {
    {
        // One player's: a delta's baseline is an earlier vector's snap.
        vinom_snapshots* snapshots = nullptr;
        ASSERT_EQ(vinom_snapshots_new(nullptr, 0, &snapshots), VINOM_OK);
        int seen = 0, deltas = 0;
        for (const auto& v : vt::vectors().at("messages").at("vectors")) {
            if (v.at("kind") != "relative_snap" || !v.contains("d_view")) continue;
            SCOPED_TRACE(v.at("name").get<std::string>());
            ++seen;
            deltas += v.contains("base_tick");
            Bytes snap = vt::unhex(v.at("hex"));
            uint64_t tick = 0;
            int64_t ack = -2;
            ASSERT_EQ(vinom_snapshots_receive(snapshots, snap.data(), snap.size(), &tick, &ack),
                      VINOM_OK);
            EXPECT_EQ(tick, v.at("d_tick").get<uint64_t>());
            const auto& f = v.at("snap");
            EXPECT_EQ(ack, f.at("ik").is_null() ? -1 : f.at("ik").get<int64_t>());
            char text[4096];
            size_t len = 0;
            ASSERT_EQ(vinom_snapshots_view(snapshots, tick, text, sizeof text, &len), VINOM_OK);
            EXPECT_EQ(Value::parse(std::string(text, len)).dump(), v.at("d_view").dump());
            ASSERT_EQ(vinom_snapshots_state(snapshots, tick, text, sizeof text, &len), VINOM_OK);
            Value state = Value::parse(std::string(text, len));
            EXPECT_EQ(state.at("v"), f.at("v"));
            EXPECT_EQ(state.at("ts"), f.at("ts"));
            if (f.at("r").is_null()) EXPECT_TRUE(state.at("r").is_null());
            else EXPECT_DOUBLE_EQ(state.at("r").get<double>(), f.at("r").get<double>() / 1000.0);
            EXPECT_EQ(state.at("i"), f.at("i"));
            EXPECT_EQ(state.at("k"), tick);
            EXPECT_EQ(state.at("s").dump(), v.at("d_view").dump());
        }
        EXPECT_GT(seen, deltas);
        EXPECT_GT(deltas, 0);
        vinom_snapshots_free(snapshots);
    }

    vinom_snapshots* snapshots = nullptr;
    ASSERT_EQ(vinom_snapshots_new(nullptr, 0, &snapshots), VINOM_OK);
    EXPECT_EQ(vinom_snapshots_newest(snapshots), -1);
    const vinom::SnapFields at_3{5, 300, 29500};
    Bytes full = snap_bytes(5, 300, 29500, std::nullopt, 2, FULL_3, 3, nullptr);
    Bytes delta = snap_bytes(6, 350, 29450, -3, 4, DELTA_4, 4, &at_3);
    uint64_t tick = 0;
    int64_t ack = -2;
    char text[4096];
    size_t len = 0;
    // The delta first: its baseline not held; its ik read all the same.
    EXPECT_EQ(vinom_snapshots_receive(snapshots, delta.data(), delta.size(), &tick, &ack),
              VINOM_UNKNOWN_BASELINE);
    EXPECT_EQ(ack, 4);
    ASSERT_EQ(vinom_snapshots_receive(snapshots, full.data(), full.size(), &tick, &ack),
              VINOM_OK);
    EXPECT_EQ(tick, 3u);
    EXPECT_EQ(ack, 2);
    ASSERT_EQ(vinom_snapshots_receive(snapshots, delta.data(), delta.size(), &tick, &ack),
              VINOM_OK);
    EXPECT_EQ(tick, 4u);
    EXPECT_EQ(ack, 4);
    EXPECT_EQ(vinom_snapshots_newest(snapshots), 4);
    ASSERT_EQ(vinom_snapshots_view(snapshots, 4, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(std::string(text, len), R"({"x":2})");
    ASSERT_EQ(vinom_snapshots_view(snapshots, 4, text, len - 1, &len), VINOM_BUFFER_TOO_SMALL);
    EXPECT_EQ(vinom_snapshots_view(snapshots, 5, text, sizeof text, &len), VINOM_UNEXPECTED);
    // The state each stands for, r in seconds.
    ASSERT_EQ(vinom_snapshots_state(snapshots, 4, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(std::string(text, len),
              R"({"t":"state","v":6,"p":"playing","r":29.45,"k":4,"ts":350,"s":{"x":2},"i":-3})");
    ASSERT_EQ(vinom_snapshots_state(snapshots, 3, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(std::string(text, len),
              R"({"t":"state","v":5,"p":"playing","r":29.5,"k":3,"ts":300,"s":{"x":1},"i":null})");
    EXPECT_EQ(vinom_snapshots_state(snapshots, 5, text, sizeof text, &len), VINOM_UNEXPECTED);
    EXPECT_EQ(vinom_snapshots_state(nullptr, 4, text, sizeof text, &len), VINOM_INVALID_ARGUMENT);
    // The same snapshot again is stale; bytes that are not a snap change nothing.
    EXPECT_EQ(vinom_snapshots_receive(snapshots, delta.data(), delta.size(), &tick, &ack),
              VINOM_STALE);
    EXPECT_STREQ(vinom_status_name(VINOM_STALE), "stale");
    const uint8_t junk[] = {0x93, 0x01, 0x02, 0x03};
    EXPECT_NE(vinom_snapshots_receive(snapshots, junk, sizeof junk, &tick, &ack), VINOM_OK);
    EXPECT_EQ(ack, -1);
    const uint8_t cut[] = {0xc1, 0x05, 0x80};  // a snap cut in its ts
    EXPECT_EQ(vinom_snapshots_receive(snapshots, cut, sizeof cut, &tick, &ack),
              VINOM_TRUNCATED);
    EXPECT_EQ(ack, -1);
    // A snap is no msgpack: no JSON of it without its baseline's numbers.
    EXPECT_EQ(vinom_message_to_json(full.data(), full.size(), text, sizeof text, &len),
              VINOM_BAD_TYPE);
    vinom_snapshots_free(snapshots);

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
