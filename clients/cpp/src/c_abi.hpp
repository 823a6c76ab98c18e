// What every part of the C ABI (src/*_c.cpp) shares: a status is the core's
// Error of the same number, and no exception crosses the boundary.
#pragma once

#include <cstddef>
#include <cstring>
#include <string>

#include "vinom.h"
#include "vinom/codec.hpp"
#include "vinom/messages.hpp"

namespace vinom_abi {

// The handles' memory, through vinom_set_allocator's hooks (src/log.cpp).
void* handle_allocate(std::size_t size);  // throws std::bad_alloc
void handle_release(void* p) noexcept;

// The base of every handle struct: `new` and `delete` of a handle use the hooks.
struct Handle {
    static void* operator new(std::size_t size) { return handle_allocate(size); }
    static void operator delete(void* p) noexcept { handle_release(p); }
};

inline vinom_status status(vinom::Error e) { return static_cast<vinom_status>(e); }

// f(), or VINOM_NO_MEMORY when it throws (only allocation can, behind the ABI).
template <typename F>
vinom_status guarded(F f) {
    try {
        return f();
    } catch (...) {
        return VINOM_NO_MEMORY;
    }
}

// `data` (bytes or text) into the caller's buffer `out` of `cap` bytes: *len its
// size, VINOM_BUFFER_TOO_SMALL when it does not fit (nothing copied).
template <typename Data, typename Out>
vinom_status copy_out(const Data& data, Out* out, size_t cap, size_t* len) {
    if (!len) return VINOM_INVALID_ARGUMENT;
    *len = data.size();
    if (data.size() > cap) return VINOM_BUFFER_TOO_SMALL;
    if (!data.empty()) {
        if (!out) return VINOM_INVALID_ARGUMENT;
        std::memcpy(out, data.data(), data.size());
    }
    return VINOM_OK;
}

// A value as the C ABI gives JSON out: compact, strings not UTF-8 with U+FFFD.
inline std::string json_text(const vinom::Value& value) {
    return value.dump(-1, ' ', false, vinom::Value::error_handler_t::replace);
}

}  // namespace vinom_abi
