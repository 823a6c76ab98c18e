// The server's clock and snapshot interpolation (include/vinom/netcode.hpp),
// with the cases of tests/client/test_netcode.py for the Python ones.
#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "vinom.h"
#include "vinom/netcode.hpp"

using vinom::Value;

namespace {

constexpr double RATE = 20.0;

const vinom::Interpolation ARENA{
    {"players.*.1", "players.*.2"},
    {{"players", "0"}},
    {{"players.*.1", 600.0}, {"players.*.2", 600.0}},
};

Value view(std::vector<Value> players) {
    Value v;
    v["me"] = 0;
    v["players"] = Value(players);
    return v;
}

Value player(int id, double x, double y) { return Value::array({id, x, y}); }

}  // namespace

TEST(ServerClock, TheFastestTripWinsNotTheNewest) {
    vinom::ServerClock clock(RATE);
    clock.observe(10, 500.0, 0.55);  // 50 ms on the way
    clock.observe(11, 550.0, 0.70);  // 150 ms: a slow one
    EXPECT_NEAR(*clock.tick(0.70), 13.0, 1e-9);
    EXPECT_NEAR(*clock.time(0.70), 0.65, 1e-9);
    // Half the round trip is added: the server ran on while the snapshot came.
    EXPECT_NEAR(*clock.tick(0.70, 0.1), 14.0, 1e-9);
}

TEST(ServerClock, AStalledServerIsFollowedWithinTheWindow) {
    vinom::ServerClock clock(RATE);
    for (int k = 0; k < 40; ++k) clock.observe(k, std::nullopt, k / RATE);
    for (int k = 50; k < 100; ++k) clock.observe(k, std::nullopt, (k - 10) / RATE);
    EXPECT_NEAR(*clock.tick(89 / RATE), 99.0, 1e-9);
    EXPECT_FALSE(clock.time(1.0));  // no ts was given
}

TEST(ServerClock, AnEstimateThatMustComeDownSlewsNeverStepsBack) {
    vinom::ServerClock clock(RATE);
    clock.observe(0, std::nullopt, 0.0);  // a trip of 0 (the fastest)...
    std::vector<double> readings;
    for (int k = 1; k < 80; ++k) {  // ...then every one 20 ms longer
        clock.observe(k, std::nullopt, k / RATE + 0.02);
        readings.push_back(*clock.tick(k / RATE + 0.02));
    }
    EXPECT_NEAR(readings[38], 39.4, 1e-9);
    bool slewed = false;
    for (std::size_t i = 1; i < readings.size(); ++i) {
        double step = readings[i] - readings[i - 1];
        EXPECT_GT(step, 0.95 - 1e-9) << i;
        slewed = slewed || std::abs(step - 0.95) < 1e-9;
    }
    EXPECT_TRUE(slewed);
    EXPECT_NEAR(readings.back(), 79.0, 1e-9);
}

TEST(ServerClock, NothingBeforeTheFirstSnapshot) {
    vinom::ServerClock clock(RATE);
    EXPECT_FALSE(clock.synced());
    EXPECT_FALSE(clock.tick(1.0));
    EXPECT_FALSE(clock.time(1.0));
}

TEST(Interpolation, NamedFieldsMoveTheRestSnaps) {
    Value a{{"x", 0.0}, {"hp", 10}, {"name", "a"}};
    Value b{{"x", 10.0}, {"hp", 7}, {"name", "b"}};
    vinom::Interpolation x{{"x"}, {}, {}};
    EXPECT_EQ(vinom::blend(a, b, 0.25, x).dump(), R"({"x":2.5,"hp":7,"name":"b"})");
}

TEST(Interpolation, ListItemsAreMatchedByTheirKey) {
    Value a = view({player(0, 100, 100), player(3, 200, 200)});
    Value b = view({player(3, 210, 200), player(5, 50, 50), player(0, 110, 100)});
    EXPECT_EQ(vinom::blend(a, b, 0.5, ARENA)["players"].dump(),
              "[[3,205.0,200.0],[5,50.0,50.0],[0,105.0,100.0]]");
}

TEST(Interpolation, AWrappingFieldGoesTheShorterWayRound) {
    Value a = view({player(0, 595, 10)}), b = view({player(0, 5, 10)});
    EXPECT_NEAR(vinom::blend(a, b, 0.25, ARENA)["players"][0][1].get<double>(), 597.5, 1e-9);
    EXPECT_NEAR(vinom::blend(a, b, 0.75, ARENA)["players"][0][1].get<double>(), 2.5, 1e-9);
}

TEST(SnapshotBuffer, RenderedAtServerTimeMinusTwoSnapshotIntervals) {
    vinom::SnapshotBuffer buffer(20.0, ARENA);
    EXPECT_NEAR(buffer.delay(), 0.1, 1e-12);
    EXPECT_TRUE(vinom::SnapshotBuffer(20.0).render(1.0).is_null());
    for (int k = 0; k < 10; ++k) buffer.push(k / 20.0, view({player(0, 10.0 * k, 0)}));
    EXPECT_NEAR(buffer.render(0.4)["players"][0][1].get<double>(), 60.0, 1e-9);
    EXPECT_NEAR(buffer.render(0.4125)["players"][0][1].get<double>(), 62.5, 1e-9);
    // The estimate stepping back holds the render where it was.
    EXPECT_NEAR(buffer.render(0.41)["players"][0][1].get<double>(), 62.5, 1e-9);
    EXPECT_NEAR(*buffer.rendered_at(), 0.3125, 1e-12);
}

TEST(SnapshotBuffer, ALostSnapshotIsBridged) {
    vinom::SnapshotBuffer buffer(20.0, ARENA);
    for (int k : {0, 1, 3, 4}) buffer.push(k / 20.0, view({player(0, 10.0 * k, 0)}));
    EXPECT_NEAR(buffer.sample(0.1)["players"][0][1].get<double>(), 20.0, 1e-9);
}

TEST(SnapshotBuffer, ExtrapolationIsBounded) {
    vinom::SnapshotBuffer buffer(20.0, ARENA);
    for (int k = 0; k < 3; ++k) buffer.push(k / 20.0, view({player(0, 10.0 * k, 0)}));
    EXPECT_NEAR(buffer.sample(0.125)["players"][0][1].get<double>(), 25.0, 1e-9);
    EXPECT_EQ(buffer.extrapolated, 1u);
    EXPECT_NEAR(buffer.sample(0.5)["players"][0][1].get<double>(), 30.0, 1e-9);
    EXPECT_EQ(buffer.held, 1u);
    // A late snapshot fills in: placed by its time, not its arrival.
    buffer.push(0.075, view({player(0, 15.0, 0)}));
    EXPECT_NEAR(buffer.sample(0.0625)["players"][0][1].get<double>(), 12.5, 1e-9);
}

TEST(SnapshotBuffer, TheLast32ViewsAreKept) {
    vinom::SnapshotBuffer buffer(20.0, ARENA);
    for (std::size_t k = 0; k <= vinom::BUFFER_SIZE; ++k) {
        buffer.push(k / 20.0, view({player(0, static_cast<double>(k), 0)}));
    }
    EXPECT_EQ(buffer.size(), 32u);
    EXPECT_EQ(buffer.sample(0.0)["players"][0][1].get<double>(), 1.0);
    EXPECT_EQ(buffer.early, 1u);
}

TEST(SnapshotBuffer, TheDelayIsAdjustable) {
    vinom::SnapshotBuffer buffer(10.0, {}, 0.05, 0.0);
    EXPECT_EQ(buffer.delay(), 0.05);
    EXPECT_EQ(buffer.max_extrapolation(), 0.0);
    EXPECT_NEAR(vinom::SnapshotBuffer(10.0).delay(), 0.2, 1e-12);
}

// The same through the C ABI (vinom.h), views as JSON text.
TEST(NetcodeCAbi, TheClockAndTheBufferDrawTheArenaBetweenSnapshots) {
    vinom_clock* clock = nullptr;
    ASSERT_EQ(vinom_clock_new(0.0, &clock), VINOM_INVALID_ARGUMENT);
    ASSERT_EQ(vinom_clock_new(RATE, &clock), VINOM_OK);
    double tick = 0, time = 0;
    EXPECT_EQ(vinom_clock_tick(clock, 0.5, 0.0, &tick), VINOM_UNEXPECTED);
    vinom_clock_observe(clock, 10, 500.0, 0.55);
    vinom_clock_observe(clock, 11, NAN, 0.70);
    ASSERT_EQ(vinom_clock_tick(clock, 0.70, 0.1, &tick), VINOM_OK);
    EXPECT_NEAR(tick, 14.0, 1e-9);
    ASSERT_EQ(vinom_clock_time(clock, 0.70, 0.0, &time), VINOM_OK);
    EXPECT_NEAR(time, 0.65, 1e-9);
    vinom_clock_free(clock);

    const std::string arena =
        R"({"fields": ["players.*.1", "players.*.2"], "keys": {"players": "0"},)"
        R"( "wrap": {"players.*.1": 600, "players.*.2": 600}})";
    vinom_buffer* buffer = nullptr;
    for (const std::string bad : {"[1]", R"({"fields": [1]})", R"({"wrap": {"x": -1}})",
                                  R"({"other": []})", "{"}) {
        EXPECT_EQ(vinom_buffer_new(20.0, bad.data(), bad.size(), NAN, NAN, &buffer),
                  VINOM_BAD_JSON) << bad;
        EXPECT_EQ(buffer, nullptr);
    }
    ASSERT_EQ(vinom_buffer_new(20.0, arena.data(), arena.size(), NAN, NAN, &buffer), VINOM_OK);
    char text[256];
    size_t len = 0;
    ASSERT_EQ(vinom_buffer_render(buffer, 0.0, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(std::string(text, len), "null");
    for (int k = 0; k < 3; ++k) {
        std::string v = R"({"me":0,"players":[[0,)" + std::to_string(10 * k) + ",0]]}";
        ASSERT_EQ(vinom_buffer_push(buffer, k / 20.0, v.data(), v.size()), VINOM_OK);
    }
    EXPECT_EQ(vinom_buffer_push(buffer, 0.2, "{", 1), VINOM_BAD_JSON);
    // Rendered at 0.1625 - 0.1: between the views of 0.05 and 0.1, a quarter way.
    ASSERT_EQ(vinom_buffer_render(buffer, 0.1625, text, 4, &len), VINOM_BUFFER_TOO_SMALL);
    ASSERT_EQ(vinom_buffer_render(buffer, 0.1625, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(std::string(text, len), R"({"me":0,"players":[[0,12.5,0.0]]})");
    // Past the newest view: extrapolated once (the retry above counted nothing),
    // then held at the bound.
    ASSERT_EQ(vinom_buffer_render(buffer, 0.225, text, sizeof text, &len), VINOM_OK);
    EXPECT_EQ(std::string(text, len), R"({"me":0,"players":[[0,25.0,0.0]]})");
    ASSERT_EQ(vinom_buffer_render(buffer, 0.6, text, sizeof text, &len), VINOM_OK);
    uint64_t extrapolated = 0, held = 0, early = 0;
    vinom_buffer_counts(buffer, &extrapolated, &held, &early);
    EXPECT_EQ(extrapolated, 1u);
    EXPECT_EQ(held, 1u);
    EXPECT_EQ(early, 0u);
    vinom_buffer_free(buffer);
}

// -- prediction, with the arena's rule for the own player (benchmarks/arena.py's
// ArenaGame(2).step: a move sets the velocity, then x, y move on, wrapping).

namespace {

constexpr double SIZE = 300.0;

double wrapped(double v) {
    double m = std::fmod(v, SIZE);
    return m < 0 ? m + SIZE : m;
}

Value arena_step(const Value& own, const std::vector<Value>& inputs, double dt) {
    double vx = own["vx"].get<double>(), vy = own["vy"].get<double>();
    for (const Value& input : inputs) {
        auto move = input.find("move");
        if (move != input.end() && move->is_array() && move->size() == 2) {
            vx = (*move)[0].get<double>();
            vy = (*move)[1].get<double>();
        }
    }
    return Value{{"x", wrapped(own["x"].get<double>() + vx * dt)},
                 {"y", wrapped(own["y"].get<double>() + vy * dt)}, {"vx", vx}, {"vy", vy}};
}

Value own(double x, double y, double vx, double vy) {
    return Value{{"x", x}, {"y", y}, {"vx", vx}, {"vy", vy}};
}

vinom::Predictor arena_predictor(std::vector<std::string> smooth = {"x"}) {
    vinom::Predictor::Options options;
    options.smooth = std::move(smooth);
    return vinom::Predictor(arena_step, RATE, std::move(options));
}

vinom::Predictor arena_predictor(vinom::Predictor::Options options) {
    return vinom::Predictor(arena_step, RATE, std::move(options));
}

double x_of(const Value& v) { return v.at("x").get<double>(); }

}  // namespace

TEST(Predictor, ThePredictionEqualsTheServerOnceAcknowledged) {
    // Player 0's inputs are stamped `lag` ticks ahead and predicted; its views
    // (rounded as the arena's: 0.01, velocities 0.1) arrive `lag` ticks late,
    // `loss` of them lost, and reconcile the prediction: the tick predicted is the
    // server's, to the rounding.
    for (auto [seed, loss] : {std::pair<unsigned, double>{1, 0.0}, {2, 0.1}, {3, 0.3}}) {
        std::mt19937 rng(seed);
        std::uniform_real_distribution<double> unit(0.0, 1.0);
        const int lag = 3;
        vinom::Predictor::Options options;
        options.smooth = {"x", "y"};
        options.wrap = {{"x", SIZE}, {"y", SIZE}};
        vinom::Predictor predictor = arena_predictor(options);
        Value state = own(150.0, 150.0, 0.0, 0.0);
        std::map<int, Value> inputs;
        std::map<int, Value> truth;
        std::deque<std::pair<int, Value>> in_flight;
        int checked = 0;
        for (int k = 1; k <= 200; ++k) {
            if (unit(rng) < 0.3) {
                Value move = {std::round((unit(rng) * 160 - 80) * 10) / 10,
                              std::round((unit(rng) * 160 - 80) * 10) / 10};
                inputs[k + lag] = Value{{"move", move}};
                predictor.add(k + lag, inputs[k + lag]);
            }
            std::vector<Value> now;
            if (inputs.count(k)) now.push_back(inputs[k]);
            state = arena_step(state, now, 1 / RATE);
            truth[k] = state;
            if (unit(rng) >= loss) {
                Value seen = state;
                for (const char* f : {"x", "y"}) seen[f] = std::round(seen[f].get<double>() * 100) / 100;
                in_flight.emplace_back(k, seen);
            }
            while (!in_flight.empty() && in_flight.front().first <= k - lag) {
                predictor.reconcile(in_flight.front().first, in_flight.front().second, k / RATE);
                in_flight.pop_front();
            }
            if (k > lag) {
                Value predicted = predictor.state_at(k);
                ASSERT_FALSE(predicted.is_null());
                for (const char* f : {"x", "y"}) {
                    double d = std::abs(predicted[f].get<double>() - truth[k][f].get<double>());
                    EXPECT_LT(std::min(d, SIZE - d), 0.011) << seed << " " << k;
                }
                ++checked;
            }
        }
        EXPECT_GT(checked, 150);
        EXPECT_LT(predictor.last_error, 0.011);
    }
}

TEST(Predictor, ALateInputIsCorrectedSmoothlyAndCounted) {
    vinom::Predictor predictor = arena_predictor(std::vector<std::string>{"x", "y"});
    Value still = own(100.0, 100.0, 0.0, 0.0);
    predictor.reconcile(10, still, 0.0);
    predictor.add(12, Value{{"move", {100.0, 0.0}}});
    EXPECT_DOUBLE_EQ(x_of(predictor.state_at(14)), 115.0);
    EXPECT_DOUBLE_EQ(x_of(predictor.render(14.0, 0.0)), 115.0);
    // At tick 12 the player still stood (the input came late): 115 drops to 100.
    EXPECT_DOUBLE_EQ(predictor.reconcile(12, still, 1.0), 15.0);
    EXPECT_EQ(predictor.corrections, 1u);
    EXPECT_DOUBLE_EQ(predictor.last_error, 15.0);
    // Not snapped: what was shown stays shown, then fades (time constant 0.1 s).
    EXPECT_NEAR(x_of(predictor.render(14.0, 1.0)), 115.0, 1e-9);
    EXPECT_NEAR(x_of(predictor.render(14.0, 1.1)), 100.0 + 15.0 * std::exp(-1.0), 1e-9);
    EXPECT_NEAR(x_of(predictor.render(14.0, 2.0)), 100.0, 1e-2);
    predictor.reconcile(13, own(105.0, 100.0, 100.0, 0.0), 2.0);
    EXPECT_DOUBLE_EQ(x_of(predictor.state_at(14)), 110.0);
}

TEST(Predictor, AtMost64TicksArePredictedPastTheSnapshot) {
    vinom::Predictor predictor = arena_predictor();
    predictor.reconcile(0, own(0.0, 0.0, 10.0, 0.0), 0.0);
    EXPECT_EQ(vinom::MAX_PREDICTED_TICKS, 64);
    EXPECT_NEAR(x_of(predictor.state_at(64)), 32.0, 1e-9);
    EXPECT_NEAR(x_of(predictor.state_at(100)), 32.0, 1e-9);
}

TEST(Predictor, ACorrectionBeyondTeleportIsShownAtOnce) {
    vinom::Predictor::Options options;
    options.smooth = {"x", "y"};
    options.teleport = 50.0;
    vinom::Predictor predictor = arena_predictor(options);
    Value here = own(100.0, 100.0, 0.0, 0.0);
    predictor.reconcile(10, here, 0.0);
    EXPECT_DOUBLE_EQ(x_of(predictor.render(12.0, 0.0)), 100.0);
    predictor.reconcile(11, own(110.0, 100.0, 0.0, 0.0), 1.0);  // 10 off: smoothed
    EXPECT_NEAR(x_of(predictor.render(12.0, 1.0)), 100.0, 1e-9);
    EXPECT_EQ(predictor.corrections, 1u);
    EXPECT_EQ(predictor.teleports, 0u);
    predictor.reconcile(12, own(250.0, 100.0, 0.0, 0.0), 2.0);  // respawned: shown there
    EXPECT_DOUBLE_EQ(x_of(predictor.render(12.0, 2.0)), 250.0);
    EXPECT_EQ(predictor.corrections, 1u);
    EXPECT_EQ(predictor.teleports, 1u);
}

TEST(Predictor, ResetForgetsOrStartsOverFromAState) {
    vinom::Predictor predictor = arena_predictor();
    predictor.reconcile(10, own(0.0, 0.0, 10.0, 0.0), 0.0);
    predictor.add(12, Value{{"move", {20.0, 0.0}}});
    predictor.reset();
    EXPECT_TRUE(predictor.state_at(20).is_null());
    EXPECT_TRUE(predictor.render(20.0, 0.0).is_null());
    EXPECT_EQ(predictor.inputs_held(), 0u);
    predictor.add(12, Value{{"move", {20.0, 0.0}}});
    predictor.add(14, Value{{"move", {40.0, 0.0}}});
    predictor.reset(12, own(200.0, 0.0, 0.0, 0.0));
    EXPECT_EQ(predictor.inputs_held(), 1u);
    EXPECT_NEAR(x_of(predictor.render(14.0, 0.0)), 202.0, 1e-9);
    EXPECT_EQ(predictor.corrections, 0u);
}

TEST(Predictor, AnOlderSnapshotChangesNothing) {
    vinom::Predictor predictor = arena_predictor();
    EXPECT_TRUE(predictor.state_at(3).is_null());
    predictor.reconcile(10, own(1.0, 0.0, 0.0, 0.0), 0.0);
    EXPECT_EQ(predictor.reconcile(9, own(5.0, 0.0, 0.0, 0.0), 0.0), 0.0);
    EXPECT_DOUBLE_EQ(x_of(predictor.state_at(11)), 1.0);
}
