#pragma once

// How Domino prints a console timestamp: the date order and separator
// (notes.ini DateOrder and the locale) and the 24 h or 12 h clock. Used by the
// workload generator; the agent's parser reads the same shapes.
//
// Thread-safety: pure functions.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "common/time_format.h"

namespace rampart::sim {

enum class DateFormat : uint8_t {
  kDmyDash,   // 06-03-2024
  kDmyDot,    // 06.03.2024
  kMdySlash,  // 03/06/2024
  kMdyDash,   // 03-06-2024
  kYmdDash,   // 2024-03-06
};

enum class ClockStyle : uint8_t {
  k24Hour,  // 00:15:33
  k12Hour,  // 12:15:33 AM (12 AM is hour 0, 12 PM is noon)
};

// "dmy-dash", "dmy-dot", "mdy-slash", "mdy-dash", "ymd-dash".
std::string_view DateFormatName(DateFormat format);
// Inverse of DateFormatName(); InvalidArgument naming the choices otherwise.
absl::StatusOr<DateFormat> ParseDateFormat(std::string_view name);

// "24h", "12h".
std::string_view ClockStyleName(ClockStyle clock);
absl::StatusOr<ClockStyle> ParseClockStyle(std::string_view name);

// Appends the date of `t`, e.g. "06.03.2024". REQUIRES: 0 <= year <= 9999.
void AppendDate(std::string* out, const absl::CivilSecond& t,
                DateFormat format);

// Appends "HH:MM:SS" (hours 00..23, or 01..12 for the 12 h clock) without
// the AM/PM marker.
void AppendClockTime(std::string* out, const absl::CivilSecond& t,
                     ClockStyle clock);

// " AM" or " PM" for the 12 h clock, "" for the 24 h clock.
std::string_view Meridiem(const absl::CivilSecond& t, ClockStyle clock);

// Appends "DATE HH:MM:SS[.cc][ AM|PM]" as Domino prints it; `centis` in
// 0..99 adds hundredths, -1 omits them.
void AppendDominoTimestamp(std::string* out, const absl::CivilSecond& t,
                           DateFormat format, ClockStyle clock, int centis);

}  // namespace rampart::sim
