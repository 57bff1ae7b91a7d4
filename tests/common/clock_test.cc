#include "common/clock.h"

#include "gtest/gtest.h"

namespace rampart {
namespace {

TEST(SimulatedClockTest, AdvancesOnlyWhenTold) {
  SimulatedClock clock(absl::FromUnixSeconds(1000));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000));
  clock.Advance(absl::Minutes(61));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000 + 61 * 60));
  clock.Advance(-absl::Seconds(5));  // ignored
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(1000 + 61 * 60));
  clock.Set(absl::FromUnixSeconds(5));
  EXPECT_EQ(clock.Now(), absl::FromUnixSeconds(5));
}

TEST(RealClockTest, IsMonotonicEnough) {
  const absl::Time a = RealClock::Get().Now();
  const absl::Time b = RealClock::Get().Now();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace rampart
