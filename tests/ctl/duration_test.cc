#include "ctl/duration.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::ctl {
namespace {

using ::testing::HasSubstr;

struct GoodCase {
  std::string text;
  absl::Duration want;
};

void PrintTo(const GoodCase& c, std::ostream* os) { *os << c.text; }

class ParseDurationGoodTest : public ::testing::TestWithParam<GoodCase> {};

TEST_P(ParseDurationGoodTest, Parses) {
  absl::StatusOr<absl::Duration> d = ParseDuration(GetParam().text);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, GetParam().want);
}

INSTANTIATE_TEST_SUITE_P(
    Durations, ParseDurationGoodTest,
    ::testing::Values(GoodCase{"90s", absl::Seconds(90)},
                      GoodCase{"30m", absl::Minutes(30)},
                      GoodCase{"2h", absl::Hours(2)},
                      GoodCase{"7d", absl::Hours(168)},
                      GoodCase{"1h30m", absl::Minutes(90)},
                      GoodCase{"1d12h", absl::Hours(36)},
                      GoodCase{"1d2h3m4s", absl::Hours(26) + absl::Minutes(3) +
                                               absl::Seconds(4)},
                      GoodCase{"0s", absl::ZeroDuration()},
                      GoodCase{"3650d", absl::Hours(24 * 3650)}));

class ParseDurationBadTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ParseDurationBadTest, Rejects) {
  absl::StatusOr<absl::Duration> d = ParseDuration(GetParam());
  ASSERT_FALSE(d.ok()) << GetParam();
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("invalid duration"));
}

INSTANTIATE_TEST_SUITE_P(Durations, ParseDurationBadTest,
                         ::testing::Values("", "2", "h", "2x", "2H", "1.5h",
                                           "-1h", "+1h", " 1h", "1h ", "1 h",
                                           "30m1h", "1h1h", "1w", "2hours",
                                           "1234567890s", "36600000d",
                                           std::string("1h\0m", 4), "\xff"));

TEST(ParseDurationInRangeTest, ChecksBoundsAndNamesTheFlag) {
  EXPECT_TRUE(
      ParseDurationInRange("--ttl", "1m", absl::Minutes(1), absl::Hours(168))
          .ok());
  absl::StatusOr<absl::Duration> d =
      ParseDurationInRange("--ttl", "8d", absl::Minutes(1), absl::Hours(168));
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "--ttl: 8d is out of range [1m, 7d]");
  d = ParseDurationInRange("--ttl", "soon", absl::Minutes(1), absl::Hours(168));
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(d.status().message(), HasSubstr("--ttl: invalid duration"));
}

TEST(FormatDurationShortTest, Compact) {
  EXPECT_EQ(FormatDurationShort(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatDurationShort(absl::Milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDurationShort(absl::Seconds(45)), "45s");
  EXPECT_EQ(FormatDurationShort(absl::Seconds(130)), "2m10s");
  EXPECT_EQ(FormatDurationShort(absl::Minutes(150)), "2h30m");
  EXPECT_EQ(FormatDurationShort(absl::Hours(36)), "1d12h");
  EXPECT_EQ(FormatDurationShort(absl::Hours(24 * 7)), "7d");
  // At most two units; a gap ends the text rather than printing "1d0h5m".
  EXPECT_EQ(FormatDurationShort(absl::Hours(24) + absl::Minutes(5)), "1d");
  EXPECT_EQ(FormatDurationShort(absl::Hours(25) + absl::Minutes(5)), "1d1h");
  EXPECT_EQ(FormatDurationShort(-absl::Seconds(3)), "-3s");
  EXPECT_EQ(FormatDurationShort(absl::InfiniteDuration()), "forever");
}

TEST(FormatDurationShortTest, RoundTripsThroughTheParser) {
  for (absl::Duration d : {absl::Seconds(1), absl::Minutes(59), absl::Hours(2),
                           absl::Hours(36), absl::Hours(24 * 90)}) {
    absl::StatusOr<absl::Duration> back = ParseDuration(FormatDurationShort(d));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, d);
  }
}

}  // namespace
}  // namespace rampart::ctl
