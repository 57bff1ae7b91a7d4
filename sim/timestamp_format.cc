#include "sim/timestamp_format.h"

#include <array>
#include <utility>

#include "absl/strings/str_format.h"

namespace rampart::sim {
namespace {

constexpr std::array<std::pair<DateFormat, std::string_view>, 5> kDateFormats =
    {{
        {DateFormat::kDmyDash, "dmy-dash"},
        {DateFormat::kDmyDot, "dmy-dot"},
        {DateFormat::kMdySlash, "mdy-slash"},
        {DateFormat::kMdyDash, "mdy-dash"},
        {DateFormat::kYmdDash, "ymd-dash"},
    }};

}  // namespace

std::string_view DateFormatName(DateFormat format) {
  for (const auto& [f, name] : kDateFormats) {
    if (f == format) {
      return name;
    }
  }
  return "dmy-dash";
}

absl::StatusOr<DateFormat> ParseDateFormat(std::string_view name) {
  for (const auto& [f, n] : kDateFormats) {
    if (n == name) {
      return f;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid date format \"%s\": expected one of "
                      "dmy-dash, dmy-dot, mdy-slash, mdy-dash, ymd-dash",
                      name.substr(0, 40)));
}

std::string_view ClockStyleName(ClockStyle clock) {
  return clock == ClockStyle::k12Hour ? "12h" : "24h";
}

absl::StatusOr<ClockStyle> ParseClockStyle(std::string_view name) {
  if (name == "24h") {
    return ClockStyle::k24Hour;
  }
  if (name == "12h") {
    return ClockStyle::k12Hour;
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "invalid clock \"%s\": expected 24h or 12h", name.substr(0, 40)));
}

void AppendDate(std::string* out, const absl::CivilSecond& t,
                DateFormat format) {
  const int64_t y = t.year();
  const int m = t.month();
  const int d = t.day();
  switch (format) {
    case DateFormat::kDmyDash:
    case DateFormat::kDmyDot: {
      const char sep = format == DateFormat::kDmyDot ? '.' : '-';
      AppendDigits(out, d, 2);
      out->push_back(sep);
      AppendDigits(out, m, 2);
      out->push_back(sep);
      AppendDigits(out, y, 4);
      return;
    }
    case DateFormat::kMdySlash:
    case DateFormat::kMdyDash: {
      const char sep = format == DateFormat::kMdySlash ? '/' : '-';
      AppendDigits(out, m, 2);
      out->push_back(sep);
      AppendDigits(out, d, 2);
      out->push_back(sep);
      AppendDigits(out, y, 4);
      return;
    }
    case DateFormat::kYmdDash:
      AppendDigits(out, y, 4);
      out->push_back('-');
      AppendDigits(out, m, 2);
      out->push_back('-');
      AppendDigits(out, d, 2);
      return;
  }
}

void AppendClockTime(std::string* out, const absl::CivilSecond& t,
                     ClockStyle clock) {
  int hour = t.hour();
  if (clock == ClockStyle::k12Hour) {
    hour %= 12;
    if (hour == 0) {
      hour = 12;
    }
  }
  AppendDigits(out, hour, 2);
  out->push_back(':');
  AppendDigits(out, t.minute(), 2);
  out->push_back(':');
  AppendDigits(out, t.second(), 2);
}

std::string_view Meridiem(const absl::CivilSecond& t, ClockStyle clock) {
  if (clock == ClockStyle::k24Hour) {
    return "";
  }
  return t.hour() < 12 ? " AM" : " PM";
}

void AppendDominoTimestamp(std::string* out, const absl::CivilSecond& t,
                           DateFormat format, ClockStyle clock, int centis) {
  AppendDate(out, t, format);
  out->push_back(' ');
  AppendClockTime(out, t, clock);
  if (centis >= 0) {
    out->push_back('.');
    AppendDigits(out, centis % 100, 2);
  }
  out->append(Meridiem(t, clock));
}

}  // namespace rampart::sim
