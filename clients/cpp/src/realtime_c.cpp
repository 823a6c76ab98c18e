// The real-time part of the C ABI (include/vinom.h): a player's snapshots
// (vinom::SnapshotReceiver) and inputs (vinom::TickClock, vinom::InputQueue).
// Nothing throws across the boundary: every entry point catches allocation
// failures.
#include <limits>
#include <new>
#include <optional>
#include <string>

#include "c_abi.hpp"
#include "vinom.h"
#include "vinom/delta.hpp"
#include "vinom/realtime.hpp"

struct vinom_snapshots : vinom_abi::Handle {
    vinom::Quantisation rules;  // kept for a receiver with the schema
    vinom::SnapshotReceiver receiver;

    explicit vinom_snapshots(vinom::Quantisation q) : rules(q), receiver(std::move(q)) {}
};

struct vinom_inputs : vinom_abi::Handle {
    vinom::TickClock clock;
    vinom::InputQueue queue;

    explicit vinom_inputs(double tick_rate) : clock(tick_rate) {}
};

namespace {

using vinom_abi::copy_out;
using vinom_abi::guarded;
using vinom_abi::json_text;
using vinom_abi::status;

}  // namespace

extern "C" {

vinom_status vinom_snapshots_new(const char* rules, size_t len, vinom_snapshots** out) {
    if (!out || (!rules && len)) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    return guarded([&] {
        vinom::Value parsed;  // null: no rules
        if (len) {
            parsed = vinom::Value::parse(rules, rules + len, nullptr, false);
            if (parsed.is_discarded()) return VINOM_BAD_JSON;
        }
        vinom::Quantisation q;
        vinom::Error e = vinom::Quantisation::from_rules(parsed, q);
        if (e != vinom::Error::ok) return status(e);
        *out = new vinom_snapshots(std::move(q));
        return VINOM_OK;
    });
}

void vinom_snapshots_free(vinom_snapshots* snapshots) { delete snapshots; }

vinom_status vinom_snapshots_schema(vinom_snapshots* snapshots, const char* declaration,
                                    size_t len) {
    if (!snapshots || (!declaration && len)) return VINOM_INVALID_ARGUMENT;
    // A new receiver: before any snapshot, so that none is lost.
    if (snapshots->receiver.newest()) return VINOM_UNEXPECTED;
    return guarded([&] {
        vinom::Value parsed = vinom::Value::parse(declaration, declaration + len, nullptr, false);
        if (parsed.is_discarded()) return VINOM_BAD_JSON;
        vinom::ViewSchema schema;
        vinom::Error e = vinom::ViewSchema::from_declaration(parsed, schema);
        if (e != vinom::Error::ok) return status(e);
        snapshots->receiver = vinom::SnapshotReceiver(snapshots->rules, std::move(schema));
        return VINOM_OK;
    });
}

int vinom_snapshots_asking(const vinom_snapshots*) { return 0; }  // nothing is asked

vinom_status vinom_snapshots_receive(vinom_snapshots* snapshots, const uint8_t* snap, size_t len,
                                     uint64_t* tick, int64_t* input_ack) {
    if (!snapshots || (!snap && len) || !tick || !input_ack) return VINOM_INVALID_ARGUMENT;
    *input_ack = -1;
    return guarded([&] {
        vinom::Snap message;
        vinom::Snapshot applied;
        vinom::Error e =
            snapshots->receiver.receive_snap(vinom::View(snap, len), message, applied);
        if (message.ik && *message.ik >= 0) *input_ack = *message.ik;
        if (e == vinom::Error::ok) *tick = applied.tick;
        return status(e);
    });
}

vinom_status vinom_snapshots_view(const vinom_snapshots* snapshots, uint64_t tick, char* out,
                                  size_t cap, size_t* len) {
    if (!snapshots || (!out && cap) || !len) return VINOM_INVALID_ARGUMENT;
    const vinom::Value* view = snapshots->receiver.view(tick);
    if (!view) return VINOM_UNEXPECTED;
    return guarded([&] { return copy_out(json_text(*view), out, cap, len); });
}

vinom_status vinom_snapshots_state(const vinom_snapshots* snapshots, uint64_t tick, char* out,
                                   size_t cap, size_t* len) {
    if (!snapshots || (!out && cap) || !len) return VINOM_INVALID_ARGUMENT;
    const vinom::Snap* snap = snapshots->receiver.snap(tick);
    const vinom::Value* view = snapshots->receiver.view(tick);
    if (!snap || !view) return VINOM_UNEXPECTED;
    return guarded([&] {
        // As the Python client's state_of_snap: r in seconds.
        auto opt = [](const std::optional<std::int64_t>& x) {
            return x ? vinom::Value(*x) : vinom::Value(nullptr);
        };
        vinom::Value state = {{"t", "state"}, {"v", snap->v}, {"p", "playing"}};
        state["r"] = snap->r ? vinom::Value(static_cast<double>(*snap->r) / 1000.0)
                             : vinom::Value(nullptr);
        state["k"] = tick;
        state["ts"] = snap->ts;
        state["s"] = *view;
        state["i"] = opt(snap->i);
        return copy_out(json_text(state), out, cap, len);
    });
}

int64_t vinom_snapshots_newest(const vinom_snapshots* snapshots) {
    if (!snapshots || !snapshots->receiver.newest()) return -1;
    return static_cast<int64_t>(*snapshots->receiver.newest());
}

vinom_status vinom_inputs_new(double tick_rate, vinom_inputs** out) {
    if (!out || !(tick_rate > 0)) return VINOM_INVALID_ARGUMENT;
    *out = nullptr;
    return guarded([&] {
        *out = new vinom_inputs(tick_rate);
        return VINOM_OK;
    });
}

void vinom_inputs_free(vinom_inputs* inputs) { delete inputs; }

void vinom_inputs_observe(vinom_inputs* inputs, uint64_t tick, int64_t input_ack, double now) {
    if (!inputs) return;
    if (tick != std::numeric_limits<uint64_t>::max()) inputs->clock.observe(tick, now);
    if (input_ack >= 0) inputs->queue.acknowledge(static_cast<std::uint64_t>(input_ack));
}

vinom_status vinom_inputs_add(vinom_inputs* inputs, const char* json, size_t len, double now,
                              double rtt, uint64_t* tick) {
    if (!inputs || (!json && len) || !tick) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        vinom::Value input = vinom::Value::parse(json, json + len, nullptr, false);
        if (input.is_discarded() || !input.is_object()) return VINOM_BAD_JSON;
        *tick = inputs->queue.add(inputs->clock.input_tick(now, rtt), std::move(input));
        return VINOM_OK;
    });
}

vinom_status vinom_inputs_message(const vinom_inputs* inputs, int64_t ack, uint8_t* out,
                                  size_t cap, size_t* len) {
    if (!inputs || (!out && cap) || !len) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        std::optional<std::uint64_t> acked;
        if (ack >= 0) acked = static_cast<std::uint64_t>(ack);
        vinom::Bytes message;
        vinom::Error e = vinom::encode_message(inputs->queue.message(acked), message);
        if (e != vinom::Error::ok) return status(e);
        return copy_out(message, out, cap, len);
    });
}

vinom_status vinom_inputs_message_for(const vinom_inputs* inputs,
                                      const vinom_snapshots* snapshots, uint8_t* out, size_t cap,
                                      size_t* len) {
    if (!inputs || !snapshots || (!out && cap) || !len) return VINOM_INVALID_ARGUMENT;
    return guarded([&] {
        const vinom::SnapshotReceiver& receiver = snapshots->receiver;
        vinom::Bytes message;
        vinom::Error e = vinom::encode_message(inputs->queue.message(receiver.newest()), message);
        if (e != vinom::Error::ok) return status(e);
        return copy_out(message, out, cap, len);
    });
}

size_t vinom_inputs_pending(const vinom_inputs* inputs) {
    return inputs ? inputs->queue.pending() : 0;
}

uint64_t vinom_inputs_overflowed(const vinom_inputs* inputs) {
    return inputs ? inputs->queue.overflowed() : 0;
}

}  // extern "C"
