// One JSON value as msgpack, for the encoders of messages.cpp (a message as it
// stands: keys in their order, a float as a float) and delta.cpp (a view in its
// canonical form, docs/protocol.md 16.4: keys by code point, an integral float as
// the integer). Internal to the library: not installed, not part of the API.
#pragma once

#include "vinom/messages.hpp"

#include <msgpack.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vinom::detail {

using Packer = msgpack::packer<msgpack::sbuffer>;

// The largest integer a double holds exactly: 2^53 - 1.
constexpr double MAX_SAFE = 9007199254740991.0;

// Packs `v`; false (part of it packed) for a value nesting more than `max_depth`
// containers, or a type msgpack has no form for.
inline bool pack_value(Packer& p, const Value& v, std::size_t max_depth, bool canonical,
                       std::size_t depth = 0) {
    auto str = [&p](const std::string& s) {
        p.pack_str(static_cast<std::uint32_t>(s.size()));
        p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
    };
    switch (v.type()) {
        case Value::value_t::null: p.pack_nil(); return true;
        case Value::value_t::boolean: v.get<bool>() ? p.pack_true() : p.pack_false(); return true;
        case Value::value_t::number_unsigned: p.pack_uint64(v.get<std::uint64_t>()); return true;
        case Value::value_t::number_integer: p.pack_int64(v.get<std::int64_t>()); return true;
        case Value::value_t::number_float: {
            double d = v.get<double>();
            // An integral float (-0.0 too) is written as the integer: JavaScript
            // cannot tell them apart.
            if (canonical && std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= MAX_SAFE)
                p.pack_int64(static_cast<std::int64_t>(d));
            else
                p.pack_double(d);
            return true;
        }
        case Value::value_t::string: str(v.get_ref<const std::string&>()); return true;
        case Value::value_t::binary: {
            const auto& b = v.get_binary();
            p.pack_bin(static_cast<std::uint32_t>(b.size()));
            p.pack_bin_body(reinterpret_cast<const char*>(b.data()),
                            static_cast<std::uint32_t>(b.size()));
            return true;
        }
        case Value::value_t::array:
            if (depth >= max_depth) return false;
            p.pack_array(static_cast<std::uint32_t>(v.size()));
            for (const auto& x : v)
                if (!pack_value(p, x, max_depth, canonical, depth + 1)) return false;
            return true;
        case Value::value_t::object: {
            if (depth >= max_depth) return false;
            std::vector<const std::pair<const std::string, Value>*> items;
            items.reserve(v.size());
            for (const auto& item : v.get_ref<const Value::object_t&>()) items.push_back(&item);
            // Canonical keys by code point: UTF-8's byte order, which std::string's is.
            if (canonical)
                std::sort(items.begin(), items.end(),
                          [](const auto* a, const auto* b) { return a->first < b->first; });
            p.pack_map(static_cast<std::uint32_t>(items.size()));
            for (const auto* item : items) {
                str(item->first);
                if (!pack_value(p, item->second, max_depth, canonical, depth + 1)) return false;
            }
            return true;
        }
        default: return false;
    }
}

// `v` packed into `out` (as pack_value); bad_field, `out` unchanged, when it cannot be.
inline Error pack_bytes(const Value& v, std::size_t max_depth, bool canonical, Bytes& out) {
    msgpack::sbuffer buffer;
    Packer p(buffer);
    if (!pack_value(p, v, max_depth, canonical)) return Error::bad_field;
    const auto* data = reinterpret_cast<const std::uint8_t*>(buffer.data());
    out.assign(data, data + buffer.size());
    return Error::ok;
}

}  // namespace vinom::detail
