// Real-time inputs (include/vinom/realtime.hpp) and the endpoint's channel 0,
// as vinom/client/realtime.py and the host's rules (docs/protocol.md 14) have them.
#include <gtest/gtest.h>

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
