// What every part of the C ABI (src/*_c.cpp) shares: a status is the core's
// Error of the same number, and no exception crosses the boundary.
#pragma once

#include "vinom.h"
#include "vinom/codec.hpp"

namespace vinom_abi {

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

}  // namespace vinom_abi
