// A msgpack value sent whole, as a view holds it (delta.cpp's reading of a 16.1
// snapshot's values, without quantisation): for schema.cpp's `any` fields.
// Internal to the library: not installed, not part of the API.
#pragma once

#include "vinom/messages.hpp"

#include <msgpack.hpp>

#include <cstddef>

namespace vinom::detail {

// `o` as a view value at `depth`: false for what no view holds (an ext, a
// non-str map key, containers nested deeper than a view may be).
bool view_value(const msgpack::object& o, std::size_t depth, Value& out);

}  // namespace vinom::detail
