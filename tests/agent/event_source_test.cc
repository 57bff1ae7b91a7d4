// EventSource statistics that the agent reports in its Heartbeat.

#include "agent/daemon/event_source.h"

#include <memory>
#include <string>
#include <string_view>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/daemon/conversions.h"
#include "agent/spool/spool.h"
#include "agent/tail/position_store.h"
#include "common/clock.h"
#include "gtest/gtest.h"
#include "tests/fakes/temp_files.h"

namespace rampart::agent {
namespace {

using ::rampart::testing::AppendToFile;
using ::rampart::testing::TempDir;

// The line's time, 2026-11-23 10:00:00 UTC.
const absl::Time kLineTime = absl::FromCivil(
    absl::CivilSecond(2026, 11, 23, 10, 0, 0), absl::UTCTimeZone());

class EventSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = dir_.path() + "/console.log";
    AppendToFile(log_, "");
    absl::StatusOr<std::unique_ptr<Spool>> spool =
        Spool::Open(SpoolOptions{.dir = dir_.path() + "/spool",
                                 .max_record_bytes = 1u << 20,
                                 .fsync = FsyncPolicy::kNever});
    ASSERT_TRUE(spool.ok()) << spool.status();
    spool_ = std::move(*spool);
    absl::StatusOr<std::unique_ptr<PositionStore>> positions =
        PositionStore::Open(dir_.path() + "/positions");
    ASSERT_TRUE(positions.ok()) << positions.status();
    positions_ = std::move(*positions);
    absl::StatusOr<std::unique_ptr<EventSource>> source = EventSource::Create(
        EventSourceOptions{.logs = {LogSourceConfig{
                               .path = log_, .date_order = DateOrder::kYmd}},
                           .read_existing_logs = true},
        *spool_, *positions_, encoder_, clock_);
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = std::move(*source);
  }

  TempDir dir_{"rampart-source"};
  std::string log_;
  SimulatedClock clock_{kLineTime + absl::Minutes(10)};
  ProtoBatchEncoder encoder_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<PositionStore> positions_;
  std::unique_ptr<EventSource> source_;
};

TEST_F(EventSourceTest, TailerLagIsTheAgeOfTheLastLineReadWhileBytesRemain) {
  // Nothing read yet: no lag.
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(source_->stats().tailer_lag, absl::ZeroDuration());

  // An event line, then a line still being written: 3 unread bytes remain
  // behind a line logged 10 minutes ago.
  AppendToFile(
      log_,
      "2026-11-23 10:00:00   SMTP Server: Authentication failed for user "
      "jdoe ; connecting host 198.51.100.7\nSMT");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(source_->stats().events, 1u);
  EXPECT_EQ(source_->stats().backlog_bytes, 3u);
  EXPECT_EQ(source_->stats().tailer_lag, absl::Minutes(10));
  clock_.Advance(absl::Minutes(5));
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(source_->stats().tailer_lag, absl::Minutes(15));

  // The line completes: at the end of the log the tailer is not behind,
  // however old the last line is.
  AppendToFile(log_, "P Server: something else\n");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(source_->stats().backlog_bytes, 0u);
  EXPECT_EQ(source_->stats().tailer_lag, absl::ZeroDuration());
}

TEST_F(EventSourceTest, LineTimeAheadOfTheClockIsNoNegativeLag) {
  AppendToFile(
      log_,
      "2026-11-23 11:00:00   SMTP Server: Authentication failed for user "
      "jdoe ; connecting host 198.51.100.7\npartial");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(source_->stats().events, 1u);
  EXPECT_GT(source_->stats().backlog_bytes, 0u);
  EXPECT_EQ(source_->stats().tailer_lag, absl::ZeroDuration());
}

}  // namespace
}  // namespace rampart::agent
