#pragma once

// UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing
// above U+10FFFF): the one implementation used by the JSON writer, the admin
// API, the import parser and rampartctl's terminal sanitizer.
//
// Thread-safety: pure functions, thread-safe.

#include <cstddef>
#include <string_view>

namespace rampart {

// Length (1 to 4) of the valid UTF-8 sequence starting at s[i], or 0 if the
// bytes there are not one (a stray continuation byte, a lead byte that
// cannot start a sequence, a truncated sequence, an overlong form, a
// surrogate or a code point above U+10FFFF).
// REQUIRES: i < s.size().
size_t Utf8SequenceLength(std::string_view s, size_t i);

// True if all of `s` is valid UTF-8 (the empty string is).
bool IsValidUtf8(std::string_view s);

}  // namespace rampart
