// Schema snapshots (docs/protocol.md 16.8): the declaration compiled, the
// frame parsed and its bit-packed body read against a baseline wire view, a
// port of vinom/rooms/schema.py's decoder (its names: take_whole, take_added,
// take_changed), as strict; `any` values read with msgpack-cxx.
#include "vinom/schema.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
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

// `base`'s value changed: a small difference, or the whole value.
bool take_changed(Bits& bits, const Field& kind, std::size_t depth, const SchemaWire& base,
                  SchemaWire& out) {
    if (kind.kind == Kind::rows) {
        std::vector<SchemaRow> rows;
        for (const SchemaRow& old : base.rows) {
            if (old.columns.size() != kind.columns.size() - 1) return false;  // not this schema's
            bool kept = false, changed = false;
            if (!bits.flag(kept)) return false;
            if (!kept) continue;  // gone
            if (!bits.flag(changed)) return false;
            if (!changed) {
                rows.push_back(old);
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
        if (!take_added(bits, kind, &base.rows, rows)) return false;
        out.rows = std::move(rows);
        return true;
    }
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
    if (base && base->size() != fields_.size()) return Error::bad_field;
    Bits bits(body);
    SchemaWireView wire(fields_.size());
    for (std::size_t i = 0; i < fields_.size(); ++i) {
        const Field& kind = fields_[i].second;
        if (!base) {
            if (!take_whole(bits, kind, FIELD_DEPTH, wire[i])) return Error::bad_field;
            continue;
        }
        bool changed = false;
        if (!bits.flag(changed)) return Error::bad_field;
        if (!changed)
            wire[i] = (*base)[i];
        else if (!take_changed(bits, kind, FIELD_DEPTH, (*base)[i], wire[i]))
            return Error::bad_field;
    }
    if (!bits.done()) return Error::bad_field;  // bits or bytes after the body
    out = std::move(wire);
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
    if (at >= data.size || data.data[at] > 1 || f.distance > f.tick) return Error::bad_field;
    if (data.data[at]) {
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
    SchemaFrame f;
    Error e = parse_schema_frame(data, f);
    if (e != Error::ok) return e;
    return decode_schema_frame(schema, f, baselines, out, wire, verify);
}

Error decode_schema_frame(const ViewSchema& schema, const SchemaFrame& f,
                          const SchemaBaselines& baselines, Snapshot& out,
                          SchemaWireView& wire, bool verify) {
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
        e = schema.decode_body(base, f.body, decoded);
        if (e != Error::ok) return e;
        Value view;
        e = schema.rebuild(decoded, view);
        if (e != Error::ok) return e;
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
        return Error::ok;
    } catch (const std::bad_alloc&) {
        return Error::no_memory;
    }
}

std::int64_t unzigzag(std::uint64_t z) {
    // -(z >> 1) - 1 for odd z: no overflow at z = 2^64 - 1.
    return (z & 1) ? -static_cast<std::int64_t>(z >> 1) - 1 : static_cast<std::int64_t>(z >> 1);
}

}  // namespace vinom
