#include "common/duration.h"

#include <charconv>
#include <cstdint>
#include <iterator>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart {
namespace {

struct Unit {
  std::string_view name;
  int64_t millis;
};
// Largest first: the order units must appear in.
constexpr Unit kUnits[] = {
    {"d", 86'400'000}, {"h", 3'600'000}, {"m", 60'000}, {"s", 1000}, {"ms", 1}};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text,
                                             const DurationSyntax& syntax) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "invalid duration %s: %s", QuoteEscaped(text, 64), why));
  };
  const std::string_view unit_list =
      syntax.milliseconds ? "ms, s, m, h or d" : "s, m, h or d";
  if (text.empty()) {
    return bad("empty (use e.g. \"90s\", \"15m\", \"1h30m\", \"7d\")");
  }
  if (text.front() == '-') {
    return bad("negative durations are not allowed");
  }
  const int64_t max_ms = absl::ToInt64Milliseconds(syntax.max);
  const std::string too_large = absl::StrFormat(
      "too large (the maximum is %s)", FormatDurationUnits(syntax.max));
  int64_t total = 0;
  size_t next_unit = 0;  // index into kUnits: units must strictly descend
  size_t i = 0;
  while (i < text.size()) {
    const size_t start = i;
    while (i < text.size() && IsDigit(text[i])) {
      ++i;
    }
    if (i == start) {
      return bad(absl::StrFormat("expected a number at %s",
                                 QuoteEscaped(text.substr(i), 16)));
    }
    const std::string_view digits = text.substr(start, i - start);
    if (syntax.max_group_digits > 0 &&
        digits.size() > static_cast<size_t>(syntax.max_group_digits)) {
      return bad(absl::StrFormat("number too long (at most %d digits)",
                                 syntax.max_group_digits));
    }
    if (i == text.size()) {
      return bad(absl::StrFormat("missing unit after %s (use %s)",
                                 Abbreviate(digits, 24), unit_list));
    }
    const char u = text[i];
    if (u == '.' || u == ',') {
      return bad(
          "fractions are not supported; combine units (1h30m, not 1.5h)");
    }
    const bool is_ms = u == 'm' && i + 1 < text.size() && text[i + 1] == 's';
    if (is_ms && !syntax.milliseconds) {
      return bad("milliseconds are not supported; the smallest unit is s");
    }
    size_t k = 0;
    while (k < std::size(kUnits) &&
           kUnits[k].name != text.substr(i, is_ms ? 2 : 1)) {
      ++k;
    }
    if (k == std::size(kUnits)) {
      return bad(absl::StrFormat("unknown unit %s (use %s)",
                                 QuoteEscaped(text.substr(i, 1)), unit_list));
    }
    if (k < next_unit) {
      return bad("each unit may appear once, largest first (e.g. 1h30m)");
    }
    next_unit = k + 1;
    i += kUnits[k].name.size();
    int64_t value = 0;
    const auto [end, ec] =
        std::from_chars(digits.data(), digits.data() + digits.size(), value);
    if (ec != std::errc() || end != digits.data() + digits.size() ||
        value > max_ms / kUnits[k].millis) {
      return bad(too_large);
    }
    const int64_t add = value * kUnits[k].millis;
    if (total > max_ms - add) {
      return bad(too_large);
    }
    total += add;
  }
  return absl::Milliseconds(total);
}

std::string FormatDurationUnits(absl::Duration d) {
  if (d < absl::ZeroDuration() || d == absl::InfiniteDuration() ||
      d != absl::Seconds(absl::ToInt64Seconds(d))) {
    return absl::FormatDuration(d);
  }
  int64_t s = absl::ToInt64Seconds(d);
  if (s == 0) {
    return "0s";
  }
  std::string text;
  for (const auto& [unit, seconds] : {std::pair<char, int64_t>{'d', 86400},
                                      {'h', 3600},
                                      {'m', 60},
                                      {'s', 1}}) {
    if (s >= seconds) {
      text += absl::StrFormat("%d%c", s / seconds, unit);
      s %= seconds;
    }
  }
  return text;
}

}  // namespace rampart
