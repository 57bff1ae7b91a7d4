#include "common/duration.h"

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart {
namespace {

using ::testing::HasSubstr;

TEST(CommonParseDurationTest, ParsesGroupsLargestFirst) {
  EXPECT_EQ(*ParseDuration("0s"), absl::ZeroDuration());
  EXPECT_EQ(*ParseDuration("90s"), absl::Seconds(90));
  EXPECT_EQ(*ParseDuration("1h30m"), absl::Minutes(90));
  EXPECT_EQ(*ParseDuration("1d2h3m4s"), absl::Seconds(93784));
  EXPECT_EQ(*ParseDuration("0005m"), absl::Minutes(5));
  EXPECT_EQ(*ParseDuration("36500d"), kMaxDuration);
  EXPECT_EQ(*ParseDuration("1s500ms", {.milliseconds = true}),
            absl::Milliseconds(1500));
  EXPECT_EQ(*ParseDuration("2m", {.milliseconds = true}), absl::Minutes(2));
}

TEST(CommonParseDurationTest, RejectsWithAReason) {
  const struct {
    std::string_view text;
    DurationSyntax syntax;
    std::string_view why;
  } kCases[] = {
      {"", {}, "empty"},
      {"-5m", {}, "negative"},
      {"+5m", {}, "expected a number"},
      {" 5m", {}, "expected a number"},
      {"90", {}, "missing unit"},
      {"1.5h", {}, "fractions"},
      {"5ms", {}, "milliseconds are not supported"},
      {"1w", {}, "unknown unit"},
      {"5M", {}, "unknown unit"},
      {"1m1h", {}, "largest first"},
      {"1ms1s", {.milliseconds = true}, "largest first"},
      {"1h1h", {}, "largest first"},
      {"36500d1s", {}, "too large"},
      {"99999999999999999999999999s", {}, "too large"},
      {"2h", {.max = absl::Hours(1)}, "too large (the maximum is 1h)"},
      {"1234567890s", {.max_group_digits = 9}, "number too long"},
      {std::string_view("1h\0m", 4), {}, "expected a number"},
      {"\xff", {}, "expected a number"},
  };
  for (const auto& c : kCases) {
    absl::StatusOr<absl::Duration> d = ParseDuration(c.text, c.syntax);
    ASSERT_FALSE(d.ok()) << "accepted \"" << c.text << "\"";
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(d.status().message()), HasSubstr(c.why)) << c.text;
    EXPECT_THAT(std::string(d.status().message()),
                HasSubstr("invalid duration \""));
  }
}

TEST(CommonParseDurationTest, QuotesHostileInputEscapedAndCut) {
  absl::StatusOr<absl::Duration> d =
      ParseDuration("1\x1b]52;" + std::string(200, 'x'));
  ASSERT_FALSE(d.ok());
  const std::string message(d.status().message());
  EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
  EXPECT_THAT(message, HasSubstr("\\x1b"));
  EXPECT_LT(message.size(), 300u);
}

TEST(FormatDurationUnitsTest, RoundTripsWholeSeconds) {
  EXPECT_EQ(FormatDurationUnits(absl::Minutes(90)), "1h30m");
  EXPECT_EQ(FormatDurationUnits(absl::Seconds(86404)), "1d4s");
  EXPECT_EQ(FormatDurationUnits(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatDurationUnits(kMaxDuration), "36500d");
  EXPECT_EQ(FormatDurationUnits(absl::Milliseconds(1500)), "1.5s");
  for (const absl::Duration d :
       {absl::Seconds(1), absl::Seconds(59), absl::Seconds(3661),
        absl::Hours(24 * 7) + absl::Seconds(1), kMaxDuration}) {
    EXPECT_EQ(*ParseDuration(FormatDurationUnits(d)), d);
  }
}

}  // namespace
}  // namespace rampart
