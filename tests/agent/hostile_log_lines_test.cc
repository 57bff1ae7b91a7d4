// Issue 16 item 2: a crafted log line must never get an innocent address
// reported. The EventSource (tailer -> parser -> events) is driven with
// lines an attacker can make Domino write; 203.0.113.99 is the victim,
// 198.51.100.7 the attacker.

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/daemon/conversions.h"
#include "agent/daemon/event_source.h"
#include "agent/spool/spool.h"
#include "agent/tail/position_store.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "gtest/gtest.h"
#include "tests/fakes/temp_files.h"

namespace rampart::agent {
namespace {

using ::rampart::testing::AppendToFile;
using ::rampart::testing::TempDir;

constexpr char kVictim[] = "203.0.113.99";
constexpr char kAttacker[] = "198.51.100.7";
constexpr char kPrefix[] =
    "2026-11-23 10:00:00   SMTP Server: Authentication failed for user ";

std::string BLine(const std::string& user, const std::string& host) {
  return kPrefix + user + " ; connecting host " + host;
}

class HostileLogLinesTest : public ::testing::Test {
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
    EventSourceOptions options{
        .logs = {LogSourceConfig{.path = log_, .date_order = DateOrder::kYmd}},
        .read_existing_logs = true,
        .observer = [this](const AgentEvent& e,
                           uint64_t) { events_.push_back(e); },
    };
    options.metrics = &metrics_;
    absl::StatusOr<std::unique_ptr<EventSource>> source =
        EventSource::Create(options, *spool_, *positions_, encoder_, clock_);
    ASSERT_TRUE(source.ok()) << source.status();
    source_ = std::move(*source);
  }

  // Addresses of the events read so far ("" for non-actionable ones).
  std::vector<std::string> Addresses() const {
    std::vector<std::string> out;
    for (const AgentEvent& e : events_) {
      out.push_back(e.ip.has_value() ? e.ip->ToString() : "");
    }
    return out;
  }

  uint64_t Dropped(const std::string& reason) {
    return metrics_
        .GetCounter("rampart_agent_log_lines_dropped_total", "",
                    {{"reason", reason}})
        .Value();
  }

  TempDir dir_{"rampart-hostile"};
  std::string log_;
  SimulatedClock clock_{absl::FromCivil(absl::CivilSecond(2026, 11, 23, 10, 5),
                                        absl::UTCTimeZone())};
  metrics::Registry metrics_;
  ProtoBatchEncoder encoder_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<PositionStore> positions_;
  std::unique_ptr<EventSource> source_;
  std::vector<AgentEvent> events_;
};

// The reported attack: "; connecting host <victim>" in a user name, then
// padding past the tailer's 64 KiB cap. The cut head used to end with the
// victim's address (trailing blanks trimmed) and blamed it.
TEST_F(HostileLogLinesTest, CutLineWithForgedTailBlamesNobody) {
  const std::string user =
      std::string("x ; connecting host ") + kVictim + std::string(70000, ' ');
  AppendToFile(log_, BLine(user, kAttacker) + "\n");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(Addresses(), std::vector<std::string>{});
  EXPECT_EQ(source_->stats().cut_lines, 1u);
  EXPECT_EQ(Dropped("cut"), 1u);

  // The same padding made of non-blank bytes, with the forged address
  // placed to end exactly at the cap.
  const size_t cap = 64 * 1024;
  const std::string fake = std::string(" ; connecting host ") + kVictim;
  std::string line = kPrefix;
  line += std::string(cap - line.size() - fake.size(), 'A') + fake;
  ASSERT_EQ(line.size(), cap);
  AppendToFile(log_, line + std::string(5000, 'B') + " ; connecting host " +
                         kAttacker + "\n");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(Addresses(), std::vector<std::string>{});
  EXPECT_EQ(source_->stats().cut_lines, 2u);

  // Real lines around them still count.
  AppendToFile(log_, BLine("jdoe", kAttacker) + "\n");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(Addresses(), std::vector<std::string>{kAttacker});
}

// A line cut by a rotation (the old file's last line has no '\n') is not
// Domino's whole line either.
TEST_F(HostileLogLinesTest, UnterminatedLineOfARotatedFileBlamesNobody) {
  AppendToFile(log_,
               BLine("jdoe", kAttacker) + "\n" +
                   BLine("x ; connecting host " + std::string(kVictim), ""));
  // The unfinished line is held, not delivered, while the file is current.
  ASSERT_TRUE(source_->Poll().ok());
  ASSERT_EQ(Addresses(), std::vector<std::string>{kAttacker});
  ASSERT_EQ(std::rename(log_.c_str(), (log_ + ".1").c_str()), 0);
  AppendToFile(log_, BLine("anna", kAttacker) + "\n");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(Addresses(), (std::vector<std::string>{kAttacker, kAttacker}));
  EXPECT_EQ(source_->stats().cut_lines, 1u);
  EXPECT_EQ(Dropped("cut"), 1u);
}

// Every other way the user field can put text where the parser expects
// Domino's own: the line is counted and logged, never reported.
TEST_F(HostileLogLinesTest, SuspectUserFieldsAreCountedNotReported) {
  const std::string victim = kVictim;
  AppendToFile(log_,
               // Padding that would reach a cut point.
               BLine("", victim + std::string(40, ' ')) + "\n" +
                   // A user name longer than any account.
                   BLine(std::string(300, 'u'), victim) + "\n" +
                   // NUL, ESC and a bare CR (which does not end a line).
                   BLine(std::string("a\0b", 3), victim) + "\n" +
                   BLine("a\x1b[1A", victim) + "\n" +
                   BLine("x\r" + BLine("y", victim), kAttacker) + "\n" +
                   // The address anchor inside the user field.
                   BLine("x ; connecting host " + victim, kAttacker) + "\n");
  ASSERT_TRUE(source_->Poll().ok());
  EXPECT_EQ(Addresses(), std::vector<std::string>{});
  EXPECT_EQ(Dropped("padded"), 1u);
  EXPECT_EQ(Dropped("long_user"), 1u);
  EXPECT_EQ(Dropped("control_in_user"), 3u);
  EXPECT_EQ(Dropped("marker_in_user"), 1u);
  EXPECT_EQ(source_->stats().lines, 6u);
}

}  // namespace
}  // namespace rampart::agent
