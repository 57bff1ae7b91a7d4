#pragma once

// Lengths of time as people write them in config files and on the command
// line: "90s", "15m", "2h", "7d", "1h30m", "500ms". The one parser behind
// the server config (ParseConfigDuration), the agent config
// (ParseAgentDuration) and rampartctl's flags (ctl::ParseDuration), which
// differ only in the DurationSyntax they pass.
//
// Thread-safety: pure functions, thread-safe.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart {

// Longest duration any Rampart reader accepts by default: 100 years.
inline constexpr absl::Duration kMaxDuration = absl::Hours(24 * 36500);

struct DurationSyntax {
  // Also accept "ms" (milliseconds) as the smallest unit. Default false:
  // "5ms" is rejected ("milliseconds are not supported").
  bool milliseconds = false;
  // Most digits in one <digits><unit> group ("number too long" beyond);
  // 0 (the default): no limit besides `max`.
  int max_group_digits = 0;
  // Longest duration accepted ("too large" above). Default kMaxDuration.
  absl::Duration max = kMaxDuration;
};

// Parses one or more <digits><unit> groups with units d, h, m, s (and ms if
// syntax.milliseconds), each at most once and largest first: "90s", "15m",
// "2h", "7d", "1h30m", "1d12h", "0s", "1s500ms". No sign, spaces, fractions
// or other units. Returns the duration (which may be zero), or
// InvalidArgument "invalid duration "<text>": <why>" with the input quoted
// (escaped and cut) for an empty text, a sign, a fraction, a missing or
// unknown unit, units out of order or repeated, a group longer than
// syntax.max_group_digits, or a total above syntax.max (digit strings that
// overflow included).
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text,
                                             const DurationSyntax& syntax = {});

// Formats `d` with the units ParseDuration reads, largest first, every
// non-zero one: "1h30m", "36500d", "1d4s", "0s". Whole non-negative seconds
// round-trip exactly through ParseDuration; anything else (negative,
// fractional, infinite) falls back to absl::FormatDuration.
std::string FormatDurationUnits(absl::Duration d);

}  // namespace rampart
