#pragma once

// Strict parsing and compact printing of lengths of time for the command line
// ("90s", "30m", "2h", "7d", "1h30m"). Thread-safety: pure functions.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::ctl {

// Parses one or more `<digits><unit>` groups with units d, h, m, s, in that
// order and each at most once: "90s", "30m", "2h", "7d", "1h30m", "1d12h".
// No sign, spaces, fractions or other units; at most 9 digits per group and
// at most 100 years in total. Returns the duration (which may be zero, e.g.
// "0s"), or InvalidArgument naming the input.
absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

// As ParseDuration, and also requires min <= result <= max. `what` names the
// value in the error ("--for").
absl::StatusOr<absl::Duration> ParseDurationInRange(std::string_view what,
                                                    std::string_view text,
                                                    absl::Duration min,
                                                    absl::Duration max);

// Formats `d` compactly with at most two units, largest first, truncating
// the rest: "7d", "1d12h", "2h30m", "45s", "0s"; a positive duration under a
// second prints as milliseconds ("250ms"). Negative durations get a leading
// "-". Infinite durations print "forever".
std::string FormatDurationShort(absl::Duration d);

}  // namespace rampart::ctl
