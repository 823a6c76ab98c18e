// The server's clock, snapshot interpolation and prediction
// (include/vinom/netcode.hpp), as vinom/client/netcode.py has them.
#include "vinom/netcode.hpp"

#include <algorithm>
#include <cmath>
#include <map>

namespace vinom {

namespace {

std::optional<double> slewed(std::optional<double> current, std::optional<double> best,
                             double elapsed) {
    if (!best || !current || *best >= *current) return best;
    return std::max(*best, *current - CLOCK_SLEW * elapsed);
}

using Path = std::vector<std::string>;

Path pattern(const std::string& path) {
    Path out;
    if (path.empty()) return out;
    std::size_t start = 0;
    while (true) {
        std::size_t dot = path.find('.', start);
        out.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
        if (dot == std::string::npos) return out;
        start = dot + 1;
    }
}

bool matches(const Path& p, const Path& path) {
    if (p.size() != path.size()) return false;
    for (std::size_t i = 0; i < p.size(); ++i) {
        if (p[i] != "*" && p[i] != path[i]) return false;
    }
    return true;
}

struct Rules {
    std::vector<Path> fields;
    std::vector<std::pair<Path, std::string>> keys;
    std::vector<std::pair<Path, double>> wrap;

    explicit Rules(const Interpolation& i) {
        for (const auto& f : i.fields) fields.push_back(pattern(f));
        for (const auto& [p, k] : i.keys) keys.emplace_back(pattern(p), k);
        for (const auto& [p, v] : i.wrap) wrap.emplace_back(pattern(p), v);
    }
    bool interpolated(const Path& path) const {
        return std::any_of(fields.begin(), fields.end(), [&](const Path& p) { return matches(p, path); });
    }
    const std::string* key(const Path& path) const {
        for (const auto& [p, k] : keys) {
            if (matches(p, path)) return &k;
        }
        return nullptr;
    }
    std::optional<double> period(const Path& path) const {
        for (const auto& [p, v] : wrap) {
            if (matches(p, path)) return v;
        }
        return std::nullopt;
    }
};

double modulo(double x, double period) {
    double m = std::fmod(x, period);
    return m < 0 ? m + period : m;
}

double lerp(double a, double b, double f, std::optional<double> period) {
    if (!period) return a + (b - a) * f;
    double d = modulo(b - a, *period);
    if (d > *period / 2) d -= *period;
    return modulo(a + d * f, *period);
}

// An item's key as text, or none (an item without it is matched with nothing).
std::optional<std::string> item_key(const Value& item, const std::string& key) {
    if (item.is_object()) {
        auto it = item.find(key);
        if (it == item.end() || it->is_null()) return std::nullopt;
        return it->dump();
    }
    if (item.is_array() && !key.empty() &&
        std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        std::size_t i = std::stoul(key);
        if (i < item.size() && !item[i].is_null()) return item[i].dump();
    }
    return std::nullopt;
}

const Value& null_value() {
    static const Value null;
    return null;
}

Value blended(const Value& a, const Value& b, double f, const Rules& rules, Path& path) {
    if (b.is_object()) {
        if (!a.is_object()) return b;
        Value out = Value::object();
        for (auto it = b.begin(); it != b.end(); ++it) {
            auto old = a.find(it.key());
            path.push_back(it.key());
            out[it.key()] = blended(old == a.end() ? null_value() : *old, it.value(), f, rules, path);
            path.pop_back();
        }
        return out;
    }
    if (b.is_array()) {
        if (!a.is_array()) return b;
        Value out = Value::array();
        const std::string* key = rules.key(path);
        std::map<std::string, const Value*> by_key;
        if (key) {
            for (const Value& item : a) {
                if (auto k = item_key(item, *key)) by_key[*k] = &item;
            }
        }
        for (std::size_t i = 0; i < b.size(); ++i) {
            const Value* old = nullptr;
            if (!key) {
                if (i < a.size()) old = &a[i];
            } else if (auto k = item_key(b[i], *key)) {
                auto found = by_key.find(*k);
                if (found != by_key.end()) old = found->second;
            }
            path.push_back(std::to_string(i));
            out.push_back(blended(old ? *old : null_value(), b[i], f, rules, path));
            path.pop_back();
        }
        return out;
    }
    if (a.is_number() && b.is_number() && rules.interpolated(path)) {
        return lerp(a.get<double>(), b.get<double>(), f, rules.period(path));
    }
    return b;
}

Value blended(const Value& a, const Value& b, double f, const Rules& rules) {
    Path path;
    return blended(a, b, f, rules, path);
}

}  // namespace

void ServerClock::observe(std::uint64_t tick, std::optional<double> server_ms, double now) {
    ++observed_;
    if (newest_tick_ && tick < *newest_tick_) ++reordered_;  // a slower trip: a poor sample
    newest_tick_ = newest_tick_ ? std::max(*newest_tick_, tick) : tick;
    std::optional<double> time_offset;
    if (server_ms) time_offset = *server_ms / 1000.0 - now;
    samples_.push_back(Sample{now, static_cast<double>(tick) / tick_rate_ - now, time_offset});
    while (samples_.size() > 1 && samples_.front().at < now - window_) samples_.pop_front();
    std::optional<double> best, best_time;
    for (const Sample& s : samples_) {
        best = best ? std::max(*best, s.offset) : s.offset;
        if (s.time_offset) best_time = best_time ? std::max(*best_time, *s.time_offset) : *s.time_offset;
    }
    double elapsed = updated_at_ ? std::max(0.0, now - *updated_at_) : 0.0;
    tick_offset_ = slewed(tick_offset_, best, elapsed);
    time_offset_ = slewed(time_offset_, best_time, elapsed);
    updated_at_ = now;
}

std::optional<double> ServerClock::tick(double now, double rtt) const {
    if (!tick_offset_) return std::nullopt;
    return (*tick_offset_ + now + std::max(0.0, rtt) / 2) * tick_rate_;
}

std::optional<double> ServerClock::time(double now, double rtt) const {
    if (!time_offset_) return std::nullopt;
    return *time_offset_ + now + std::max(0.0, rtt) / 2;
}

Value blend(const Value& a, const Value& b, double f, const Interpolation& interpolation) {
    return blended(a, b, f, Rules(interpolation));
}

SnapshotBuffer::SnapshotBuffer(double snapshot_rate, Interpolation interpolation,
                               std::optional<double> delay,
                               std::optional<double> max_extrapolation)
    : interpolation_(std::move(interpolation)) {
    double interval = snapshot_rate > 0 ? 1.0 / snapshot_rate : 0.1;
    delay_ = delay ? *delay : DELAY_INTERVALS * interval;
    max_extrapolation_ = max_extrapolation ? *max_extrapolation : EXTRAPOLATION_INTERVALS * interval;
}

void SnapshotBuffer::push(double server_time, Value view) {
    auto at = std::lower_bound(views_.begin(), views_.end(), server_time,
                               [](const auto& held, double t) { return held.first < t; });
    if (at != views_.end() && at->first == server_time) return;
    views_.emplace(at, server_time, std::move(view));
    if (views_.size() > BUFFER_SIZE) views_.erase(views_.begin());
}

Value SnapshotBuffer::sample(double at) {
    if (views_.empty()) return Value();
    if (at <= views_.front().first) {
        if (at < views_.front().first) ++early;
        return views_.front().second;
    }
    Rules rules(interpolation_);
    for (std::size_t i = 1; i < views_.size(); ++i) {
        const auto& [t0, a] = views_[i - 1];
        const auto& [t1, b] = views_[i];
        if (at <= t1) return blended(a, b, (at - t0) / (t1 - t0), rules);
    }
    if (views_.size() < 2) return views_.back().second;
    const auto& [t0, before] = views_[views_.size() - 2];
    const auto& [t1, newest] = views_.back();
    double over = at - t1;
    if (over > max_extrapolation_) {
        ++held;
        over = max_extrapolation_;
    } else {
        ++extrapolated;
    }
    return blended(before, newest, 1.0 + over / (t1 - t0), rules);
}

Value SnapshotBuffer::render(double server_now) {
    double at = server_now - delay_;
    if (last_render_) at = std::max(at, *last_render_);
    last_render_ = at;
    return sample(at);
}

Predictor::Predictor(Step step, double tick_rate, Options options)
    : step_(std::move(step)), tick_rate_(tick_rate), options_(std::move(options)) {}

std::optional<double> Predictor::period(const std::string& field) const {
    for (const auto& [name, p] : options_.wrap) {
        if (name == field) return p;
    }
    return std::nullopt;
}

void Predictor::reset() {
    offset_.clear();
    shown_.reset();
    base_ = Value();
    base_tick_ = -1;
    inputs_.clear();
}

void Predictor::reset(std::int64_t tick, Value state) {
    offset_.clear();
    shown_.reset();
    base_ = std::move(state);
    base_tick_ = tick;
    inputs_.erase(inputs_.begin(), inputs_.upper_bound(tick));
}

void Predictor::add(std::int64_t tick, Value input) {
    if (tick > base_tick_) inputs_[tick].push_back(std::move(input));
}

std::size_t Predictor::inputs_held() const {
    std::size_t n = 0;
    for (const auto& [tick, held] : inputs_) n += held.size();
    return n;
}

Value Predictor::state_at(std::int64_t tick) const {
    if (base_.is_null()) return Value();
    Value state = base_;
    for (std::int64_t k = base_tick_ + 1; k <= tick && predicted(k); ++k)
        state = stepped(state, k);
    return state;
}

// Whether tick k is one the prediction steps: past the snapshot's, at most
// MAX_PREDICTED_TICKS on.
bool Predictor::predicted(std::int64_t k) const {
    return k > base_tick_ && k <= base_tick_ + MAX_PREDICTED_TICKS;
}

// `state` (the prediction after tick k - 1) after tick k: the game's step over
// the inputs stamped for k.
Value Predictor::stepped(const Value& state, std::int64_t k) const {
    static const std::vector<Value> none;
    auto it = inputs_.find(k);
    return step_(state, it == inputs_.end() ? none : it->second, 1.0 / tick_rate_);
}

Value Predictor::at(double tick) const {
    auto whole = static_cast<std::int64_t>(std::floor(tick));
    Value a = state_at(whole);
    if (a.is_null()) return Value();
    // The tick after: one step more, where state_at would step (else the same).
    Value b = predicted(whole + 1) ? stepped(a, whole + 1) : a;
    double f = tick - static_cast<double>(whole);
    for (const std::string& name : options_.smooth) {
        auto x = a.find(name), y = b.find(name);
        if (x != a.end() && y != b.end() && x->is_number() && y->is_number()) {
            b[name] = lerp(x->get<double>(), y->get<double>(), f, period(name));
        }
    }
    return b;
}

double Predictor::reconcile(std::int64_t tick, Value state, double now) {
    if (tick <= base_tick_) return 0.0;  // older than the one held: nothing new
    double shown_at = shown_ ? std::max(*shown_, static_cast<double>(tick))
                             : static_cast<double>(tick);
    Value before = at(shown_at);
    base_ = std::move(state);
    base_tick_ = tick;
    inputs_.erase(inputs_.begin(), inputs_.upper_bound(tick));
    Value after = at(shown_at);
    if (before.is_null() || after.is_null()) return 0.0;
    std::map<std::string, double> kept = offset(now);
    double error = 0.0;
    for (const std::string& name : options_.smooth) {
        auto a = before.find(name), b = after.find(name);
        if (a == before.end() || b == after.end() || !a->is_number() || !b->is_number()) continue;
        double d = a->get<double>() - b->get<double>();
        if (auto p = period(name)) d = modulo(d + *p / 2, *p) - *p / 2;
        error = std::max(error, std::abs(d));
        kept[name] += d;
    }
    offset_at_ = now;
    if (error > options_.teleport) {
        // A jump in the game: shown where it is, nothing slides there.
        offset_.clear();
        ++teleports;
        return error;
    }
    offset_ = std::move(kept);
    if (error <= std::max(options_.tolerance, CORRECTION_EPSILON)) return 0.0;
    ++corrections;
    error_total += error;
    last_error = error;
    return error;
}

std::map<std::string, double> Predictor::offset(double now) const {
    std::map<std::string, double> out;
    if (offset_.empty()) return out;
    double elapsed = std::max(0.0, now - offset_at_);
    double fade = options_.smoothing > 0 ? std::exp(-elapsed / options_.smoothing) : 0.0;
    for (const auto& [name, v] : offset_) {
        if (std::abs(v * fade) > CORRECTION_EPSILON) out[name] = v * fade;
    }
    return out;
}

Value Predictor::render(double tick, double now) {
    Value shown = at(tick);
    if (shown.is_null()) return shown;
    shown_ = tick;
    for (const auto& [name, d] : offset(now)) {
        auto it = shown.find(name);
        if (it == shown.end() || !it->is_number()) continue;
        double value = it->get<double>() + d;
        auto p = period(name);
        shown[name] = p ? modulo(value, *p) : value;
    }
    return shown;
}

}  // namespace vinom
