#pragma once

// Allocation-free formatting of civil times for hot output paths.

#include <cstdint>
#include <string>

#include "absl/time/civil_time.h"

namespace rampart {

// Appends `value` as exactly `width` decimal digits (zero-padded; higher
// digits are dropped). REQUIRES: value >= 0, 1 <= width <= 8.
void AppendDigits(std::string* out, int64_t value, int width);

// Appends "YYYY-MM-DDTHH:MM:SS" (ISO 8601, no zone).
void AppendIsoTime(std::string* out, const absl::CivilSecond& t);

}  // namespace rampart
