// Client-side netcode for real-time games (docs/client.md, "Clock,
// interpolation and prediction"): the server's clock estimated from the
// snapshots, and the others drawn between two views of the past. The same
// rules, defaults and names as vinom/client/netcode.py's ServerClock,
// Interpolation, blend and SnapshotBuffer (the web client's netcode.js has
// them too). Sans-I/O: every call takes the caller's `now` (seconds).
//
// ServerClock: tick k falls at k / tick_rate s of play, so a snapshot of tick k
// received at local time t samples the offset k / tick_rate - t, short by its
// trip here; the largest offset of the last `window` seconds is the fastest
// trip's (NTP's clock filter), and the estimate. One that must come down (its
// sample left the window) slews at CLOCK_SLEW, never steps back.
//
// SnapshotBuffer: views by server time, rendered at server time - delay (two
// snapshot intervals by default): between the two views around it the numeric
// fields the Interpolation names move (the shorter way round on a wrapping
// world), list items matched by a key; past the newest view they go on at
// their velocity for at most one interval, then hold.
//
// Predictor: the own player's state run ahead of the snapshots by the game's
// own step over the inputs given since (client-side prediction); each snapshot
// rewinds it to the server's state and replays the later inputs
// (reconciliation), and what that moves in the state shown fades out over
// SMOOTHING seconds instead of jumping (beyond `teleport`: shown at once).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vinom/messages.hpp"

namespace vinom {

constexpr double CLOCK_WINDOW = 2.0;
constexpr double CLOCK_SLEW = 0.05;
constexpr double DELAY_INTERVALS = 2.0;
constexpr double EXTRAPOLATION_INTERVALS = 1.0;
constexpr std::size_t BUFFER_SIZE = 32;
constexpr double SMOOTHING = 0.1;
constexpr double CORRECTION_EPSILON = 1e-6;
constexpr std::int64_t MAX_PREDICTED_TICKS = 64;

class ServerClock {
public:
    explicit ServerClock(double tick_rate, double window = CLOCK_WINDOW)
        : tick_rate_(tick_rate), window_(window) {}

    // A snapshot of `tick`, built at `server_ms` ms of the room's time (its `ts`,
    // or none), arrived at `now`.
    void observe(std::uint64_t tick, std::optional<double> server_ms, double now);
    bool synced() const { return !samples_.empty(); }
    // The server's tick at `now`, fractional, over a round trip of `rtt` s (none
    // before any snapshot).
    std::optional<double> tick(double now, double rtt = 0.0) const;
    // The room's time at `now` in seconds (none before a snapshot with `ts`).
    std::optional<double> time(double now, double rtt = 0.0) const;
    std::uint64_t observed() const { return observed_; }
    std::uint64_t reordered() const { return reordered_; }

private:
    struct Sample {
        double at, offset;
        std::optional<double> time_offset;
    };
    double tick_rate_, window_;
    std::deque<Sample> samples_;
    std::uint64_t observed_ = 0, reordered_ = 0;
    std::optional<std::uint64_t> newest_tick_;
    std::optional<double> tick_offset_, time_offset_, updated_at_;
};

// What to interpolate in a game's view, by dotted path of map keys and list
// indices, `*` for any (the syntax of a game's quantisation): `fields` the
// numeric fields moved, `keys` what identifies a list's items between views
// (the key or index in each item), `wrap` a field's period on a wrapping world.
struct Interpolation {
    std::vector<std::string> fields;
    std::vector<std::pair<std::string, std::string>> keys;
    std::vector<std::pair<std::string, double>> wrap;
};

// The view `f` of the way from `a` to `b` (above 1 extrapolates): `b`'s
// structure and values, its named numeric fields moved from their value in `a`.
Value blend(const Value& a, const Value& b, double f, const Interpolation& interpolation);

class SnapshotBuffer {
public:
    // `delay` and `max_extrapolation` in seconds (none: two snapshot intervals and one).
    explicit SnapshotBuffer(double snapshot_rate, Interpolation interpolation = {},
                            std::optional<double> delay = std::nullopt,
                            std::optional<double> max_extrapolation = std::nullopt);

    // A view the server built at `server_time` (s: a state's ts / 1000); one at a
    // time already held is ignored; the oldest beyond BUFFER_SIZE goes.
    void push(double server_time, Value view);
    // The view at server time `at` (null before any view).
    Value sample(double at);
    // The view to draw now, `server_now` the clock's server time: at
    // server_now - delay, never earlier than the last render.
    Value render(double server_now);
    // The server time of the last render (what the player saw), none before.
    std::optional<double> rendered_at() const { return last_render_; }

    double delay() const { return delay_; }
    double max_extrapolation() const { return max_extrapolation_; }
    std::size_t size() const { return views_.size(); }
    // Renders past the newest view (extrapolated), beyond the bound (held), and
    // before the oldest view (early).
    std::uint64_t extrapolated = 0, held = 0, early = 0;

private:
    Interpolation interpolation_;
    double delay_, max_extrapolation_;
    std::vector<std::pair<double, Value>> views_;
    std::optional<double> last_render_;
};

class Predictor {
public:
    // The game's rule for one tick: the inputs the host applies at that tick
    // (usually none or one), then the tick's own step of `dt` = 1 / tick_rate.
    using Step = std::function<Value(const Value& state, const std::vector<Value>& inputs,
                                     double dt)>;

    // `smooth`: the state's numeric fields whose corrections fade (`wrap`: their
    // period on a wrapping world); a correction up to `tolerance` fades but is
    // not counted, one beyond `teleport` is shown at once (a respawn).
    struct Options {
        std::vector<std::string> smooth;
        std::vector<std::pair<std::string, double>> wrap;
        double smoothing = SMOOTHING;
        double tolerance = CORRECTION_EPSILON;
        double teleport = std::numeric_limits<double>::infinity();
    };

    Predictor(Step step, double tick_rate, Options options);
    Predictor(Step step, double tick_rate) : Predictor(std::move(step), tick_rate, Options()) {}

    // Start over: nothing predicted, the inputs forgotten (the own entity is gone).
    void reset();
    // Predict from `state`, the own state right after `tick`, at once (a teleport
    // the game knows of); the inputs stamped after `tick` are kept.
    void reset(std::int64_t tick, Value state);
    // The player gave `input` for `tick` (the tick its InputQueue stamped).
    void add(std::int64_t tick, Value input);
    // The predicted state right after `tick` (null before the first snapshot):
    // the snapshot's, replayed one step a tick, at most MAX_PREDICTED_TICKS on.
    Value state_at(std::int64_t tick) const;
    // A snapshot says the own state right after `tick` was `state`: rewind,
    // replay, and keep the change in what is shown as a fading offset. The
    // correction's size (the largest smooth field's; 0 when the prediction held).
    double reconcile(std::int64_t tick, Value state, double now);
    // The own state to draw at fractional `tick` (where an input given now reaches
    // the host), the smooth fields blended between ticks, plus the fading
    // correction (null before the first snapshot).
    Value render(double tick, double now);

    std::size_t inputs_held() const;
    std::uint64_t corrections = 0, teleports = 0;
    double error_total = 0.0, last_error = 0.0;

private:
    std::optional<double> period(const std::string& field) const;
    bool predicted(std::int64_t k) const;
    Value stepped(const Value& state, std::int64_t k) const;
    Value at(double tick) const;
    std::map<std::string, double> offset(double now) const;

    Step step_;
    double tick_rate_;
    Options options_;
    Value base_;
    std::int64_t base_tick_ = -1;
    std::map<std::int64_t, std::vector<Value>> inputs_;
    std::map<std::string, double> offset_;
    double offset_at_ = 0.0;
    std::optional<double> shown_;
};

}  // namespace vinom
