// The log and the allocator hooks (vinom_set_log, vinom_set_allocator in
// include/vinom.h): the library's only global state, each behind its lock.
#include "log.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "c_abi.hpp"
#include "vinom.h"

namespace {

std::mutex log_lock;
vinom_log_fn log_callback = nullptr;
void* log_user_data = nullptr;
std::atomic<int> log_level{VINOM_LOG_OFF};  // nothing written until asked

void write_stderr(vinom_log_level level, const char* line) {
    static const char* names[] = {"debug", "info", "warning", "error"};
    std::fprintf(stderr, "vinom: %s: %s\n", names[level], line);
}

std::mutex allocator_lock;
vinom_malloc_fn allocate = nullptr;  // nullptr: malloc and free
vinom_free_fn release = nullptr;
std::atomic<long> live_handles{0};

}  // namespace

namespace vinom {

bool log_enabled(LogLevel level) {
    int at = static_cast<int>(level);
    return at < VINOM_LOG_OFF && at >= log_level.load(std::memory_order_relaxed);
}

void log(LogLevel level, const std::string& line) {
    if (!log_enabled(level)) return;
    auto at = static_cast<vinom_log_level>(level);
    std::lock_guard<std::mutex> held(log_lock);
    if (log_callback) {
        log_callback(log_user_data, at, line.c_str());
    } else {
        write_stderr(at, line.c_str());
    }
}

}  // namespace vinom

namespace vinom_abi {

void* handle_allocate(std::size_t size) {
    void* p;
    {
        std::lock_guard<std::mutex> held(allocator_lock);
        p = allocate ? allocate(size) : std::malloc(size);
        if (p) ++live_handles;
    }
    if (!p) throw std::bad_alloc();
    return p;
}

void handle_release(void* p) noexcept {
    if (!p) return;
    std::lock_guard<std::mutex> held(allocator_lock);
    if (release) {
        release(p);
    } else {
        std::free(p);
    }
    --live_handles;
}

}  // namespace vinom_abi

extern "C" {

void vinom_set_log(vinom_log_fn callback, void* user_data, vinom_log_level level) {
    std::lock_guard<std::mutex> held(log_lock);
    log_callback = callback;
    log_user_data = callback ? user_data : nullptr;
    int at = static_cast<int>(level);
    log_level.store(at < VINOM_LOG_DEBUG ? VINOM_LOG_DEBUG : at > VINOM_LOG_OFF ? VINOM_LOG_OFF : at);
}

vinom_status vinom_set_allocator(vinom_malloc_fn malloc_fn, vinom_free_fn free_fn) {
    if ((malloc_fn == nullptr) != (free_fn == nullptr)) return VINOM_INVALID_ARGUMENT;
    std::lock_guard<std::mutex> held(allocator_lock);
    if (live_handles.load() != 0) return VINOM_UNEXPECTED;
    allocate = malloc_fn;
    release = free_fn;
    return VINOM_OK;
}

}  // extern "C"
