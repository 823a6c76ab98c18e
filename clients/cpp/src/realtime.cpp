// Real-time inputs: the tick clock and the queue of unacknowledged inputs
// (include/vinom/realtime.hpp).
#include "vinom/realtime.hpp"

#include <algorithm>
#include <cmath>

namespace vinom {

void TickClock::observe(std::uint64_t tick, double now) {
    clock_.observe(tick, std::nullopt, now);
    if (!tick_ || tick > *tick_) {
        tick_ = tick;
        seen_at_ = now;
    }
}

std::optional<double> TickClock::estimate(double now) const {
    if (!tick_) return std::nullopt;
    return clock_.tick(std::max(now, seen_at_));
}

std::uint64_t TickClock::input_tick(double now, double rtt) const {
    std::optional<double> e = estimate(now);
    if (!e) return 1;
    return static_cast<std::uint64_t>(std::floor(*e + std::max(0.0, rtt) * tick_rate_)) + 1;
}

std::uint64_t InputQueue::add(std::uint64_t tick, Value input) {
    if (last_tick_) tick = std::max(tick, *last_tick_ + 1);
    last_tick_ = tick;
    if (pending_.size() == MAX_UNACKED) {
        pending_.pop_front();
        ++overflowed_;
    }
    pending_.emplace_back(tick, std::move(input));
    return tick;
}

void InputQueue::acknowledge(std::uint64_t tick) {
    while (!pending_.empty() && pending_.front().first <= tick) pending_.pop_front();
}

Value InputQueue::message(std::optional<std::uint64_t> ack) const {
    Value pairs = Value::array();
    for (const auto& [tick, input] : pending_) pairs.push_back(Value::array({tick, input}));
    Value m;
    m["t"] = "input";
    m["a"] = ack ? Value(*ack) : Value(nullptr);
    m["x"] = std::move(pairs);
    return m;
}

}  // namespace vinom
