#include "agent/spool/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "agent/spool/crc32c.h"
#include "agent/spool/segment.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "rampart-spool-XXXXXX")
            .string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Segment files of a spool directory, oldest first.
std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    uint64_t first = 0;
    if (ParseSegmentFileName(entry.path().filename().string(), &first)) {
      files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
}

void AppendToFile(const std::string& path, const std::string& content) {
  std::ofstream(path, std::ios::binary | std::ios::app) << content;
}

std::string Payload(int i) { return absl::StrFormat("event-%05d", i); }

class SpoolTest : public ::testing::Test {
 protected:
  SpoolOptions Options() const {
    return SpoolOptions{.dir = dir_.path() + "/spool",
                        .max_bytes = 64 * 1024,
                        .segment_bytes = 1024,
                        .max_record_bytes = 512,
                        .fsync = FsyncPolicy::kNever};
  }

  std::unique_ptr<Spool> OpenSpool(const SpoolOptions& options) {
    absl::StatusOr<std::unique_ptr<Spool>> spool =
        Spool::Open(options, [this] { return static_cast<uint64_t>(rng_()); });
    EXPECT_TRUE(spool.ok()) << spool.status();
    return spool.ok() ? std::move(*spool) : nullptr;
  }

  // Every unacked record from `from` on, read in chunks of `chunk`.
  static std::vector<SpoolRecord> ReadAll(Spool& spool, uint64_t from = 1,
                                          size_t chunk = 7) {
    std::vector<SpoolRecord> all;
    while (true) {
      absl::StatusOr<std::vector<SpoolRecord>> got =
          spool.ReadUnacked(from, chunk);
      EXPECT_TRUE(got.ok()) << got.status();
      if (!got.ok() || got->empty()) {
        return all;
      }
      from = got->back().sequence + 1;
      for (SpoolRecord& r : *got) {
        all.push_back(std::move(r));
      }
    }
  }

  TempDir dir_;
  std::mt19937_64 rng_{
      static_cast<uint64_t>(::testing::UnitTest::GetInstance()->random_seed())};
};

TEST(Crc32cTest, KnownVectorAndIncremental) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
}

TEST(SegmentFormatTest, FileNamesRoundTrip) {
  uint64_t first = 0;
  ASSERT_TRUE(ParseSegmentFileName(SegmentFileName(42), &first));
  EXPECT_EQ(first, 42u);
  EXPECT_EQ(SegmentFileName(42), "seg-00000000000000000042.rsp");
  EXPECT_FALSE(ParseSegmentFileName("seg-0000000000000000004x.rsp", &first));
  EXPECT_FALSE(ParseSegmentFileName("META", &first));
  EXPECT_FALSE(ParseSegmentFileName("seg-99999999999999999999.rsp", &first));
}

TEST_F(SpoolTest, RoundTripInOrder) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_NE(spool->epoch(), 0u);
  for (int i = 1; i <= 3; ++i) {
    absl::StatusOr<uint64_t> seq = spool->Append(Payload(i), i);
    ASSERT_TRUE(seq.ok()) << seq.status();
    EXPECT_EQ(*seq, static_cast<uint64_t>(i));
  }
  absl::StatusOr<std::vector<SpoolRecord>> got = spool->ReadUnacked(1, 10);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_THAT(*got, SizeIs(3));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*got)[i].sequence, static_cast<uint64_t>(i + 1));
    EXPECT_EQ((*got)[i].event_count, static_cast<uint32_t>(i + 1));
    EXPECT_EQ((*got)[i].payload, Payload(i + 1));
  }
  got = spool->ReadUnacked(2, 1);
  ASSERT_TRUE(got.ok());
  ASSERT_THAT(*got, SizeIs(1));
  EXPECT_EQ((*got)[0].sequence, 2u);
  // max_bytes limits the batch but always returns at least one record.
  got = spool->ReadUnacked(1, 10, /*max_bytes=*/1);
  ASSERT_TRUE(got.ok());
  EXPECT_THAT(*got, SizeIs(1));

  const SpoolStats stats = spool->stats();
  EXPECT_EQ(stats.unacked_batches, 3u);
  EXPECT_EQ(stats.oldest_unacked_sequence, 1u);
  EXPECT_EQ(stats.next_sequence, 4u);
  ASSERT_TRUE(spool->Close().ok());
  EXPECT_EQ(spool->Append("x", 1).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SpoolTest, DefaultPolicySyncsEveryAppend) {
  SpoolOptions options = Options();
  options.fsync = SpoolOptions{}.fsync;
  EXPECT_EQ(options.fsync, FsyncPolicy::kEveryAppend);
  std::unique_ptr<Spool> spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  for (int i = 1; i <= 20; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i), 1).ok());
  }
  ASSERT_TRUE(spool->Sync().ok());
  spool.reset();  // no Close: like a crash
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  EXPECT_THAT(ReadAll(*spool), SizeIs(20));
}

TEST_F(SpoolTest, RejectsBadOptionsOversizedRecordsAndUnissuedAcks) {
  SpoolOptions bad = Options();
  bad.max_bytes = bad.segment_bytes;  // < 2 segments
  EXPECT_EQ(Spool::Open(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = Options();
  bad.segment_bytes = bad.max_record_bytes;  // no room for headers
  EXPECT_EQ(Spool::Open(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = Options();
  bad.dir = "";
  EXPECT_EQ(Spool::Open(bad).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->Append(std::string(513, 'x'), 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(spool->Append("a", 1).ok());
  EXPECT_EQ(spool->Ack(5).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(spool->Ack(1).ok());
  EXPECT_TRUE(spool->Ack(1).ok());  // idempotent
  EXPECT_TRUE(spool->Ack(0).ok());  // never moves backwards
  EXPECT_EQ(spool->stats().acked_through, 1u);
}

TEST_F(SpoolTest, AckDeletesFullyAckedSegments) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  const std::string filler(80, 'f');
  for (int i = 1; i <= 60; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i) + filler, 1).ok());
  }
  const size_t before = SegmentFiles(Options().dir).size();
  ASSERT_GE(before, 5u);
  ASSERT_TRUE(spool->Ack(30).ok());
  const size_t middle = SegmentFiles(Options().dir).size();
  EXPECT_LT(middle, before);
  EXPECT_GE(middle, 3u);
  std::vector<SpoolRecord> rest = ReadAll(*spool);
  ASSERT_THAT(rest, SizeIs(30));
  EXPECT_EQ(rest.front().sequence, 31u);
  EXPECT_EQ(spool->stats().oldest_unacked_sequence, 31u);
  EXPECT_EQ(spool->stats().unacked_batches, 30u);

  ASSERT_TRUE(spool->Ack(60).ok());
  // Only the segment being appended to remains; it goes on the next Open.
  EXPECT_THAT(SegmentFiles(Options().dir), SizeIs(1));
  EXPECT_THAT(ReadAll(*spool), IsEmpty());
  EXPECT_EQ(spool->stats().oldest_unacked_sequence, 0u);
  EXPECT_EQ(spool->stats().unacked_batches, 0u);
  ASSERT_TRUE(spool->Close().ok());

  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_THAT(SegmentFiles(Options().dir), IsEmpty());
  EXPECT_EQ(spool->stats().bytes, 0u);
  // A clean Close leaves no gap in the numbering.
  absl::StatusOr<uint64_t> seq = spool->Append("next", 1);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 61u);
}

TEST_F(SpoolTest, AckWatermarkSurvivesCleanRestart) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i), 1).ok());
  }
  ASSERT_TRUE(spool->Ack(3).ok());  // same segment: nothing deleted
  ASSERT_TRUE(spool->Close().ok());
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  std::vector<SpoolRecord> rest = ReadAll(*spool);
  ASSERT_THAT(rest, SizeIs(2));
  EXPECT_EQ(rest[0].sequence, 4u);
  EXPECT_EQ(spool->stats().oldest_unacked_sequence, 4u);
}

TEST_F(SpoolTest, CapDropsOldestSegmentsAndCountsThem) {
  SpoolOptions options = Options();
  options.max_bytes = 4096;
  std::unique_ptr<Spool> spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  const std::string filler(80, 'f');
  constexpr int kTotal = 200;
  ASSERT_TRUE(spool->Append(Payload(1) + filler, 3).ok());
  ASSERT_TRUE(spool->Ack(1).ok());  // acked batches are not "dropped"
  for (int i = 2; i <= kTotal; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i) + filler, 3).ok());
    ASSERT_LE(spool->stats().bytes, options.max_bytes);
  }
  std::vector<SpoolRecord> kept = ReadAll(*spool);
  ASSERT_FALSE(kept.empty());
  const SpoolStats stats = spool->stats();
  const uint64_t first_kept = kept.front().sequence;
  EXPECT_GT(first_kept, 2u);
  EXPECT_EQ(kept.back().sequence, static_cast<uint64_t>(kTotal));
  // Contiguous from the oldest kept batch to the newest.
  for (size_t i = 0; i < kept.size(); ++i) {
    EXPECT_EQ(kept[i].sequence, first_kept + i);
    EXPECT_EQ(kept[i].payload,
              Payload(static_cast<int>(first_kept + i)) + filler);
  }
  EXPECT_EQ(stats.oldest_unacked_sequence, first_kept);
  EXPECT_EQ(stats.dropped_batches, first_kept - 2);  // 2..first_kept-1
  EXPECT_EQ(stats.dropped_events, 3 * (first_kept - 2));
  std::vector<std::string> reports = spool->TakeDamageReports();
  ASSERT_FALSE(reports.empty());
  EXPECT_THAT(reports.front(), HasSubstr("spool full"));
  EXPECT_THAT(spool->TakeDamageReports(), IsEmpty());

  // The counters are persisted for the epoch.
  ASSERT_TRUE(spool->Close().ok());
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->stats().dropped_batches, stats.dropped_batches);
  EXPECT_EQ(spool->stats().dropped_events, stats.dropped_events);
}

TEST_F(SpoolTest, DropOfPartlyAckedSegmentCountsOnlyUnackedBatches) {
  SpoolOptions options = Options();
  options.max_bytes = 2048;  // two segments
  std::unique_ptr<Spool> spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  const std::string filler(80, 'f');
  int appended = 0;
  // Fill the first segment (until a second one is started).
  while (SegmentFiles(options.dir).size() < 2) {
    ASSERT_TRUE(spool->Append(Payload(++appended) + filler, 2).ok());
  }
  const int first_segment_records = appended - 1;
  ASSERT_GE(first_segment_records, 4);
  ASSERT_TRUE(spool->Ack(2).ok());
  // Keep appending until the first segment is dropped.
  while (spool->stats().dropped_batches == 0) {
    ASSERT_TRUE(spool->Append(Payload(++appended) + filler, 2).ok());
  }
  EXPECT_EQ(spool->stats().dropped_batches,
            static_cast<uint64_t>(first_segment_records - 2));
  EXPECT_EQ(spool->stats().dropped_events,
            static_cast<uint64_t>(2 * (first_segment_records - 2)));
}

TEST_F(SpoolTest, TornTailIsCutOffAndSequencesAreNotReused) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i), 1).ok());
  }
  spool.reset();  // crash: no Close
  // A crash in the middle of the sixth append: half a record.
  std::string record;
  EncodeRecord(6, 1, Payload(6), &record);
  const std::vector<std::string> files = SegmentFiles(Options().dir);
  ASSERT_THAT(files, SizeIs(1));
  const size_t size_before = ReadFile(files[0]).size();
  AppendToFile(files[0], record.substr(0, record.size() / 2));

  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->stats().torn_tails, 1u);
  EXPECT_EQ(ReadFile(files[0]).size(), size_before);
  std::vector<std::string> reports = spool->TakeDamageReports();
  ASSERT_THAT(reports, SizeIs(1));
  EXPECT_THAT(reports[0], HasSubstr("torn record"));
  absl::StatusOr<uint64_t> seq = spool->Append(Payload(6), 1);
  ASSERT_TRUE(seq.ok());
  EXPECT_GT(*seq, 6u);  // after a crash: a gap, never a reuse
  std::vector<SpoolRecord> all = ReadAll(*spool);
  ASSERT_THAT(all, SizeIs(6));
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(all[i].payload, Payload(i + 1));
  }
}

TEST_F(SpoolTest, TornHeaderIsCutOff) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(Payload(1), 1).ok());
  spool.reset();
  const std::vector<std::string> files = SegmentFiles(Options().dir);
  ASSERT_THAT(files, SizeIs(1));
  AppendToFile(files[0], std::string(7, '\0'));
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->stats().torn_tails, 1u);
  EXPECT_THAT(ReadAll(*spool), SizeIs(1));
}

// The acceptance scenario at spool level: with the server down, 10k events
// are spooled while the agent restarts twice (once with a torn append);
// when the server is back, replay with acks delivers exactly those 10k
// events, in order, once each.
TEST_F(SpoolTest, TenThousandEventsSurviveTwoRestartsExactlyOnceInOrder) {
  SpoolOptions options = Options();
  options.segment_bytes = 16 * 1024;
  options.max_bytes = 4 << 20;
  options.fsync = FsyncPolicy::kExplicit;
  constexpr int kEvents = 10000;
  std::vector<std::string> written;
  uint64_t epoch = 0;
  uint64_t last_sequence = 0;
  int next_event = 0;
  const auto append = [&](Spool& spool, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string payload = Payload(next_event++);
      absl::StatusOr<uint64_t> seq = spool.Append(payload, 1);
      ASSERT_TRUE(seq.ok()) << seq.status();
      ASSERT_GT(*seq, last_sequence);
      last_sequence = *seq;
      written.push_back(payload);
    }
  };

  // Run 1: 4000 events, then the agent dies (no Close).
  std::unique_ptr<Spool> spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  epoch = spool->epoch();
  append(*spool, 4000);
  ASSERT_TRUE(spool->Sync().ok());
  spool.reset();

  // Run 2: 3000 more, then it dies in the middle of an append.
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->epoch(), epoch);
  append(*spool, 3000);
  spool.reset();
  {
    std::string torn;
    EncodeRecord(last_sequence + 1, 1, "never-appended", &torn);
    AppendToFile(SegmentFiles(options.dir).back(),
                 torn.substr(0, torn.size() - 3));
  }

  // Run 3: the last 3000, clean shutdown.
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->epoch(), epoch);
  EXPECT_EQ(spool->stats().torn_tails, 1u);
  append(*spool, 3000);
  ASSERT_TRUE(spool->Close().ok());
  ASSERT_EQ(written.size(), static_cast<size_t>(kEvents));

  // The server is back: replay from the oldest unacked batch, with one
  // reconnect in the middle that resends unacknowledged batches. The fake
  // server deduplicates on (epoch, sequence), like the real store.
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->epoch(), epoch);
  EXPECT_EQ(spool->stats().unacked_batches, static_cast<uint64_t>(kEvents));
  std::map<std::pair<uint64_t, uint64_t>, std::string> server;
  std::vector<std::string> server_order;
  uint64_t cursor = spool->stats().oldest_unacked_sequence;
  int chunks = 0;
  while (true) {
    absl::StatusOr<std::vector<SpoolRecord>> got =
        spool->ReadUnacked(cursor, 256);
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->empty()) {
      break;
    }
    for (const SpoolRecord& r : *got) {
      if (server.emplace(std::make_pair(spool->epoch(), r.sequence), r.payload)
              .second) {
        server_order.push_back(r.payload);
      }
    }
    cursor = got->back().sequence + 1;
    if (++chunks == 10) {
      // Reconnect before this chunk was acknowledged: resend from the oldest
      // unacknowledged batch.
      cursor = spool->stats().oldest_unacked_sequence;
      continue;
    }
    ASSERT_TRUE(spool->Ack(got->back().sequence).ok());
  }
  EXPECT_EQ(server.size(), static_cast<size_t>(kEvents));
  EXPECT_EQ(server_order, written);
  EXPECT_EQ(spool->stats().unacked_batches, 0u);
  EXPECT_EQ(spool->stats().dropped_batches, 0u);
  EXPECT_EQ(spool->stats().corrupt_records, 0u);
  ASSERT_TRUE(spool->Close().ok());
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  EXPECT_THAT(ReadAll(*spool), IsEmpty());
  EXPECT_THAT(SegmentFiles(options.dir), IsEmpty());
}

TEST_F(SpoolTest, CorruptRecordInMiddleSegmentIsSkippedAndReported) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  const std::string filler(80, 'f');
  for (int i = 1; i <= 60; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i) + filler, 1).ok());
  }
  ASSERT_TRUE(spool->Close().ok());
  const std::vector<std::string> files = SegmentFiles(Options().dir);
  ASSERT_GE(files.size(), 4u);
  // Flip one payload byte of the third record of the second segment.
  const std::string victim = files[1];
  uint64_t victim_first = 0;
  ASSERT_TRUE(ParseSegmentFileName(
      std::filesystem::path(victim).filename().string(), &victim_first));
  const uint64_t next_first = [&] {
    uint64_t f = 0;
    EXPECT_TRUE(ParseSegmentFileName(
        std::filesystem::path(files[2]).filename().string(), &f));
    return f;
  }();
  std::string bytes = ReadFile(victim);
  const size_t record_size = kRecordHeaderBytes + Payload(1).size() + 80;
  const size_t third = kSegmentHeaderBytes + 2 * record_size;
  bytes[third + kRecordHeaderBytes + 3] ^= 0x20;
  WriteFile(victim, bytes);

  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  const SpoolStats stats = spool->stats();
  EXPECT_EQ(stats.corrupt_records, 1u);
  std::vector<std::string> reports = spool->TakeDamageReports();
  ASSERT_THAT(reports, SizeIs(1));
  EXPECT_THAT(reports[0], HasSubstr(victim));
  EXPECT_THAT(reports[0], HasSubstr("corrupted"));

  // Everything except the damaged record and the rest of its segment.
  std::vector<SpoolRecord> all = ReadAll(*spool);
  std::vector<uint64_t> expected;
  for (uint64_t s = 1; s <= 60; ++s) {
    if (s < victim_first + 2 || s >= next_first) {
      expected.push_back(s);
    }
  }
  std::vector<uint64_t> got;
  for (const SpoolRecord& r : all) {
    got.push_back(r.sequence);
    EXPECT_EQ(r.payload, Payload(static_cast<int>(r.sequence)) + filler);
  }
  EXPECT_EQ(got, expected);
  EXPECT_EQ(stats.unacked_batches, expected.size());
  // The spool keeps working.
  absl::StatusOr<uint64_t> seq = spool->Append("after", 1);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 61u);
  ASSERT_TRUE(spool->Ack(*seq).ok());
  EXPECT_THAT(ReadAll(*spool), IsEmpty());
}

TEST_F(SpoolTest, CorruptionFoundWhileReadingIsReportedNotFatal) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  for (int i = 1; i <= 5; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i), 1).ok());
  }
  // Damage the fourth record behind the open spool's back.
  const std::vector<std::string> files = SegmentFiles(Options().dir);
  ASSERT_THAT(files, SizeIs(1));
  std::string bytes = ReadFile(files[0]);
  const size_t record_size = kRecordHeaderBytes + Payload(1).size();
  bytes[kSegmentHeaderBytes + 3 * record_size + kRecordHeaderBytes] ^= 1;
  WriteFile(files[0], bytes);

  std::vector<SpoolRecord> all = ReadAll(*spool);
  ASSERT_THAT(all, SizeIs(3));
  EXPECT_EQ(spool->stats().corrupt_records, 1u);
  EXPECT_THAT(spool->TakeDamageReports(), SizeIs(1));
  // Appends continue in a fresh segment.
  absl::StatusOr<uint64_t> seq = spool->Append(Payload(6), 1);
  ASSERT_TRUE(seq.ok());
  all = ReadAll(*spool);
  ASSERT_THAT(all, SizeIs(4));
  EXPECT_EQ(all.back().sequence, *seq);
  EXPECT_THAT(SegmentFiles(Options().dir), SizeIs(2));
}

TEST_F(SpoolTest, BadSegmentHeaderRemovesSegmentWithReport) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append(Payload(1), 1).ok());
  ASSERT_TRUE(spool->Close().ok());
  const std::vector<std::string> files = SegmentFiles(Options().dir);
  ASSERT_THAT(files, SizeIs(1));
  WriteFile(files[0], "garbage");
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->stats().bad_segments, 1u);
  EXPECT_THAT(spool->TakeDamageReports(), SizeIs(1));
  EXPECT_THAT(ReadAll(*spool), IsEmpty());
  EXPECT_THAT(SegmentFiles(Options().dir), IsEmpty());
}

TEST_F(SpoolTest, EpochPersistsAndIsRegeneratedOnlyByReset) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  const uint64_t epoch = spool->epoch();
  ASSERT_NE(epoch, 0u);
  ASSERT_TRUE(spool->Append("a", 1).ok());
  spool.reset();  // crash
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->epoch(), epoch);
  ASSERT_TRUE(spool->Close().ok());
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->epoch(), epoch);
  EXPECT_THAT(ReadAll(*spool), SizeIs(1));

  ASSERT_TRUE(spool->Reset().ok());
  const uint64_t new_epoch = spool->epoch();
  EXPECT_NE(new_epoch, epoch);
  EXPECT_NE(new_epoch, 0u);
  EXPECT_THAT(ReadAll(*spool), IsEmpty());
  absl::StatusOr<uint64_t> seq = spool->Append("b", 1);
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 1u);
  ASSERT_TRUE(spool->Close().ok());
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_EQ(spool->epoch(), new_epoch);
}

TEST_F(SpoolTest, EpochZeroFromTheGeneratorIsNeverUsed) {
  int calls = 0;
  absl::StatusOr<std::unique_ptr<Spool>> spool = Spool::Open(
      Options(), [&calls]() -> uint64_t { return ++calls < 3 ? 0 : 77; });
  ASSERT_TRUE(spool.ok()) << spool.status();
  EXPECT_EQ((*spool)->epoch(), 77u);
}

TEST_F(SpoolTest, LostMetaIsRecoveredFromSegments) {
  std::unique_ptr<Spool> spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  const uint64_t epoch = spool->epoch();
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i), 1).ok());
  }
  ASSERT_TRUE(spool->Close().ok());
  ASSERT_TRUE(std::filesystem::remove(Options().dir + "/META"));
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_TRUE(spool->stats().meta_recovered);
  EXPECT_EQ(spool->epoch(), epoch);
  EXPECT_THAT(ReadAll(*spool), SizeIs(3));
  absl::StatusOr<uint64_t> seq = spool->Append("x", 1);
  ASSERT_TRUE(seq.ok());
  EXPECT_GT(*seq, 3u + 1000000u);  // far past anything handed out

  // A damaged META is treated the same way.
  ASSERT_TRUE(spool->Close().ok());
  WriteFile(Options().dir + "/META", "rampart-spool-meta 1\nepoch zz\n");
  spool = OpenSpool(Options());
  ASSERT_NE(spool, nullptr);
  EXPECT_TRUE(spool->stats().meta_recovered);
  EXPECT_EQ(spool->epoch(), epoch);
  EXPECT_THAT(ReadAll(*spool), SizeIs(4));
}

TEST_F(SpoolTest, ReadUnackedSeeksInsideLargeSegments) {
  SpoolOptions options = Options();
  options.segment_bytes = 1 << 20;
  options.max_bytes = 8 << 20;
  std::unique_ptr<Spool> spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  const std::string filler(200, 'p');
  for (int i = 1; i <= 8000; ++i) {
    ASSERT_TRUE(spool->Append(Payload(i) + filler, 1).ok());
  }
  for (const uint64_t from : {1u, 2u, 333u, 4097u, 5000u, 7999u, 8000u}) {
    absl::StatusOr<std::vector<SpoolRecord>> got = spool->ReadUnacked(from, 2);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_FALSE(got->empty());
    EXPECT_EQ(got->front().sequence, from);
    EXPECT_EQ(got->front().payload, Payload(static_cast<int>(from)) + filler);
  }
  absl::StatusOr<std::vector<SpoolRecord>> none = spool->ReadUnacked(8001, 2);
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
  // The same after a restart (the index is rebuilt by the scan).
  ASSERT_TRUE(spool->Close().ok());
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  absl::StatusOr<std::vector<SpoolRecord>> got = spool->ReadUnacked(6543, 1);
  ASSERT_TRUE(got.ok());
  ASSERT_THAT(*got, SizeIs(1));
  EXPECT_EQ((*got)[0].sequence, 6543u);
}

TEST_F(SpoolTest, ExplicitSyncPolicy) {
  SpoolOptions options = Options();
  options.fsync = FsyncPolicy::kExplicit;
  std::unique_ptr<Spool> spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  ASSERT_TRUE(spool->Append("a", 1).ok());
  ASSERT_TRUE(spool->Ack(1).ok());
  ASSERT_TRUE(spool->Sync().ok());  // persists the ack watermark too
  ASSERT_TRUE(spool->Append("b", 1).ok());
  ASSERT_TRUE(spool->Sync().ok());
  spool.reset();  // crash after Sync
  spool = OpenSpool(options);
  ASSERT_NE(spool, nullptr);
  std::vector<SpoolRecord> all = ReadAll(*spool);
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].payload, "b");
}

}  // namespace
}  // namespace rampart::agent
