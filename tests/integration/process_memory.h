#pragma once

// Resident memory of a test's child processes, for the hostile-input suites'
// "memory stays bounded" checks, and whether this build runs under a
// sanitizer (whose runtime adds shadow memory and keeps freed blocks in
// quarantine, ASan up to 256 MiB, so memory bounds are wider there).
//
// Thread-safety: free functions, safe from any thread.

#include <sys/types.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_format.h"

namespace rampart::testing {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kUnderSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
inline constexpr bool kUnderSanitizer = true;
#else
inline constexpr bool kUnderSanitizer = false;
#endif
#else
inline constexpr bool kUnderSanitizer = false;
#endif

// VmRSS of `pid` in KiB (from /proc/PID/status), or -1 if unknown.
inline int64_t VmRssKiB(pid_t pid) {
  std::ifstream in(absl::StrFormat("/proc/%d/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::strtoll(line.c_str() + 6, nullptr, 10);
    }
  }
  return -1;
}

}  // namespace rampart::testing
