#include "ctl/duration.h"

#include <array>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "common/duration.h"
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

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  return rampart::ParseDuration(text, {.max_group_digits = kMaxGroupDigits});
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
