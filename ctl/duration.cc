#include "ctl/duration.h"

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart::ctl {
namespace {

struct Unit {
  char name;
  absl::Duration length;
};

constexpr int kMaxGroupDigits = 9;

const std::array<Unit, 4>& Units() {
  static const std::array<Unit, 4> kUnits = {{{'d', absl::Hours(24)},
                                              {'h', absl::Hours(1)},
                                              {'m', absl::Minutes(1)},
                                              {'s', absl::Seconds(1)}}};
  return kUnits;
}

absl::Status Invalid(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid duration \"%s\": %s (examples: 90s, 30m, 2h, "
                      "7d, 1h30m)",
                      Abbreviate(text, 40), why));
}

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  if (text.empty()) {
    return Invalid(text, "empty");
  }
  absl::Duration total = absl::ZeroDuration();
  size_t next_unit = 0;  // index into Units() of the smallest unit allowed
  size_t i = 0;
  while (i < text.size()) {
    int64_t value = 0;
    size_t digits = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      if (++digits > kMaxGroupDigits) {
        return Invalid(text, "number too long");
      }
      value = value * 10 + (text[i] - '0');
      ++i;
    }
    if (digits == 0) {
      return Invalid(text, "expected a number");
    }
    if (i == text.size()) {
      return Invalid(text, "missing unit (d, h, m or s)");
    }
    const char unit = text[i++];
    size_t u = next_unit;
    while (u < Units().size() && Units()[u].name != unit) {
      ++u;
    }
    if (u == Units().size()) {
      bool known = false;
      for (const Unit& k : Units()) {
        known = known || k.name == unit;
      }
      return Invalid(text, known ? "units must appear once, largest first"
                                 : "unknown unit (use d, h, m or s)");
    }
    total += value * Units()[u].length;
    next_unit = u + 1;
  }
  if (total > absl::Hours(24 * 365 * 100)) {
    return Invalid(text, "longer than 100 years");
  }
  return total;
}

absl::StatusOr<absl::Duration> ParseDurationInRange(std::string_view what,
                                                    std::string_view text,
                                                    absl::Duration min,
                                                    absl::Duration max) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s", what, d.status().message()));
  }
  if (*d < min || *d > max) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: %s is out of range [%s, %s]", what, Abbreviate(text, 40),
        FormatDurationShort(min), FormatDurationShort(max)));
  }
  return d;
}

std::string FormatDurationShort(absl::Duration d) {
  if (d == absl::InfiniteDuration() || d == -absl::InfiniteDuration()) {
    return "forever";
  }
  std::string sign;
  if (d < absl::ZeroDuration()) {
    sign = "-";
    d = -d;
  }
  if (d == absl::ZeroDuration()) {
    return "0s";
  }
  if (d < absl::Seconds(1)) {
    return absl::StrFormat("%s%dms", sign, absl::ToInt64Milliseconds(d));
  }
  std::string out = sign;
  int printed = 0;
  for (const Unit& unit : Units()) {
    const int64_t n = absl::IDivDuration(d, unit.length, &d);
    if (n > 0) {
      absl::StrAppendFormat(&out, "%d%c", n, unit.name);
      ++printed;
    } else if (printed > 0) {
      break;  // "1d0h5m" would mislead; stop at the first gap
    }
    if (printed == 2) {
      break;
    }
  }
  return out;
}

}  // namespace rampart::ctl
