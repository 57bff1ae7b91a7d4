#pragma once

// One logging header for the project (Debian's Abseil 20220623 has no
// absl/log). Lines go to stderr as "<RFC3339 time> <LEVEL> <file>:<line>] msg".
// Thread-safety: a whole line is written with one write(2) call.

#include <sstream>
#include <string_view>

namespace rampart {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Default kInfo. Thread-safe.
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

namespace internal {

// Collects one message and emits it on destruction.
class LogMessage {
 public:
  LogMessage(LogLevel level, const char* file, int line);
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};

}  // namespace internal
}  // namespace rampart

#define RAMPART_LOG(level)                                                   \
  if (::rampart::LogLevel::k##level < ::rampart::MinLogLevel()) {            \
  } else                                                                     \
    ::rampart::internal::LogMessage(::rampart::LogLevel::k##level, __FILE__, \
                                    __LINE__)                                \
        .stream()
