// The sending side of a real-time game's inputs (docs/protocol.md section 14,
// "Inputs"; docs/client.md, "Real-time inputs"): which tick to stamp an input
// with, and what to repeat so that a lost datagram loses no input. The same
// rules as the Python client's vinom/client/realtime.py. Sans-I/O: times and
// ticks in, ticks and the `input` message out. The clock is the one the
// Python client's GameSession stamps by: the fastest trip's (ServerClock).
//
//   vinom::TickClock clock(welcome["tick_rate"]);
//   vinom::InputQueue inputs;
//   // each snap (channel 0), once a SnapshotReceiver's receive_snap applied it:
//   clock.observe(snapshot.tick, now);
//   if (snap.ik && *snap.ik >= 0) inputs.acknowledge(*snap.ik);
//   inputs.add(clock.input_tick(now, rtt), Value{{"move", ...}});
//   // encoded:
//   client.send_unreliable(inputs.message(receiver.newest()));
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

#include "vinom/messages.hpp"
#include "vinom/netcode.hpp"

namespace vinom {

// The server's tick as the snapshots tell it: the tick of the fastest trip of
// the last 2 s (ServerClock), plus the time since at the game's tick rate. A
// snapshot held up on the way (a resend, a stalled reader) does not pull the
// estimate back, which would stamp inputs for ticks already run.
class TickClock {
public:
    explicit TickClock(double tick_rate) : tick_rate_(tick_rate), clock_(tick_rate) {}

    // A snapshot of `tick` arrived at `now`.
    void observe(std::uint64_t tick, double now);
    // The server's tick at `now`, never before the newest tick seen (none before
    // any snapshot).
    std::optional<double> estimate(double now) const;
    // The tick an input sent at `now` is for, over a round trip of `rtt` s: the
    // first the host runs after it arrives, floor(estimate + rtt * rate) + 1
    // (1 before any snapshot). Stamping later only adds latency: a late input is
    // applied at the next tick, an early one waits.
    std::uint64_t input_tick(double now, double rtt) const;

private:
    double tick_rate_;
    ServerClock clock_;
    std::optional<std::uint64_t> tick_;
    double seen_at_ = 0.0;
};

// The inputs the host has not acknowledged yet (a snap's `ik`), oldest first,
// at most MAX_UNACKED (the oldest dropped first, counted): each `input` message
// repeats them all.
class InputQueue {
public:
    static constexpr std::size_t MAX_UNACKED = 8;  // the host's MAX_INPUTS_PER_MESSAGE

    // Queues `input` for `tick` (moved to the tick after the last one stamped if
    // not later: one input per tick); the tick it was stamped with.
    std::uint64_t add(std::uint64_t tick, Value input);
    // The host received every input up to `tick`: they are forgotten.
    void acknowledge(std::uint64_t tick);
    // {"t": "input", "a": ack, "x": [[k, input], ...]}: `ack` the newest snapshot
    // tick applied (none: nil). Nothing is asked: a game with a view schema
    // sends schema snapshots from its first snap (docs/protocol.md 14, 16.8).
    Value message(std::optional<std::uint64_t> ack) const;

    std::size_t pending() const { return pending_.size(); }
    // Inputs dropped unacknowledged because MAX_UNACKED were waiting.
    std::uint64_t overflowed() const { return overflowed_; }

private:
    std::deque<std::pair<std::uint64_t, Value>> pending_;
    std::optional<std::uint64_t> last_tick_;
    std::uint64_t overflowed_ = 0;
};

}  // namespace vinom
