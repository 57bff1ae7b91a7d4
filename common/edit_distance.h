#pragma once

// Levenshtein distance, for "did you mean" suggestions in the server and
// agent config readers. Thread-safety: pure function, thread-safe.

#include <cstddef>
#include <string_view>

namespace rampart {

// The number of single-byte insertions, deletions and substitutions that
// turn `a` into `b`. Takes O(|a| * |b|) time and O(|b|) memory: callers
// bound the lengths (config keys are cut to 64 bytes before they get here).
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace rampart
