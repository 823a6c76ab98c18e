// The library's log (vinom_set_log in include/vinom.h): every line the core
// writes goes through vinom::log, to the game's callback or to stderr; by
// default nowhere.
#pragma once

#include <string>

namespace vinom {

enum class LogLevel { debug = 0, info = 1, warning = 2, error = 3, off = 4 };

// Whether a line of `level` would be written (to skip building it).
bool log_enabled(LogLevel level);
void log(LogLevel level, const std::string& line);

}  // namespace vinom
