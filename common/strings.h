#pragma once

// Small std::string_view helpers.
//
// Debian's Abseil 20220623 is built with ABSL_OPTION_USE_STD_STRING_VIEW=0, so
// absl::string_view is a distinct type and absl::StrCat / absl/strings/match.h
// do not accept std::string_view. Rampart code uses std::string_view (C++20
// starts_with/ends_with), these helpers, and absl::StrFormat (which does
// accept std::string_view) for messages.

#include <cstddef>
#include <limits>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"

namespace rampart {

// If *s starts with `prefix`, removes it and returns true.
inline bool ConsumePrefix(std::string_view* s, std::string_view prefix) {
  if (!s->starts_with(prefix)) {
    return false;
  }
  s->remove_prefix(prefix.size());
  return true;
}

inline bool IsAsciiSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' ||
         c == '\v';
}

// Removes leading and trailing ASCII whitespace.
inline std::string_view StripWhitespace(std::string_view s) {
  while (!s.empty() && IsAsciiSpace(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && IsAsciiSpace(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// ASCII lower-case copy.
inline std::string AsciiLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

// Converts for the absl APIs that take absl::string_view.
inline absl::string_view ToAbsl(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

// At most `max` bytes of `s` followed by "..." if cut: for quoting hostile
// input in error messages.
inline std::string Abbreviate(std::string_view s, size_t max = 80) {
  if (s.size() <= max) {
    return std::string(s);
  }
  return std::string(s.substr(0, max)) + "...";
}

// `s` in double quotes with control characters (as \xNN), quotes and
// backslashes escaped, cut to `max` bytes (then "..." before the closing
// quote): safe to embed hostile input in a message, and a valid YAML
// double-quoted scalar when not cut.
inline std::string QuoteEscaped(
    std::string_view s, size_t max = std::numeric_limits<size_t>::max()) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == max) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace rampart
