// The drawing part of the C ABI (include/vinom.h): the server's clock
// (vinom::ServerClock) and the views drawn between snapshots
// (vinom::SnapshotBuffer), views as JSON text. Nothing throws across the
// boundary: every entry point catches allocation failures.
#include <cmath>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "c_abi.hpp"
#include "vinom.h"
#include "vinom/netcode.hpp"

struct vinom_clock : vinom_abi::Handle {
    vinom::ServerClock clock;

    explicit vinom_clock(double tick_rate) : clock(tick_rate) {}
};

struct vinom_buffer : vinom_abi::Handle {
    vinom::SnapshotBuffer buffer;
    // The last render's text, given again to a call for the same time (one whose
    // buffer was too small), so that a retry neither moves nor counts anything.
    std::optional<double> rendered_for;
    std::string rendered;

    explicit vinom_buffer(vinom::SnapshotBuffer b) : buffer(std::move(b)) {}
};

namespace {

using vinom_abi::copy_out;
using vinom_abi::guarded;
using vinom_abi::json_text;

std::optional<double> given(double seconds) {
    if (std::isnan(seconds)) return std::nullopt;
    return seconds;
}

// The Interpolation of its JSON form; false if it is not one.
bool interpolation_of(const vinom::Value& v, vinom::Interpolation& out) {
    if (v.is_null()) return true;
    if (!v.is_object()) return false;
    for (const auto& [key, value] : v.items()) {
        if (key == "fields") {
            if (!value.is_array()) return false;
            for (const auto& path : value) {
                if (!path.is_string()) return false;
                out.fields.push_back(path.get<std::string>());
            }
        } else if (key == "keys") {
            if (!value.is_object()) return false;
            for (const auto& [path, item_key] : value.items()) {
                if (!item_key.is_string()) return false;
                out.keys.emplace_back(path, item_key.get<std::string>());
            }
        } else if (key == "wrap") {
            if (!value.is_object()) return false;
            for (const auto& [path, period] : value.items()) {
                if (!period.is_number() || !(period.get<double>() > 0)) return false;
                out.wrap.emplace_back(path, period.get<double>());
            }
        } else {
            return false;
        }
    }
    return true;
}

}  // namespace

extern "C" {

vinom_status vinom_clock_new(double tick_rate, vinom_clock** out) {
    if (!out || !(tick_rate > 0) || !std::isfinite(tick_rate)) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    return guarded([&] {
        *out = new vinom_clock(tick_rate);
        return VINOM_OK;
    });
}

void vinom_clock_free(vinom_clock* clock) { delete clock; }

void vinom_clock_observe(vinom_clock* clock, uint64_t tick, double server_ms, double now) {
    if (!clock || !std::isfinite(now)) return;
    guarded([&] {
        std::optional<double> ms;
        if (std::isfinite(server_ms)) ms = server_ms;
        clock->clock.observe(tick, ms, now);
        return VINOM_OK;
    });
}

vinom_status vinom_clock_tick(const vinom_clock* clock, double now, double rtt, double* tick) {
    if (!clock || !tick) return VINOM_INVALID_ARGUMENT;
    std::optional<double> t = clock->clock.tick(now, rtt);
    if (!t) return VINOM_UNEXPECTED;
    *tick = *t;
    return VINOM_OK;
}

vinom_status vinom_clock_time(const vinom_clock* clock, double now, double rtt, double* time) {
    if (!clock || !time) return VINOM_INVALID_ARGUMENT;
    std::optional<double> t = clock->clock.time(now, rtt);
    if (!t) return VINOM_UNEXPECTED;
    *time = *t;
    return VINOM_OK;
}

vinom_status vinom_buffer_new(double snapshot_rate, const char* interpolation, size_t len,
                              double delay, double max_extrapolation, vinom_buffer** out) {
    if (!out || (!interpolation && len) || !(snapshot_rate >= 0)) return VINOM_INVALID_ARGUMENT;
    if ((!std::isnan(delay) && !(delay >= 0)) ||
        (!std::isnan(max_extrapolation) && !(max_extrapolation >= 0))) {
        return VINOM_INVALID_ARGUMENT;
    }
    *out = nullptr;
    return guarded([&] {
        vinom::Value parsed;  // null: nothing moves
        if (len) {
            parsed = vinom::Value::parse(interpolation, interpolation + len, nullptr, false);
            if (parsed.is_discarded()) return VINOM_BAD_JSON;
        }
        vinom::Interpolation rules;
        if (!interpolation_of(parsed, rules)) return VINOM_BAD_JSON;
        *out = new vinom_buffer(vinom::SnapshotBuffer(snapshot_rate, std::move(rules),
                                                      given(delay), given(max_extrapolation)));
        return VINOM_OK;
    });
}

void vinom_buffer_free(vinom_buffer* buffer) { delete buffer; }

vinom_status vinom_buffer_push(vinom_buffer* buffer, double server_time, const char* view,
                               size_t len) {
    if (!buffer || (!view && len) || !std::isfinite(server_time)) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        vinom::Value parsed = vinom::Value::parse(view, view + len, nullptr, false);
        if (parsed.is_discarded()) return VINOM_BAD_JSON;
        buffer->buffer.push(server_time, std::move(parsed));
        return VINOM_OK;
    });
}

vinom_status vinom_buffer_render(vinom_buffer* buffer, double server_now, char* out, size_t cap,
                                 size_t* len) {
    if (!buffer || (!out && cap) || !len || !std::isfinite(server_now)) {
        return VINOM_INVALID_ARGUMENT;
    }
    return guarded([&] {
        if (buffer->rendered_for != server_now) {
            buffer->rendered = json_text(buffer->buffer.render(server_now));
            buffer->rendered_for = server_now;
        }
        return copy_out(buffer->rendered, out, cap, len);
    });
}

void vinom_buffer_counts(const vinom_buffer* buffer, uint64_t* extrapolated, uint64_t* held,
                         uint64_t* early) {
    if (!buffer) return;
    if (extrapolated) *extrapolated = buffer->buffer.extrapolated;
    if (held) *held = buffer->buffer.held;
    if (early) *early = buffer->buffer.early;
}

}  // extern "C"
