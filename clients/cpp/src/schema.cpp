// Schema snapshots (docs/protocol.md 16.8): the declaration compiled, the
// frame parsed and its bit-packed body read against a baseline wire view, a
// port of vinom/rooms/schema.py's decoder (its names: take_whole, take_added,
// take_rows, take_changed), as strict; `any` values read with msgpack-cxx; and
// the rows that wait shown carried on, as vinom/rooms/carrying.py.
#include "vinom/schema.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <new>
#include <set>

#include "vinom/delta.hpp"
#include "view_value.hpp"

namespace vinom {

bool SchemaWire::operator==(const SchemaWire& other) const {
    return n == other.n && bytes == other.bytes && rows == other.rows;
}

namespace {

using Field = ViewSchema::Field;
using Kind = ViewSchema::Kind;

// Where a value sits in the rebuilt view: a field in the view's map, a column
// in a row in the rows' array. An `any` nests at most as deep as a view may.
constexpr std::size_t FIELD_DEPTH = 1;
constexpr std::size_t COLUMN_DEPTH = 3;

int bit_length(std::uint64_t v) {
    int n = 0;
    for (; v; v >>= 1) ++n;
    return n;
}

// -- the declaration --

bool integer_of(const Value& v, std::int64_t& out) {
    if (v.is_number_unsigned()) {
        auto u = v.get<std::uint64_t>();
        // Python's integers have no bound; a range past int64's is refused here.
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return false;
        out = static_cast<std::int64_t>(u);
        return true;
    }
    if (!v.is_number_integer()) return false;  // a float or a boolean is no int bound
    out = v.get<std::int64_t>();
    return true;
}

// An integral double (math.ceil's, math.floor's) as an int64, when it is one.
bool whole_of(double d, std::int64_t& out) {
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return false;
    out = static_cast<std::int64_t>(d);
    return true;
}

bool ranged(Field& f) {
    if (f.hi < f.lo) return false;
    // Unsigned: hi - lo does not fit an int64 when they are far apart.
    f.span = static_cast<std::uint64_t>(f.hi) - static_cast<std::uint64_t>(f.lo);
    f.bits = bit_length(f.span);
    return f.bits <= ViewSchema::MAX_BITS;
}

// One kind, as schema.py's _field; `column`: inside rows, where rows are not.
bool field_of(const Value& kind, bool column, Field& out) {
    if (!kind.is_array() || kind.empty() || !kind[0].is_string()) return false;
    const std::string& name = kind[0].get_ref<const std::string&>();
    std::size_t args = kind.size() - 1;
    Field f;
    if (name == "int" && args == 2) {
        f.kind = Kind::integer;
        if (!integer_of(kind[1], f.lo) || !integer_of(kind[2], f.hi)) return false;
        if (!ranged(f)) return false;
    } else if (name == "fixed" && args == 3) {
        f.kind = Kind::fixed;
        for (std::size_t i = 1; i <= 3; ++i)
            if (!kind[i].is_number() || !std::isfinite(kind[i].get<double>())) return false;
        double lo = kind[1].get<double>(), hi = kind[2].get<double>(), step = kind[3].get<double>();
        if (!(step > 0) || lo > hi) return false;
        f.scale = 1.0 / step;  // one IEEE division, as the host's 1 / step
        if (!std::isfinite(f.scale)) return false;
        if (!whole_of(std::ceil(lo * f.scale), f.lo) || !whole_of(std::floor(hi * f.scale), f.hi))
            return false;
        if (!ranged(f)) return false;
    } else if (name == "bool" && args == 0) {
        f.kind = Kind::boolean;
        f.bits = 1;
    } else if (name == "any" && args == 0) {
        f.kind = Kind::any;
    } else if (name == "rows" && args == 1 && kind[1].is_array() && !column) {
        f.kind = Kind::rows;
        const Value& columns = kind[1];
        if (columns.empty() || columns.size() > ViewSchema::MAX_COLUMNS) return false;
        for (const Value& c : columns) {
            Field cf;
            if (!field_of(c, true, cf)) return false;
            f.columns.push_back(std::move(cf));
        }
        if (f.columns[0].kind != Kind::integer) return false;  // the id
    } else {
        return false;
    }
    out = std::move(f);
    return true;
}

// -- bits --

// Bits most significant first, each byte from its high bit (schema.py's BitReader).
class Bits {
public:
    explicit Bits(View data) : data_(data), left_(static_cast<std::uint64_t>(data.size) * 8) {}

    std::uint64_t left() const { return left_; }

    bool take(int bits, std::uint64_t& out) {
        out = 0;
        if (static_cast<std::uint64_t>(bits) > left_) return false;  // past the end
        while (bits > 0) {
            int used = static_cast<int>(at_ & 7);
            int n = std::min(8 - used, bits);
            unsigned byte = data_.data[at_ >> 3];
            out = (out << n) | ((byte >> (8 - used - n)) & ((1u << n) - 1));
            at_ += static_cast<std::uint64_t>(n);
            left_ -= static_cast<std::uint64_t>(n);
            bits -= n;
        }
        return true;
    }

    bool flag(bool& out) {
        std::uint64_t bit = 0;
        if (!take(1, bit)) return false;
        out = bit != 0;
        return true;
    }

    // LEB128 in 8-bit groups, at most 10 of them. Python's integer does not
    // overflow: one past 64 bits saturates here, past every bound it is checked
    // against (a length, a count), so it is refused the same.
    bool uvar(std::uint64_t& out) {
        out = 0;
        bool saturated = false;
        for (int shift = 0;; shift += 7) {
            if (shift > 63) return false;  // longer than 10 groups
            std::uint64_t group = 0;
            if (!take(8, group)) return false;
            std::uint64_t part = group & 0x7f;
            if (shift == 63 && part > 1)
                saturated = true;
            else
                out |= part << shift;
            if (group < 0x80) break;
        }
        if (saturated) out = std::numeric_limits<std::uint64_t>::max();
        return true;
    }

    // Only the last byte's zero padding may be left.
    bool done() {
        if (left_ >= 8) return false;
        std::uint64_t rest = 0;
        return take(static_cast<int>(left_), rest) && rest == 0;
    }

private:
    View data_;
    std::uint64_t at_ = 0;
    std::uint64_t left_;
};

// -- any: one msgpack value a view holds --

// Exactly one msgpack value, nothing after it, as a view at `depth` holds it.
bool decode_any(const Bytes& bytes, std::size_t depth, Value& out) {
    if (bytes.empty()) return false;
    try {
        std::size_t offset = 0;
        // No container longer than the bytes could hold, none deeper than a view.
        msgpack::unpack_limit limit(bytes.size(), bytes.size(), bytes.size(), bytes.size(),
                                    bytes.size(), MAX_VIEW_DEPTH + 1);
        msgpack::object_handle h = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()),
                                                   bytes.size(), offset, nullptr, nullptr, limit);
        if (offset != bytes.size()) return false;
        // As the 16.1 decoder reads a value sent whole (delta.cpp): maps with str keys,
        // no ext. (Python's msgpack would also take an ext or a bin key, which no view
        // the host builds holds and no checksum encodes.)
        return detail::view_value(h.get(), depth, out);
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception&) {
        return false;
    }
}

// -- values (schema.py's _take_whole, _take_added, _take_changed) --

bool take_added(Bits& bits, const Field& kind, const std::vector<SchemaRow>* base,
                std::vector<SchemaRow>& rows);
bool take_changed(Bits& bits, const Field& kind, std::size_t depth, const SchemaWire& base,
                  SchemaWire& out);

bool take_whole(Bits& bits, const Field& kind, std::size_t depth, SchemaWire& out) {
    switch (kind.kind) {
        case Kind::boolean: {
            std::uint64_t bit = 0;
            if (!bits.take(1, bit)) return false;
            out.n = static_cast<std::int64_t>(bit);
            return true;
        }
        case Kind::any: {
            std::uint64_t size = 0;
            if (!bits.uvar(size) || size > bits.left() / 8) return false;
            out.bytes.resize(static_cast<std::size_t>(size));
            for (auto& byte : out.bytes) {
                std::uint64_t b = 0;
                (void)bits.take(8, b);  // there are enough: checked above
                byte = static_cast<std::uint8_t>(b);
            }
            Value checked;
            return decode_any(out.bytes, depth, checked);
        }
        case Kind::rows: return take_added(bits, kind, nullptr, out.rows);
        case Kind::integer:
        case Kind::fixed: {
            std::uint64_t x = 0;
            if (!bits.take(kind.bits, x) || x > kind.span) return false;  // beyond its range
            out.n = static_cast<std::int64_t>(static_cast<std::uint64_t>(kind.lo) + x);
            return true;
        }
    }
    return false;
}

// The rows added to `rows` (those kept of `base`, in its order): a count, then
// each whole, ids ascending and not in `base`. `rows` ends in ascending id.
bool take_added(Bits& bits, const Field& kind, const std::vector<SchemaRow>* base,
                std::vector<SchemaRow>& rows) {
    std::uint64_t count = 0;
    if (!bits.uvar(count) || rows.size() > ViewSchema::MAX_ROWS ||
        count > ViewSchema::MAX_ROWS - rows.size())
        return false;  // more rows than a snapshot holds
    auto by_id = [](const SchemaRow& row, std::int64_t id) { return row.id < id; };
    std::vector<SchemaRow> added;
    for (std::uint64_t i = 0; i < count; ++i) {
        SchemaWire id;
        if (!take_whole(bits, kind.columns[0], COLUMN_DEPTH, id)) return false;
        if (!added.empty() && id.n <= added.back().id) return false;  // out of id order
        if (base) {
            auto it = std::lower_bound(base->begin(), base->end(), id.n, by_id);
            if (it != base->end() && it->id == id.n) return false;  // an id already there
        }
        SchemaRow row;
        row.id = id.n;
        row.columns.resize(kind.columns.size() - 1);
        for (std::size_t c = 1; c < kind.columns.size(); ++c)
            if (!take_whole(bits, kind.columns[c], COLUMN_DEPTH, row.columns[c - 1])) return false;
        added.push_back(std::move(row));
    }
    if (rows.empty()) {
        rows = std::move(added);
    } else if (!added.empty()) {
        std::vector<SchemaRow> merged;
        merged.reserve(rows.size() + added.size());
        std::merge(std::make_move_iterator(rows.begin()), std::make_move_iterator(rows.end()),
                   std::make_move_iterator(added.begin()), std::make_move_iterator(added.end()),
                   std::back_inserter(merged),
                   [](const SchemaRow& a, const SchemaRow& b) { return a.id < b.id; });
        rows = std::move(merged);
    }
    return true;
}

// Rows against `base` (schema.py's _take_rows); with `waiting` (a frame with
// waits), each unchanged row has its wait bit, and after the added rows come
// the ids that wait outside the baseline: all appended to `waiting`.
bool take_rows(Bits& bits, const Field& kind, const std::vector<SchemaRow>& base,
               SchemaWire& out, std::vector<std::int64_t>* waiting) {
    std::vector<SchemaRow> rows;
    for (const SchemaRow& old : base) {
        if (old.columns.size() != kind.columns.size() - 1) return false;  // not this schema's
        bool kept = false, changed = false;
        if (!bits.flag(kept)) return false;
        if (!kept) continue;  // gone
        if (!bits.flag(changed)) return false;
        if (!changed) {
            rows.push_back(old);
            bool waits = false;
            if (waiting && !bits.flag(waits)) return false;
            if (waits) waiting->push_back(old.id);
            continue;
        }
        SchemaRow row;
        row.id = old.id;
        row.columns.resize(old.columns.size());
        for (std::size_t c = 0; c < old.columns.size(); ++c) {
            bool differs = false;
            if (!bits.flag(differs)) return false;
            if (!differs)
                row.columns[c] = old.columns[c];
            else if (!take_changed(bits, kind.columns[c + 1], COLUMN_DEPTH, old.columns[c],
                                   row.columns[c]))
                return false;
        }
        rows.push_back(std::move(row));
    }
    if (!take_added(bits, kind, &base, rows)) return false;
    if (waiting) {
        std::uint64_t count = 0;
        if (!bits.uvar(count) || count > ViewSchema::MAX_ROWS) return false;
        auto by_id = [](const SchemaRow& row, std::int64_t id) { return row.id < id; };
        auto holds = [&](const std::vector<SchemaRow>& in, std::int64_t id) {
            auto it = std::lower_bound(in.begin(), in.end(), id, by_id);
            return it != in.end() && it->id == id;
        };
        bool first = true;
        std::int64_t previous = 0;
        for (std::uint64_t i = 0; i < count; ++i) {
            SchemaWire id;
            if (!take_whole(bits, kind.columns[0], COLUMN_DEPTH, id)) return false;
            // Ascending, and in neither the baseline nor the rows.
            if ((!first && id.n <= previous) || holds(base, id.n) || holds(rows, id.n))
                return false;
            first = false;
            previous = id.n;
            waiting->push_back(id.n);
        }
    }
    out.rows = std::move(rows);
    return true;
}

// `base`'s value changed: a small difference, or the whole value.
bool take_changed(Bits& bits, const Field& kind, std::size_t depth, const SchemaWire& base,
                  SchemaWire& out) {
    if (kind.kind == Kind::rows) return take_rows(bits, kind, base.rows, out, nullptr);
    if ((kind.kind == Kind::integer || kind.kind == Kind::fixed) &&
        kind.bits > ViewSchema::SMALL_BITS) {
        bool whole = false, medium_whole = false;
        std::uint64_t z = 0;
        if (!bits.flag(whole)) return false;
        if (!whole) {
            if (!bits.take(ViewSchema::SMALL_BITS, z)) return false;
        } else if (kind.bits > ViewSchema::MEDIUM_BITS) {
            if (!bits.flag(medium_whole)) return false;
            if (medium_whole) return take_whole(bits, kind, depth, out);
            if (!bits.take(ViewSchema::MEDIUM_BITS, z)) return false;
        } else {
            return take_whole(bits, kind, depth, out);
        }
        // In steps from lo: below 2^53, so the difference cannot overflow.
        std::uint64_t from =
            static_cast<std::uint64_t>(base.n) - static_cast<std::uint64_t>(kind.lo);
        if (from > kind.span) return false;  // a baseline not of this schema
        std::int64_t at = static_cast<std::int64_t>(from) + unzigzag(z);
        if (at < 0 || static_cast<std::uint64_t>(at) > kind.span) return false;  // beyond its range
        out.n = static_cast<std::int64_t>(static_cast<std::uint64_t>(kind.lo) +
                                          static_cast<std::uint64_t>(at));
        return true;
    }
    return take_whole(bits, kind, depth, out);
}

// -- the view a client sees --

Value integer_value(std::int64_t n) {
    // As the 16.1 decoder gives msgpack's integers: unsigned when not negative.
    return n >= 0 ? Value(static_cast<std::uint64_t>(n)) : Value(n);
}

bool rebuild_value(const Field& kind, const SchemaWire& wire, std::size_t depth, Value& out) {
    switch (kind.kind) {
        case Kind::integer: out = integer_value(wire.n); return true;
        case Kind::fixed: out = static_cast<double>(wire.n) / kind.scale; return true;
        case Kind::boolean: out = wire.n != 0; return true;
        case Kind::any: return decode_any(wire.bytes, depth, out);
        case Kind::rows: {
            Value rows = Value::array();
            for (const SchemaRow& row : wire.rows) {
                if (row.columns.size() != kind.columns.size() - 1) return false;
                Value r = Value::array();
                r.push_back(integer_value(row.id));
                for (std::size_t c = 0; c < row.columns.size(); ++c) {
                    Value x;
                    if (!rebuild_value(kind.columns[c + 1], row.columns[c], COLUMN_DEPTH, x))
                        return false;
                    r.push_back(std::move(x));
                }
                rows.push_back(std::move(r));
            }
            out = std::move(rows);
            return true;
        }
    }
    return false;
}

}  // namespace

Error ViewSchema::from_declaration(const Value& declaration, ViewSchema& out) {
    ViewSchema schema;
    std::set<std::string> names;
    auto add = [&](const std::string& name, const Value& kind) {
        Field f;
        if (!names.insert(name).second || !field_of(kind, false, f)) return false;
        schema.fields_.emplace_back(name, std::move(f));
        return true;
    };
    if (declaration.empty() || declaration.size() > MAX_FIELDS) return Error::bad_field;
    if (declaration.is_array()) {
        for (const Value& item : declaration) {
            if (!item.is_array() || item.size() != 2 || !item[0].is_string())
                return Error::bad_field;
            if (!add(item[0].get_ref<const std::string&>(), item[1])) return Error::bad_field;
        }
    } else if (declaration.is_object()) {
        for (const auto& item : declaration.items())
            if (!add(item.key(), item.value())) return Error::bad_field;
    } else {
        return Error::bad_field;  // null, a number, a string
    }
    out = std::move(schema);
    return Error::ok;
}

Error ViewSchema::decode_body(const SchemaWireView* base, View body, SchemaWireView& out) const {
    return decode_body(base, body, out, nullptr);
}

Error ViewSchema::decode_body(const SchemaWireView* base, View body, SchemaWireView& out,
                              SchemaWaiting* waiting) const {
    if (base && base->size() != fields_.size()) return Error::bad_field;
    Bits bits(body);
    SchemaWireView wire(fields_.size());
    SchemaWaiting waits;
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        const Field& kind = fields_[i].second;
        if (!base) {
            if (!take_whole(bits, kind, FIELD_DEPTH, wire[i])) return Error::bad_field;
            continue;
        }
        bool changed = false;
        if (!bits.flag(changed)) return Error::bad_field;
        if (!changed) {
            wire[i] = (*base)[i];
        } else if (waiting && kind.kind == Kind::rows) {
            std::vector<std::int64_t> ids;
            if (!take_rows(bits, kind, (*base)[i].rows, wire[i], &ids)) return Error::bad_field;
            if (!ids.empty()) waits[i] = std::move(ids);
        } else if (!take_changed(bits, kind, FIELD_DEPTH, (*base)[i], wire[i])) {
            return Error::bad_field;
        }
    }
    if (!bits.done()) return Error::bad_field;  // bits or bytes after the body
    out = std::move(wire);
    if (waiting) *waiting = std::move(waits);
    return Error::ok;
}

Error ViewSchema::rebuild(const SchemaWireView& wire, Value& out) const {
    if (wire.size() != fields_.size()) return Error::bad_field;
    Value view = Value::object();
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        Value x;
        if (!rebuild_value(fields_[i].second, wire[i], FIELD_DEPTH, x)) return Error::bad_field;
        view[fields_[i].first] = std::move(x);
    }
    out = std::move(view);
    return Error::ok;
}

Error parse_schema_frame(View data, SchemaFrame& out) {
    if (data.size == 0 || data.data[0] != SCHEMA_FORMAT) return Error::bad_field;
    std::size_t at = 1;
    std::uint64_t numbers[2] = {0, 0};
    for (std::uint64_t& value : numbers) {
        // At most 9 bytes each: below 2^63.
        for (int shift = 0;; shift += 7) {
            if (at >= data.size || shift > 56) return Error::bad_field;
            std::uint8_t byte = data.data[at++];
            value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
            if (byte < 0x80) break;
        }
    }
    SchemaFrame f;
    f.tick = numbers[0];
    f.distance = numbers[1];
    if (at >= data.size || f.distance > f.tick) return Error::bad_field;
    const std::uint8_t flags = data.data[at];
    // Unknown flags, and waits in a full snapshot (nothing to wait against), are corrupt.
    if ((flags & ~(SchemaFrame::CHECKSUM | SchemaFrame::WAITS)) ||
        ((flags & SchemaFrame::WAITS) && !f.distance))
        return Error::bad_field;
    f.waits = (flags & SchemaFrame::WAITS) != 0;
    if (flags & SchemaFrame::CHECKSUM) {
        if (at + 5 > data.size) return Error::bad_field;  // the checksum cut short
        const std::uint8_t* p = data.data + at + 1;
        f.checksum = static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
                     (static_cast<std::uint32_t>(p[2]) << 16) |
                     (static_cast<std::uint32_t>(p[3]) << 24);
        at += 4;
    }
    f.body = data.sub(at + 1, data.size - at - 1);
    out = f;
    return Error::ok;
}

Error decode_schema_snapshot(const ViewSchema& schema, View data,
                             const SchemaBaselines& baselines, Snapshot& out,
                             SchemaWireView& wire, bool verify) {
    SchemaWaiting waiting;
    return decode_schema_snapshot(schema, data, baselines, out, wire, waiting, verify);
}

Error decode_schema_snapshot(const ViewSchema& schema, View data,
                             const SchemaBaselines& baselines, Snapshot& out,
                             SchemaWireView& wire, SchemaWaiting& waiting, bool verify) {
    SchemaFrame f;
    Error e = parse_schema_frame(data, f);
    if (e != Error::ok) return e;
    return decode_schema_frame(schema, f, baselines, out, wire, waiting, verify);
}

Error decode_schema_frame(const ViewSchema& schema, const SchemaFrame& f,
                          const SchemaBaselines& baselines, Snapshot& out,
                          SchemaWireView& wire, bool verify) {
    SchemaWaiting waiting;
    return decode_schema_frame(schema, f, baselines, out, wire, waiting, verify);
}

Error decode_schema_frame(const ViewSchema& schema, const SchemaFrame& f,
                          const SchemaBaselines& baselines, Snapshot& out,
                          SchemaWireView& wire, SchemaWaiting& waiting, bool verify) {
    try {
        Error e = Error::ok;
        const SchemaWireView* base = nullptr;
        std::optional<std::uint64_t> baseline_tick;
        if (f.distance) {
            baseline_tick = f.tick - f.distance;
            auto it = baselines.find(*baseline_tick);
            if (it == baselines.end()) return Error::unknown_baseline;
            base = &it->second;
        }
        SchemaWireView decoded;
        SchemaWaiting waits;
        e = schema.decode_body(base, f.body, decoded, f.waits ? &waits : nullptr);
        if (e != Error::ok) return e;
        Value view;
        e = schema.rebuild(decoded, view);
        if (e != Error::ok) return e;
        // The checksum is the wire view's as received, the waiting rows' baseline
        // values included (a receiver shows them carried on afterwards).
        if (verify && f.checksum) {
            std::uint32_t sum = 0;
            if (view_checksum(view, sum) != Error::ok) return Error::bad_field;
            if (sum != *f.checksum) return Error::checksum_mismatch;
        }
        out.tick = f.tick;
        out.baseline_tick = baseline_tick;
        out.checksum = f.checksum;
        out.view = std::move(view);
        wire = std::move(decoded);
        waiting = std::move(waits);
        return Error::ok;
    } catch (const std::bad_alloc&) {
        return Error::no_memory;
    }
}

// -- rows that wait, as a client shows them (vinom/rooms/carrying.py) --

namespace {

using Sample = std::pair<std::uint64_t, const SchemaRow*>;

const SchemaRow* row_of(const std::vector<SchemaRow>& rows, std::int64_t id) {
    auto it = std::lower_bound(rows.begin(), rows.end(), id,
                               [](const SchemaRow& row, std::int64_t x) { return row.id < x; });
    return it != rows.end() && it->id == id ? &*it : nullptr;
}

// A row carried on to `tick` from its newest samples (newest first, 2 or 3):
// through the three (a parabola), or the two (a line); carrying.py's _carried.
SchemaRow carried(const Field& kind, std::uint64_t tick, const std::vector<Sample>& samples) {
    const std::uint64_t t1 = samples[0].first, t0 = samples[1].first;
    const SchemaRow& newest = *samples[0].second;
    const SchemaRow& before = *samples[1].second;
    const SchemaRow& oldest = *samples.back().second;
    // Where to evaluate, past the newest: min(tick - t1, CARRIED_INTERVALS * gap),
    // without overflow.
    const std::uint64_t ahead = tick - t1, gap = t1 - t0;
    const std::uint64_t lead =
        gap >= ahead / CARRIED_INTERVALS + (ahead % CARRIED_INTERVALS != 0)
            ? ahead
            : CARRIED_INTERVALS * gap;
    // Lagrange's weights at t1 + lead, in doubles as Python's (exact while the
    // ticks' products stay below 2^53).
    const double a = static_cast<double>(lead), g = static_cast<double>(gap);
    double weights[3];
    if (samples.size() == 3) {
        const double gb = static_cast<double>(t1 - samples[2].first);  // t1 - t2
        weights[0] = ((a + g) * (a + gb)) / (g * gb);
        weights[1] = (a * (a + gb)) / (-g * (gb - g));
        weights[2] = (a * (a + g)) / (gb * (gb - g));
    } else {
        weights[0] = (a + g) / g;
        weights[1] = -a / g;
        weights[2] = 0.0;
    }
    SchemaRow row = newest;
    for (std::size_t c = 0; c < row.columns.size() && c + 1 < kind.columns.size(); ++c) {
        const Field& column = kind.columns[c + 1];
        if (column.kind != Kind::fixed) continue;
        const std::int64_t values[3] = {newest.columns[c].n, before.columns[c].n,
                                        oldest.columns[c].n};
        const std::int64_t hi = std::max({values[0], values[1], values[2]});
        const std::int64_t lo = std::min({values[0], values[1], values[2]});
        // More than half the range (a wrap, a respawn): it holds. (2 spread > span.)
        const std::uint64_t spread =
            static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
        if (spread > column.span / 2) continue;
        // Added left to right, as every client adds them.
        double value = weights[0] * static_cast<double>(values[0]) +
                       weights[1] * static_cast<double>(values[1]) +
                       weights[2] * static_cast<double>(values[2]);
        value = std::nearbyint(value);  // a tie to even, as Python's round
        if (!(value == value)) continue;  // (never: the weights are finite)
        std::int64_t n = column.hi;
        if (value < static_cast<double>(column.hi)) {
            n = value > static_cast<double>(column.lo) ? static_cast<std::int64_t>(value)
                                                       : column.lo;
        }
        row.columns[c].n = std::min(column.hi, std::max(column.lo, n));
    }
    return row;
}

}  // namespace

SchemaWireView carry_waiting(const ViewSchema& schema, std::uint64_t tick,
                             const SchemaWireView& wire, const SchemaWaiting& waiting,
                             const SchemaBaselines& kept, const SchemaWaited& waited) {
    SchemaWireView shown = wire;
    const auto& fields = schema.fields();
    auto by_id = [](const SchemaRow& a, const SchemaRow& b) { return a.id < b.id; };
    // A kept snapshot's rows that waited in a field, sorted to be looked up (as
    // read, two ascending runs); or `full`: a full snapshot, which lists none.
    struct Listed {
        bool full = false;
        std::vector<std::int64_t> ids;
    };
    for (const auto& [index, ids] : waiting) {
        if (index >= fields.size() || index >= shown.size() ||
            fields[index].second.kind != Kind::rows)
            continue;
        const Field& kind = fields[index].second;
        std::map<std::uint64_t, Listed> listed;
        for (const auto& [t, rows_waited] : waited) {
            if (t >= tick) continue;
            Listed& l = listed[t];
            if (!rows_waited) {
                l.full = true;
                continue;
            }
            auto f = rows_waited->find(index);
            if (f == rows_waited->end()) continue;
            l.ids = f->second;
            std::sort(l.ids.begin(), l.ids.end());
        }
        std::vector<SchemaRow>& rows = shown[index].rows;
        std::vector<SchemaRow> outside;  // carried rows not in `wire`, merged after
        for (std::int64_t id : ids) {
            std::vector<Sample> samples;
            // The snapshots applied before, newest first.
            for (auto it = kept.lower_bound(tick); it != kept.begin() && samples.size() < 3;) {
                --it;
                auto l = listed.find(it->first);
                const bool full = l != listed.end() && l->second.full;
                // Where it waited says nothing of where it was.
                if (l != listed.end() &&
                    std::binary_search(l->second.ids.begin(), l->second.ids.end(), id))
                    continue;
                const SchemaWireView& seen = it->second;
                const SchemaRow* row = index < seen.size() ? row_of(seen[index].rows, id) : nullptr;
                if (row && row->columns.size() + 1 != kind.columns.size()) continue;  // not ours
                if (!row) {
                    // Nor does a full snapshot without it (it lists no waits); where it
                    // is gone (out of sight), older samples are of another run.
                    if (full) continue;
                    break;
                }
                samples.emplace_back(it->first, row);
            }
            if (samples.empty()) continue;  // as received (outside the baseline: not shown)
            SchemaRow row = samples.size() == 1 ? *samples[0].second
                                                : carried(kind, tick, samples);
            auto at = std::lower_bound(rows.begin(), rows.end(), row, by_id);
            if (at != rows.end() && at->id == id)
                *at = std::move(row);
            else
                outside.push_back(std::move(row));
        }
        if (outside.empty()) continue;
        // In ascending id, each once, among the others.
        std::stable_sort(outside.begin(), outside.end(), by_id);
        auto same = [](const SchemaRow& a, const SchemaRow& b) { return a.id == b.id; };
        outside.erase(std::unique(outside.begin(), outside.end(), same), outside.end());
        std::size_t middle = rows.size();
        rows.insert(rows.end(), std::make_move_iterator(outside.begin()),
                    std::make_move_iterator(outside.end()));
        std::inplace_merge(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(middle),
                           rows.end(), by_id);
    }
    return shown;
}

std::int64_t unzigzag(std::uint64_t z) {
    // -(z >> 1) - 1 for odd z: no overflow at z = 2^64 - 1.
    return (z & 1) ? -static_cast<std::int64_t>(z >> 1) - 1 : static_cast<std::int64_t>(z >> 1);
}

}  // namespace vinom
