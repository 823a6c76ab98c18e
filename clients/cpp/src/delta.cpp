// Delta snapshots (docs/protocol.md section 16) with msgpack-cxx: the patch is
// read straight from msgpack's objects (its delete marker is an ext, which no
// view holds), applied to a copy of the baseline.
#include "vinom/delta.hpp"

#include <msgpack.hpp>

#include "pack_value.hpp"
#include "view_value.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <iterator>
#include <string>
#include <vector>

namespace vinom {

struct Quantisation::Node {
    std::map<std::string, std::shared_ptr<Node>> children;
    std::shared_ptr<Node> wildcard;
    double scale = 0;  // 1 / step for a stepped number here; 0: none
    bool f32 = false;
};

namespace {

using Node = Quantisation::Node;
using NodePtr = std::shared_ptr<Node>;

// -- quantisation (16.3) --

const Node* child(const Node* node, const std::string& key) {
    if (!node) return nullptr;
    auto it = node->children.find(key);
    return it != node->children.end() ? it->second.get() : node->wildcard.get();
}

const Node* child_at(const Node* node, std::size_t index) {
    return node ? child(node, std::to_string(index)) : nullptr;
}

// A node matching what both match; the literal's own rule wins over the wildcard's.
NodePtr merge(const Node& literal, const Node& wildcard) {
    auto merged = std::make_shared<Node>();
    const Node& source = (literal.scale != 0 || literal.f32) ? literal : wildcard;
    merged->scale = source.scale;
    merged->f32 = source.f32;
    for (const auto& [key, a] : literal.children) {
        auto b = wildcard.children.find(key);
        merged->children[key] = b == wildcard.children.end() ? a : merge(*a, *b->second);
    }
    for (const auto& [key, b] : wildcard.children)
        if (!literal.children.count(key)) merged->children[key] = b;
    if (!literal.wildcard || !wildcard.wildcard)
        merged->wildcard = literal.wildcard ? literal.wildcard : wildcard.wildcard;
    else
        merged->wildcard = merge(*literal.wildcard, *wildcard.wildcard);
    return merged;
}

// Folds each wildcard into its literal siblings, so a walk follows one node only.
void resolve(Node& node) {
    if (node.wildcard) {
        for (auto& entry : node.children) entry.second = merge(*entry.second, *node.wildcard);
        resolve(*node.wildcard);
    }
    for (auto& entry : node.children) resolve(*entry.second);
}

bool add_rule(Node& root, const std::string& pattern, const Value& rule) {
    Node* node = &root;
    std::size_t start = 0, segments = 0;
    while (true) {
        std::size_t dot = pattern.find('.', start);
        std::string segment = pattern.substr(start, dot == std::string::npos ? dot : dot - start);
        if (segment.empty() || ++segments > MAX_VIEW_DEPTH) return false;
        NodePtr& next = segment == "*" ? node->wildcard : node->children[segment];
        if (!next) next = std::make_shared<Node>();
        node = next.get();
        if (dot == std::string::npos) break;
        start = dot + 1;
    }
    if (rule.is_string() && rule.get_ref<const std::string&>() == "f32") {
        node->f32 = true;
        return true;
    }
    if (!rule.is_number()) return false;
    double step = rule.get<double>();
    if (!(step > 0) || !std::isfinite(1.0 / step)) return false;
    node->scale = 1.0 / step;  // one IEEE division, as the host's 1.0 / step
    return true;
}

// -- reading the msgpack of a snapshot (16.1, 16.2) --

std::string key_of(const msgpack::object& o) { return std::string(o.via.str.ptr, o.via.str.size); }

// A value sent whole, checked: what msgpack can give that no view holds is corrupt.
bool full(const msgpack::object& o, const Node* node, std::size_t depth, Value& out) {
    switch (o.type) {
        case msgpack::type::NIL: out = nullptr; return true;
        case msgpack::type::BOOLEAN: out = o.via.boolean; return true;
        case msgpack::type::POSITIVE_INTEGER:
            if (node && node->scale != 0)
                out = static_cast<double>(o.via.u64) / node->scale;
            else
                out = o.via.u64;
            return true;
        case msgpack::type::NEGATIVE_INTEGER:
            if (node && node->scale != 0)
                out = static_cast<double>(o.via.i64) / node->scale;
            else
                out = o.via.i64;
            return true;
        case msgpack::type::FLOAT32:
        case msgpack::type::FLOAT64: out = o.via.f64; return true;
        case msgpack::type::STR: out = key_of(o); return true;
        case msgpack::type::BIN: {
            const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
            out = Value::binary(std::vector<std::uint8_t>(p, p + o.via.bin.size));
            return true;
        }
        case msgpack::type::ARRAY: {
            if (depth >= MAX_VIEW_DEPTH) return false;
            Value items = Value::array();
            for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
                Value x;
                if (!full(o.via.array.ptr[i], child_at(node, i), depth + 1, x)) return false;
                items.push_back(std::move(x));
            }
            out = std::move(items);
            return true;
        }
        case msgpack::type::MAP: {
            if (depth >= MAX_VIEW_DEPTH) return false;
            Value map = Value::object();
            for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
                const auto& kv = o.via.map.ptr[i];
                if (kv.key.type != msgpack::type::STR) return false;
                std::string key = key_of(kv.key);
                Value x;
                if (!full(kv.val, child(node, key), depth + 1, x)) return false;
                map[key] = std::move(x);
            }
            out = std::move(map);
            return true;
        }
        default: return false;  // an ext (the delete marker included) is no view's value
    }
}

bool is_delete_marker(const msgpack::object& o) {
    return o.type == msgpack::type::EXT && o.via.ext.type() == 0 && o.via.ext.size == 0;
}

// `target` (a copy of the baseline's value here) with `patch` applied in place.
bool apply(Value& target, const msgpack::object& patch, const Node* node, std::size_t depth) {
    if (target.is_object() && patch.type == msgpack::type::MAP) {
        if (depth >= MAX_VIEW_DEPTH) return false;
        for (std::uint32_t i = 0; i < patch.via.map.size; ++i) {
            const auto& kv = patch.via.map.ptr[i];
            if (kv.key.type != msgpack::type::STR) return false;
            std::string key = key_of(kv.key);
            auto it = target.find(key);
            if (kv.val.type == msgpack::type::EXT) {
                // Removes a key, which must be present.
                if (!is_delete_marker(kv.val) || it == target.end()) return false;
                target.erase(key);
                continue;
            }
            const Node* next = child(node, key);
            if (it != target.end()) {
                if (!apply(*it, kv.val, next, depth + 1)) return false;
            } else {
                Value x;
                if (!full(kv.val, next, depth + 1, x)) return false;
                target[key] = std::move(x);
            }
        }
        return true;
    }
    if (target.is_array() && patch.type == msgpack::type::ARRAY) {
        if (depth >= MAX_VIEW_DEPTH) return false;
        // [length, i, patch_i, ...]
        std::size_t n = patch.via.array.size;
        if (n % 2 != 1) return false;
        const msgpack::object* items = patch.via.array.ptr;
        if (items[0].type != msgpack::type::POSITIVE_INTEGER) return false;
        std::size_t old = target.size();
        std::uint64_t length = items[0].via.u64;
        // Growth is bounded by the pairs given: every added index must be one.
        if (length > old + (n - 1) / 2) return false;
        std::size_t size = static_cast<std::size_t>(length);
        if (size < old) target.erase(target.begin() + static_cast<std::ptrdiff_t>(size),
                                     target.end());
        std::vector<char> given(size > old ? size - old : 0, 0);
        while (target.size() < size) target.push_back(nullptr);
        for (std::size_t at = 1; at < n; at += 2) {
            if (items[at].type != msgpack::type::POSITIVE_INTEGER) return false;
            std::uint64_t index = items[at].via.u64;
            if (index >= size) return false;
            std::size_t i = static_cast<std::size_t>(index);
            const Node* next = child_at(node, i);
            if (i < old) {
                if (!apply(target[i], items[at + 1], next, depth + 1)) return false;
            } else {
                if (!full(items[at + 1], next, depth + 1, target[i])) return false;
                given[i - old] = 1;
            }
        }
        return std::all_of(given.begin(), given.end(), [](char g) { return g != 0; });
    }
    // Anything else is the new value, whole; a delete marker only goes in a map patch.
    return full(patch, node, depth, target);
}

// A snapshot's frame, [tick, distance, checksum, body]; `body` lives in `handle`.
struct Frame {
    msgpack::object_handle handle;
    std::uint64_t tick = 0;
    std::optional<std::uint64_t> baseline_tick;
    std::optional<std::uint32_t> checksum;
    const msgpack::object* body = nullptr;
};

Error parse(View data, Frame& f) {
    if (data.size == 0) return Error::bad_field;
    try {
        std::size_t offset = 0;
        // No container longer than the bytes could hold; the view's depth and
        // the frame's array around it.
        msgpack::unpack_limit limit(data.size, data.size, data.size, data.size, data.size,
                                    MAX_VIEW_DEPTH + 2);
        f.handle = msgpack::unpack(reinterpret_cast<const char*>(data.data), data.size, offset,
                                   nullptr, nullptr, limit);
        if (offset != data.size) return Error::bad_field;  // bytes after the array
    } catch (const std::bad_alloc&) {
        return Error::no_memory;
    } catch (const std::exception&) {
        return Error::bad_field;
    }
    const msgpack::object& o = f.handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 4) return Error::bad_field;
    const msgpack::object* a = o.via.array.ptr;
    if (a[0].type != msgpack::type::POSITIVE_INTEGER) return Error::bad_field;
    f.tick = a[0].via.u64;
    if (a[1].type != msgpack::type::NIL) {
        if (a[1].type != msgpack::type::POSITIVE_INTEGER || a[1].via.u64 == 0 ||
            a[1].via.u64 > f.tick)
            return Error::bad_field;
        f.baseline_tick = f.tick - a[1].via.u64;
    }
    if (a[2].type != msgpack::type::NIL) {
        if (a[2].type != msgpack::type::POSITIVE_INTEGER || a[2].via.u64 > 0xffffffffu)
            return Error::bad_field;
        f.checksum = static_cast<std::uint32_t>(a[2].via.u64);
    }
    f.body = &a[3];
    return Error::ok;
}

Error rebuild(const Frame& f, const Baselines& baselines, const Quantisation& q, bool verify,
              Snapshot& out) {
    Value view;
    try {
        if (!f.baseline_tick) {
            if (!full(*f.body, q.root(), 0, view)) return Error::bad_field;
        } else {
            auto base = baselines.find(*f.baseline_tick);
            if (base == baselines.end()) return Error::unknown_baseline;
            view = base->second;
            if (!apply(view, *f.body, q.root(), 0)) return Error::bad_field;
        }
        if (verify && f.checksum) {
            std::uint32_t sum = 0;
            if (view_checksum(view, sum) != Error::ok) return Error::bad_field;
            if (sum != *f.checksum) return Error::checksum_mismatch;
        }
    } catch (const std::bad_alloc&) {
        return Error::no_memory;
    }
    out.tick = f.tick;
    out.baseline_tick = f.baseline_tick;
    out.checksum = f.checksum;
    out.view = std::move(view);
    return Error::ok;
}

}  // namespace

bool detail::view_value(const msgpack::object& o, std::size_t depth, Value& out) {
    return full(o, nullptr, depth, out);
}

Error Quantisation::from_rules(const Value& rules, Quantisation& out) {
    Quantisation q;
    if (rules.is_null() || rules.empty()) {
        out = q;
        return Error::ok;
    }
    if (rules.size() > MAX_RULES) return Error::bad_field;
    auto root = std::make_shared<Node>();
    if (rules.is_object()) {
        for (const auto& item : rules.items())
            if (!add_rule(*root, item.key(), item.value())) return Error::bad_field;
    } else if (rules.is_array()) {
        for (const auto& pair : rules) {
            if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string()) return Error::bad_field;
            if (!add_rule(*root, pair[0].get<std::string>(), pair[1])) return Error::bad_field;
        }
    } else {
        return Error::bad_field;
    }
    resolve(*root);
    q.root_ = std::move(root);
    out = q;
    return Error::ok;
}

Error decode_snapshot(View data, const Baselines& baselines, const Quantisation& q,
                      Snapshot& out, bool verify) {
    Frame f;
    Error e = parse(data, f);
    if (e != Error::ok) return e;
    return rebuild(f, baselines, q, verify, out);
}

std::uint32_t crc32(View data) {
    static const std::array<std::uint32_t, 256> table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t n = 0; n < 256; ++n) {
            std::uint32_t c = n;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            t[n] = c;
        }
        return t;
    }();
    std::uint32_t crc = 0xffffffffu;
    for (std::size_t i = 0; i < data.size; ++i) crc = table[(crc ^ data.data[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

Error canonical_encoding(const Value& view, Bytes& out) {
    return detail::pack_bytes(view, MAX_VIEW_DEPTH, true, out);
}

Error view_checksum(const Value& view, std::uint32_t& out) {
    Bytes bytes;
    Error e = canonical_encoding(view, bytes);
    if (e != Error::ok) return e;
    out = crc32(bytes);
    return Error::ok;
}

SnapshotReceiver::SnapshotReceiver(Quantisation q, std::size_t capacity)
    : q_(std::move(q)), capacity_(capacity) {}

SnapshotReceiver::SnapshotReceiver(Quantisation q, std::optional<ViewSchema> schema,
                                   std::size_t capacity)
    : q_(std::move(q)), capacity_(capacity), schema_(std::move(schema)) {}

const Value* SnapshotReceiver::view(std::uint64_t tick) const {
    auto it = views_.find(tick);
    return it == views_.end() ? nullptr : &it->second;
}

const SchemaWireView* SnapshotReceiver::wire(std::uint64_t tick) const {
    auto it = wires_.find(tick);
    return it == wires_.end() ? nullptr : &it->second;
}

const SchemaWaiting* SnapshotReceiver::waiting(std::uint64_t tick) const {
    auto it = waited_.find(tick);
    return it == waited_.end() || !it->second ? nullptr : &*it->second;
}

const Snap* SnapshotReceiver::snap(std::uint64_t tick) const {
    auto it = snaps_.find(tick);
    return it == snaps_.end() ? nullptr : &it->second;
}

// As vinom/client/game.py's: d's header read (16.1's or 16.8's, by the first
// byte with a schema), its numbers resolved against those of its baseline's
// snap, then the snapshot applied; the numbers kept by tick.
Error SnapshotReceiver::receive_snap(View message, Snap& snap, Snapshot& out) {
    RelativeSnap raw;
    Error e = decode_snap(message, raw);
    if (e != Error::ok) return e;
    const View d(raw.d);
    const bool schema_body = schema_ && d.size > 0 && d.data[0] == SCHEMA_FORMAT;
    Frame frame;
    SchemaFrame schema_frame;
    std::uint64_t tick = 0;
    std::optional<std::uint64_t> baseline_tick;
    if (schema_body) {
        e = parse_schema_frame(d, schema_frame);
        tick = schema_frame.tick;
        if (e == Error::ok && schema_frame.distance) {
            if (schema_frame.distance > tick) e = Error::bad_field;
            else baseline_tick = tick - schema_frame.distance;
        }
    } else {
        e = parse(d, frame);
        tick = frame.tick;
        baseline_tick = frame.baseline_tick;
    }
    if (e != Error::ok) return dropped(e);
    snap.i = raw.i;
    snap.ik = snap_input_tick(raw, tick);
    if (newest_ && tick <= *newest_) return dropped(Error::stale);
    SnapFields base;
    if (baseline_tick) {
        auto it = snaps_.find(*baseline_tick);
        if (it == snaps_.end()) return dropped(Error::unknown_baseline);
        base = it->second.fields();
    }
    Snap resolved;
    e = resolve_snap(raw, tick, baseline_tick ? &base : nullptr, resolved);
    if (e != Error::ok) return dropped(e);
    Snapshot s;
    SchemaWireView wire;
    SchemaWaiting waiting;
    try {
        if (schema_body) {
            e = decode_schema_frame(*schema_, schema_frame, wires_, s, wire, waiting);
            if (e == Error::ok) e = show_waiting(s, wire, waiting);
        } else {
            e = rebuild(frame, views_, q_, true, s);
        }
    } catch (const std::bad_alloc&) {
        e = Error::no_memory;
    }
    if (e != Error::ok) return dropped(e);
    if (schema_body) keep_wire(s, std::move(wire), std::move(waiting));
    resolved.d.clear();
    snaps_[tick] = resolved;
    while (snaps_.size() > capacity_) snaps_.erase(snaps_.begin());
    resolved.d = std::move(raw.d);
    snap = std::move(resolved);
    apply_view(std::move(s), out);
    return Error::ok;
}

Error SnapshotReceiver::receive(View data, Snapshot& out) {
    if (schema_ && data.size > 0 && data.data[0] == SCHEMA_FORMAT) return receive_schema(data, out);
    Frame f;
    Error e = parse(data, f);
    if (e == Error::ok && newest_ && f.tick <= *newest_) e = Error::stale;
    Snapshot s;
    if (e == Error::ok) e = rebuild(f, views_, q_, true, s);
    if (e != Error::ok) return dropped(e);
    apply_view(std::move(s), out);
    return Error::ok;
}

// As vinom/rooms/delta.py's SnapshotReceiver._receive_schema: the same drops, and
// the wire view kept by tick beside the view, as the baseline of the next ones.
Error SnapshotReceiver::receive_schema(View data, Snapshot& out) {
    SchemaFrame f;
    Error e = parse_schema_frame(data, f);
    if (e == Error::ok && newest_ && f.tick <= *newest_) e = Error::stale;
    Snapshot s;
    SchemaWireView wire;
    SchemaWaiting waiting;
    try {
        if (e == Error::ok) e = decode_schema_frame(*schema_, f, wires_, s, wire, waiting);
        if (e == Error::ok) e = show_waiting(s, wire, waiting);
    } catch (const std::bad_alloc&) {
        e = Error::no_memory;
    }
    if (e != Error::ok) return dropped(e);
    keep_wire(s, std::move(wire), std::move(waiting));
    apply_view(std::move(s), out);
    return Error::ok;
}

// As delta.py's _rebuild_schema: rows a byte budget held back travel with the
// baseline's values, older than what the snaps since showed; the view shows
// them carried on instead (carry_waiting), the checksum checked before.
Error SnapshotReceiver::show_waiting(Snapshot& s, const SchemaWireView& wire,
                                     const SchemaWaiting& waiting) {
    if (waiting.empty()) return Error::ok;
    return schema_->rebuild(carry_waiting(*schema_, s.tick, wire, waiting, wires_, waited_),
                            s.view);
}

// The wire view kept as received, the rows that waited in it beside it while
// it is kept (a full snapshot: nullopt, it lists none).
void SnapshotReceiver::keep_wire(const Snapshot& s, SchemaWireView wire, SchemaWaiting waiting) {
    wires_[s.tick] = std::move(wire);
    if (!waiting.empty())
        waited_[s.tick] = std::move(waiting);
    else if (!s.baseline_tick)
        waited_[s.tick] = std::nullopt;
    else
        waited_.erase(s.tick);
    while (wires_.size() > capacity_) wires_.erase(wires_.begin());
    for (auto it = waited_.begin(); it != waited_.end();)
        it = wires_.count(it->first) ? std::next(it) : waited_.erase(it);
}

Error SnapshotReceiver::dropped(Error e) {
    switch (e) {
        case Error::stale: ++drops_.stale; break;
        case Error::unknown_baseline: ++drops_.unknown_baseline; break;
        case Error::checksum_mismatch: ++drops_.checksum; break;
        default: ++drops_.corrupt; break;
    }
    return e;
}

void SnapshotReceiver::apply_view(Snapshot s, Snapshot& out) {
    newest_ = s.tick;
    ++applied_;
    views_[s.tick] = s.view;
    while (views_.size() > capacity_) views_.erase(views_.begin());
    out = std::move(s);
}

}  // namespace vinom
