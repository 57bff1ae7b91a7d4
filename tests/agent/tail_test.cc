#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "agent/tail/change_notifier.h"
#include "agent/tail/inotify_notifier.h"
#include "agent/tail/polling_notifier.h"
#include "agent/tail/position_store.h"
#include "agent/tail/tail_position.h"
#include "agent/tail/tailer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/temp_files.h"

namespace rampart::agent {
namespace {

using ::rampart::testing::AppendToFile;
using ::rampart::testing::TempDir;

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Rewrites in place without truncating, as Domino's wrap does (appends:
// AppendToFile).
void WriteAt(const std::string& path, uint64_t offset, std::string_view data) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset)),
            static_cast<ssize_t>(data.size()));
  ::close(fd);
}

void Truncate(const std::string& path, uint64_t size) {
  ASSERT_EQ(::truncate(path.c_str(), static_cast<off_t>(size)), 0);
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// A console.log-like line (with its '\n') of generation `gen`, number `i`.
std::string LogLine(int gen, int i, int pad = 0) {
  return absl::StrFormat(
      "2024-03-06 10:%02d:%02d   smtp: gen%d user%05d [198.51.100.%d] "
      "authentication failure using internet password%s\n",
      (i / 60) % 60, i % 60, gen, i, i % 250, std::string(pad, '.'));
}

// Lines of `text` without their '\n'.
std::vector<std::string> Split(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    out.emplace_back(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  }
  return out;
}

// Expects `got` to equal `expected`, except that the very last expected
// line may be missing: after a wrap, a line that ends exactly where an old
// line ended waits for its successor. Reports the first difference.
void ExpectAllButMaybeTheLast(const std::vector<std::string>& got,
                              std::vector<std::string> expected) {
  if (got.size() + 1 == expected.size()) {
    expected.pop_back();
  }
  for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    if (got[i] != expected[i]) {
      ADD_FAILURE() << "line " << i << " of " << expected.size()
                    << " differs:\n  got:      " << got[i]
                    << "\n  expected: " << expected[i]
                    << (i > 0 ? "\n  after:    " + got[i - 1] : "");
      return;
    }
  }
  EXPECT_EQ(got.size(), expected.size());
}

class TailerTest : public ::testing::Test {
 protected:
  TailerTest() : log_(dir_.path() + "/console.log") {}

  TailerOptions Options() const {
    return TailerOptions{.path = log_,
                         .start_at = TailerOptions::Start::kBeginning,
                         .max_line_bytes = 1024};
  }

  std::unique_ptr<Tailer> Make(const TailerOptions& options,
                               std::optional<TailPosition> saved = {}) {
    absl::StatusOr<std::unique_ptr<Tailer>> t =
        Tailer::Create(options, std::move(saved));
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? std::move(*t) : nullptr;
  }

  // Polls until nothing more is immediately available; returns the texts.
  std::vector<std::string> Drain(Tailer& tailer) {
    std::vector<std::string> got;
    last_ = TailPollResult{};
    for (int i = 0; i < 10000; ++i) {
      absl::StatusOr<TailPollResult> r =
          tailer.Poll([&got, this](const TailLine& line) {
            got.emplace_back(line.text);
            meta_.push_back(line);
            meta_.back().text = {};
            return true;
          });
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) {
        break;
      }
      last_.lines += r->lines;
      last_.held = last_.held || r->held;
      if (!r->more) {
        break;
      }
    }
    return got;
  }

  TempDir dir_{"rampart-tail"};
  const std::string log_;
  std::vector<TailLine> meta_;  // offsets and flags of delivered lines
  TailPollResult last_;
};

// ---------------------------------------------------------------------------
// Position encoding and store

TEST(TailPositionTest, EncodeDecodeRoundTrip) {
  TailPosition p;
  p.device = 2049;
  p.inode = 123456789;
  p.offset = 4096;
  p.in_long_line = true;
  p.head_length = 1024;
  p.head_hash = 0x0123456789abcdefull;
  p.tail_length = 256;
  p.tail_hash = 0xfedcba9876543210ull;
  p.lines = {{0, 100, 0xdeadbeef}, {100, 50, 1}, {900, 3000, 2}};
  p.guard_end = 100000;
  p.guard = {{4000, 200, 7}, {99000, 1000, 8}};
  const std::string text = EncodeTailPosition(p);
  absl::StatusOr<TailPosition> back = DecodeTailPosition(text, "test");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, p);

  std::string damaged = text;
  damaged[damaged.find("offset 4096") + 8] = '9';
  EXPECT_EQ(DecodeTailPosition(damaged, "test").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTailPosition(text.substr(0, text.size() / 2), "test")
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecodeTailPosition("", "test").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(PositionStoreTest, SaveLoadAndKeys) {
  TempDir dir;
  absl::StatusOr<std::unique_ptr<PositionStore>> store =
      PositionStore::Open(dir.path() + "/state/positions");
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string a = PositionStore::KeyForPath("/notes/IBM_TS/console.log");
  const std::string b = PositionStore::KeyForPath("/notes2/IBM_TS/console.log");
  EXPECT_NE(a, b);
  EXPECT_TRUE(a.starts_with("console.log-"));
  EXPECT_TRUE(PositionStore::KeyForPath("/x/../we ird\nname").find('\n') ==
              std::string::npos);

  absl::StatusOr<std::optional<TailPosition>> none = (*store)->Load(a);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  TailPosition p;
  p.inode = 7;
  p.offset = 99;
  ASSERT_TRUE((*store)->Save(a, p).ok());
  p.offset = 100;
  ASSERT_TRUE((*store)->Save(a, p).ok());  // replaces
  absl::StatusOr<std::optional<TailPosition>> got = (*store)->Load(a);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ(**got, p);

  EXPECT_EQ((*store)->Save("../evil", p).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*store)->Load("").status().code(),
            absl::StatusCode::kInvalidArgument);
  {
    std::FILE* f =
        std::fopen(((*store)->dir() + "/" + b + ".pos").c_str(), "w");
    std::fputs("garbage\n", f);
    std::fclose(f);
  }
  EXPECT_EQ((*store)->Load(b).status().code(), absl::StatusCode::kDataLoss);
}

// ---------------------------------------------------------------------------
// Lines

TEST_F(TailerTest, RejectsBadOptions) {
  TailerOptions o = Options();
  o.max_line_bytes = 10;
  EXPECT_EQ(Tailer::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.path.clear();
  EXPECT_EQ(Tailer::Create(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TailerTest, DeliversCompleteLinesWithOffsets) {
  AppendToFile(log_, "a\nbb\n\nccc\n");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("a", "bb", "", "ccc"));
  ASSERT_THAT(meta_, SizeIs(4));
  EXPECT_EQ(meta_[1].offset, 2u);
  EXPECT_EQ(meta_[1].end_offset, 5u);
  EXPECT_EQ(meta_[3].offset, 6u);
  EXPECT_EQ(meta_[3].end_offset, 10u);
  EXPECT_EQ(tailer->position().offset, 10u);
  EXPECT_EQ(tailer->stats().lines, 4u);
  EXPECT_EQ(tailer->stats().backlog_bytes, 0u);
  EXPECT_THAT(Drain(*tailer), IsEmpty());
}

TEST_F(TailerTest, PartialLastLineIsHeldUntilCompleted) {
  AppendToFile(log_, "first\nsec");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("first"));
  EXPECT_EQ(tailer->position().offset, 6u);
  EXPECT_EQ(tailer->stats().backlog_bytes, 3u);
  AppendToFile(log_, "ond par");
  EXPECT_THAT(Drain(*tailer), IsEmpty());
  AppendToFile(log_, "t\nthird\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("second part", "third"));
}

TEST_F(TailerTest, CrlfLinesAreStripped) {
  AppendToFile(log_, "one\r\ntwo\r\n\r\nthree\n");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("one", "two", "", "three"));
  EXPECT_EQ(meta_[1].offset, 5u);
  EXPECT_EQ(meta_[1].end_offset, 10u);
}

TEST_F(TailerTest, HugeLineIsCutAndFlagged) {
  AppendToFile(log_, "before\n" + std::string(200000, 'x') + "\nafter\n");
  auto tailer = Make(Options());
  std::vector<std::string> got = Drain(*tailer);
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_EQ(got[0], "before");
  EXPECT_EQ(got[1], std::string(1024, 'x'));
  EXPECT_TRUE(meta_[1].truncated);
  EXPECT_EQ(meta_[1].end_offset, 7u + 200001u);
  EXPECT_EQ(got[2], "after");
  EXPECT_FALSE(meta_[2].truncated);
  EXPECT_EQ(tailer->stats().truncated_lines, 1u);
}

TEST_F(TailerTest, HugeUnfinishedLineIsCutEarlyAndItsRestSkipped) {
  AppendToFile(log_, std::string(5000, 'y'));
  auto tailer = Make(Options());
  std::vector<std::string> got = Drain(*tailer);
  ASSERT_THAT(got, SizeIs(1));
  EXPECT_EQ(got[0], std::string(1024, 'y'));
  EXPECT_TRUE(meta_[0].truncated);
  AppendToFile(log_, std::string(3000, 'y'));
  EXPECT_THAT(Drain(*tailer), IsEmpty());
  AppendToFile(log_, "yyy\nnext\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("next"));
  EXPECT_EQ(tailer->stats().truncated_lines, 1u);
}

TEST_F(TailerTest, StartAtEndSkipsHistoryButNotAnUnfinishedLine) {
  AppendToFile(log_, "old1\nold2\nnewer-par");
  TailerOptions options = Options();
  options.start_at = TailerOptions::Start::kEnd;
  auto tailer = Make(options);
  EXPECT_THAT(Drain(*tailer), IsEmpty());
  AppendToFile(log_, "t\nnew\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("newer-part", "new"));
}

TEST_F(TailerTest, FileMissingThenAppearingIsReadFromItsStart) {
  TailerOptions options = Options();
  options.start_at = TailerOptions::Start::kEnd;  // only for a present file
  auto tailer = Make(options);
  EXPECT_THAT(Drain(*tailer), IsEmpty());
  EXPECT_FALSE(tailer->stats().file_open);
  EXPECT_EQ(tailer->position().inode, 0u);
  AppendToFile(log_, "l1\nl2\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("l1", "l2"));
  EXPECT_TRUE(tailer->stats().file_open);
}

TEST_F(TailerTest, SinkCanStopAfterALine) {
  AppendToFile(log_, "1\n2\n3\n4\n");
  auto tailer = Make(Options());
  std::vector<std::string> got;
  absl::StatusOr<TailPollResult> r = tailer->Poll([&got](const TailLine& line) {
    got.emplace_back(line.text);
    return got.size() < 2;
  });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->more);
  EXPECT_EQ(r->lines, 2u);
  EXPECT_EQ(tailer->position().offset, 4u);
  EXPECT_THAT(Drain(*tailer), ElementsAre("3", "4"));
}

TEST_F(TailerTest, ByteBudgetSplitsLargeBacklogs) {
  std::string all;
  for (int i = 0; i < 100; ++i) {
    all += LogLine(0, i);
  }
  AppendToFile(log_, all);
  TailerOptions options = Options();
  options.max_bytes_per_poll = 1000;
  auto tailer = Make(options);
  int polls = 0;
  std::vector<std::string> got;
  while (true) {
    absl::StatusOr<TailPollResult> r = tailer->Poll([&got](const TailLine& l) {
      got.emplace_back(l.text);
      return true;
    });
    ASSERT_TRUE(r.ok()) << r.status();
    ++polls;
    if (!r->more) {
      break;
    }
  }
  EXPECT_GT(polls, 5);
  EXPECT_EQ(got, Split(all));
}

// ---------------------------------------------------------------------------
// Rotation and truncation

TEST_F(TailerTest, RenameAndRecreateFinishesTheOldFileFirst) {
  AppendToFile(log_, LogLine(0, 1) + LogLine(0, 2));
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(2));
  ASSERT_EQ(std::rename(log_.c_str(), (log_ + ".1").c_str()), 0);
  // Late writes through the old descriptor, and an unfinished last line.
  AppendToFile(log_ + ".1", LogLine(0, 3) + "tail-without-newline");
  // While only the renamed file exists, it is still followed.
  EXPECT_THAT(Drain(*tailer), ElementsAre(Split(LogLine(0, 3))[0]));
  AppendToFile(log_, LogLine(1, 1) + LogLine(1, 2));
  std::vector<std::string> got = Drain(*tailer);
  EXPECT_THAT(got, ElementsAre("tail-without-newline", Split(LogLine(1, 1))[0],
                               Split(LogLine(1, 2))[0]));
  EXPECT_TRUE(meta_[meta_.size() - 3].unterminated);
  EXPECT_EQ(meta_.back().offset, LogLine(1, 1).size());
  EXPECT_EQ(tailer->stats().rotations, 1u);
  EXPECT_EQ(tailer->stats().unterminated_lines, 1u);
  AppendToFile(log_, LogLine(1, 3));
  EXPECT_THAT(Drain(*tailer), ElementsAre(Split(LogLine(1, 3))[0]));
}

TEST_F(TailerTest, DeletedAndRecreated) {
  AppendToFile(log_, "a\n");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("a"));
  ASSERT_EQ(::unlink(log_.c_str()), 0);
  EXPECT_THAT(Drain(*tailer), IsEmpty());
  AppendToFile(log_, "b\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("b"));
}

TEST_F(TailerTest, CopyTruncateRestartsAtZero) {
  std::string old;
  for (int i = 0; i < 10; ++i) {
    old += LogLine(0, i);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(10));
  Truncate(log_, 0);
  AppendToFile(log_, LogLine(1, 0) + LogLine(1, 1));
  EXPECT_THAT(Drain(*tailer),
              ElementsAre(Split(LogLine(1, 0))[0], Split(LogLine(1, 1))[0]));
  EXPECT_EQ(tailer->stats().truncations, 1u);
}

TEST_F(TailerTest, CopyTruncateRefilledPastTheOldOffsetBeforeThePoll) {
  std::string old;
  for (int i = 0; i < 5; ++i) {
    old += LogLine(0, i);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(5));
  Truncate(log_, 0);
  std::string fresh;
  for (int i = 0; i < 8; ++i) {
    fresh += LogLine(1, i, i);
  }
  AppendToFile(log_, fresh);
  ASSERT_GT(FileSize(log_), old.size());
  EXPECT_EQ(Drain(*tailer), Split(fresh));
}

// ---------------------------------------------------------------------------
// In-place wrap (Console_Log_Max_Kbytes)

TEST_F(TailerTest, WrapWithMoreNewContentThanTheOldOffset) {
  std::string old;
  for (int i = 0; i < 20; ++i) {
    old += LogLine(0, i);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(20));
  std::string fresh;
  for (int i = 0; i < 30; ++i) {
    fresh += LogLine(1, i, i % 7);
  }
  ASSERT_GT(fresh.size(), old.size());
  WriteAt(log_, 0, fresh);  // same inode, no truncation
  EXPECT_EQ(Drain(*tailer), Split(fresh));
  EXPECT_EQ(tailer->stats().wraps, 1u);
  EXPECT_FALSE(tailer->has_guard_ForTest());
}

TEST_F(TailerTest, WrapWithLessNewContentStopsAtTheStaleTail) {
  std::string old;
  for (int i = 0; i < 20; ++i) {
    old += LogLine(0, i, 3);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(20));

  // Domino wraps: new lines from offset 0, the old tail stays behind them.
  std::string fresh;
  for (int i = 0; i < 5; ++i) {
    fresh += LogLine(1, i);
  }
  ASSERT_LT(fresh.size(), old.size());
  WriteAt(log_, 0, fresh);
  EXPECT_EQ(Drain(*tailer), Split(fresh));
  EXPECT_TRUE(last_.held);
  EXPECT_EQ(tailer->stats().wraps, 1u);
  EXPECT_TRUE(tailer->has_guard_ForTest());
  EXPECT_THAT(Drain(*tailer), IsEmpty());

  // Domino keeps writing, over the stale tail and past the old end.
  std::string more;
  for (int i = 5; i < 40; ++i) {
    more += LogLine(1, i, i % 5);
  }
  ASSERT_GT(fresh.size() + more.size(), old.size());
  for (size_t at = 0; at < more.size();) {
    // In pieces, partial lines included.
    const size_t n = std::min<size_t>(more.size() - at, 97);
    WriteAt(log_, fresh.size() + at, more.substr(at, n));
    at += n;
    std::vector<std::string> got = Drain(*tailer);
    for (const std::string& l : got) {
      EXPECT_NE(l.find("gen1"), std::string::npos) << "stale line: " << l;
    }
  }
  EXPECT_FALSE(tailer->has_guard_ForTest());
  EXPECT_EQ(tailer->stats().lines, 20u + 40u);
}

TEST_F(TailerTest, WrapDeliversEveryNewLineExactlyOnceInPieces) {
  std::string old;
  for (int i = 0; i < 30; ++i) {
    old += LogLine(0, i, (i * 7) % 11);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(30));
  std::string fresh;
  for (int i = 0; i < 50; ++i) {
    fresh += LogLine(1, i, (i * 5) % 13);
  }
  std::vector<std::string> got;
  for (size_t at = 0; at < fresh.size();) {
    const size_t n = std::min<size_t>(fresh.size() - at, 61);
    WriteAt(log_, at, fresh.substr(at, n));
    at += n;
    for (std::string& l : Drain(*tailer)) {
      got.push_back(std::move(l));
    }
  }
  EXPECT_EQ(got, Split(fresh));
  EXPECT_EQ(tailer->stats().wraps, 1u);
}

TEST_F(TailerTest, WrapNewLineEndingOnAnOldLineEndWaitsForTheNextOne) {
  // Equal-length lines: every new line ends exactly where an old one did,
  // so a new line cannot be told from the stale tail until Domino writes
  // past it. It is delivered late, never lost, never doubled.
  std::string old;
  for (int i = 0; i < 10; ++i) {
    old += LogLine(0, i);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(10));
  ASSERT_EQ(LogLine(1, 0).size(), LogLine(0, 0).size());
  WriteAt(log_, 0, LogLine(1, 0) + LogLine(1, 1) + LogLine(1, 2));
  EXPECT_EQ(Drain(*tailer), Split(LogLine(1, 0) + LogLine(1, 1)));
  EXPECT_TRUE(last_.held);
  WriteAt(log_, 3 * LogLine(1, 0).size(), LogLine(1, 3));
  EXPECT_EQ(Drain(*tailer), Split(LogLine(1, 2)));
}

TEST_F(TailerTest, UnreadOldLinesAreDeliveredBeforeTheWrappedOnes) {
  std::string old;
  for (int i = 0; i < 10; ++i) {
    old += LogLine(0, i, 4);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(10));
  // Domino writes more, then wraps, before the next poll.
  const std::string unread = LogLine(0, 10) + LogLine(0, 11);
  AppendToFile(log_, unread);
  const std::string fresh = LogLine(1, 0) + LogLine(1, 1);
  WriteAt(log_, 0, fresh);
  EXPECT_EQ(Drain(*tailer), Split(unread + fresh));
}

// Domino writing with Console_Log_Max_Kbytes: each line goes at the write
// position, which returns to 0 when the next line would not fit. `pad`
// chooses line lengths: a period dividing the lines per generation makes
// every new line end exactly where an old one did (the hardest case).
void RunRepeatedWraps(const std::string& log,
                      const std::function<int(int)>& pad, int poll_every,
                      std::vector<std::string>* expected,
                      std::vector<std::string>* got,
                      const std::function<std::vector<std::string>()>& drain) {
  constexpr size_t kMax = 2000;  // Console_Log_Max_Kbytes, scaled down
  uint64_t pos = 0;
  for (int i = 0; i < 300; ++i) {
    const std::string line = LogLine(i / 20, i, pad(i));
    if (pos + line.size() > kMax) {
      pos = 0;  // wrap
    }
    WriteAt(log, pos, line);
    pos += line.size();
    expected->push_back(Split(line)[0]);
    if (i % poll_every == 0) {
      for (std::string& l : drain()) {
        got->push_back(std::move(l));
      }
    }
  }
  for (std::string& l : drain()) {
    got->push_back(std::move(l));
  }
}

TEST_F(TailerTest, RepeatedWrapsDeliverEveryLineOnceInOrder) {
  std::mt19937 rng(
      static_cast<uint32_t>(::testing::UnitTest::GetInstance()->random_seed()));
  const std::vector<std::pair<std::string, std::function<int(int)>>> pads = {
      {"aligned", [](int i) { return i % 9; }},
      {"constant", [](int) { return 0; }},
      {"random", [&rng](int) { return static_cast<int>(rng() % 30); }},
  };
  for (const auto& [name, pad] : pads) {
    for (const int poll_every : {1, 3, 7}) {
      SCOPED_TRACE(
          absl::StrFormat("%s lengths, poll every %d lines", name, poll_every));
      ::unlink(log_.c_str());
      AppendToFile(log_, "");
      auto tailer = Make(Options());
      std::vector<std::string> expected, got;
      RunRepeatedWraps(log_, pad, poll_every, &expected, &got,
                       [&] { return Drain(*tailer); });
      // Every line exactly once, in order (the last one may still wait).
      ExpectAllButMaybeTheLast(got, expected);
      EXPECT_GE(tailer->stats().wraps, 10u);
    }
  }
}

// ---------------------------------------------------------------------------
// Restarts

class TailerRestartTest : public TailerTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<PositionStore>> s =
        PositionStore::Open(dir_.path() + "/state");
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
    key_ = PositionStore::KeyForPath(log_);
  }

  void Save(const Tailer& tailer) {
    ASSERT_TRUE(store_->Save(key_, tailer.position()).ok());
  }

  std::unique_ptr<Tailer> Restart(const TailerOptions& options) {
    absl::StatusOr<std::optional<TailPosition>> saved = store_->Load(key_);
    EXPECT_TRUE(saved.ok()) << saved.status();
    return Make(options, saved.ok() ? *saved : std::nullopt);
  }

  std::unique_ptr<PositionStore> store_;
  std::string key_;
};

TEST_F(TailerRestartTest, RandomWritesPollsAndRestartsNoDuplicateNoGap) {
  std::mt19937 rng(
      static_cast<uint32_t>(::testing::UnitTest::GetInstance()->random_seed()));
  TailerOptions options = Options();
  options.max_bytes_per_poll = 700;
  auto tailer = Make(options);
  std::string written;
  std::vector<std::string> got;
  int next = 0, restarts = 0;
  std::string pending;  // generated text not yet written
  for (int step = 0; step < 400; ++step) {
    const int action = static_cast<int>(rng() % 10);
    if (action < 5) {
      // Write a random number of bytes, cutting lines anywhere.
      while (pending.size() < 400) {
        pending += LogLine(0, next, static_cast<int>(rng() % 40));
        ++next;
      }
      const size_t n = 1 + rng() % 300;
      AppendToFile(log_, pending.substr(0, n));
      written += pending.substr(0, n);
      pending.erase(0, n);
    } else if (action < 9) {
      // One poll; the sink sometimes stops early.
      const size_t stop_after = 1 + rng() % 5;
      size_t n = 0;
      absl::StatusOr<TailPollResult> r =
          tailer->Poll([&got, &n, stop_after](const TailLine& line) {
            got.emplace_back(line.text);
            return ++n < stop_after;
          });
      ASSERT_TRUE(r.ok()) << r.status();
      Save(*tailer);
    } else {
      // Restart from the saved position (saved after every poll).
      tailer.reset();
      tailer = Restart(options);
      ++restarts;
    }
  }
  AppendToFile(log_, pending);
  written += pending;
  for (std::string& l : Drain(*tailer)) {
    got.push_back(std::move(l));
  }
  EXPECT_GT(restarts, 10);
  EXPECT_EQ(got, Split(written));
}

TEST_F(TailerRestartTest, LinesDeliveredAfterTheLastSaveAreDeliveredAgain) {
  AppendToFile(log_, "1\n2\n");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("1", "2"));
  Save(*tailer);
  AppendToFile(log_, "3\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("3"));  // not saved: a crash here
  tailer = Restart(Options());
  AppendToFile(log_, "4\n");
  EXPECT_THAT(Drain(*tailer), ElementsAre("3", "4"));  // at least once
}

TEST_F(TailerRestartTest, NoSavedFileMeansReadNewFileFromStart) {
  TailerOptions options = Options();
  options.start_at = TailerOptions::Start::kEnd;
  auto tailer = Make(options);
  EXPECT_THAT(Drain(*tailer), IsEmpty());
  Save(*tailer);  // "no file yet"
  tailer.reset();
  AppendToFile(log_, "appeared while stopped\n");
  tailer = Restart(options);
  EXPECT_THAT(Drain(*tailer), ElementsAre("appeared while stopped"));
}

TEST_F(TailerRestartTest, RotatedWhileStoppedFinishesTheRenamedFile) {
  AppendToFile(log_, "a1\na2\n");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(2));
  Save(*tailer);
  tailer.reset();
  AppendToFile(log_, "a3\n");
  ASSERT_EQ(std::rename(log_.c_str(), (log_ + ".old").c_str()), 0);
  AppendToFile(log_, "b1\n");
  tailer = Restart(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("a3", "b1"));
  EXPECT_EQ(tailer->stats().resumed_renamed, 1u);
  EXPECT_EQ(tailer->stats().rotations, 1u);
}

TEST_F(TailerRestartTest, RotatedAwayWhileStoppedReadsTheNewFile) {
  AppendToFile(log_, "a1\n");
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(1));
  Save(*tailer);
  tailer.reset();
  // Replaced by a new file (written aside, so it gets another inode).
  AppendToFile(log_ + ".new", "b1\nb2\n");
  ASSERT_EQ(std::rename((log_ + ".new").c_str(), log_.c_str()), 0);
  tailer = Restart(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("b1", "b2"));
  EXPECT_EQ(tailer->stats().lost_files, 1u);
}

TEST_F(TailerRestartTest, TruncatedWhileStopped) {
  AppendToFile(log_, LogLine(0, 0) + LogLine(0, 1) + LogLine(0, 2));
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(3));
  Save(*tailer);
  tailer.reset();
  Truncate(log_, 0);
  AppendToFile(log_, "short\n");
  tailer = Restart(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("short"));
  EXPECT_EQ(tailer->stats().truncations, 1u);
}

TEST_F(TailerRestartTest, WrapWhileStoppedIsDetectedOnRestart) {
  std::string old;
  for (int i = 0; i < 20; ++i) {
    old += LogLine(0, i, 2);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(20));
  Save(*tailer);
  tailer.reset();

  std::string fresh;
  for (int i = 0; i < 6; ++i) {
    fresh += LogLine(1, i);
  }
  ASSERT_LT(fresh.size(), old.size());
  WriteAt(log_, 0, fresh);
  tailer = Restart(Options());
  EXPECT_EQ(Drain(*tailer), Split(fresh));
  EXPECT_EQ(tailer->stats().wraps, 1u);
  std::string more;
  for (int i = 6; i < 30; ++i) {
    more += LogLine(1, i, i % 4);
  }
  WriteAt(log_, fresh.size(), more);
  EXPECT_EQ(Drain(*tailer), Split(more));
}

TEST_F(TailerRestartTest, RestartInTheMiddleOfAWrappedGenerationKeepsTheGuard) {
  std::string old;
  for (int i = 0; i < 20; ++i) {
    old += LogLine(0, i, 6);
  }
  AppendToFile(log_, old);
  auto tailer = Make(Options());
  EXPECT_THAT(Drain(*tailer), SizeIs(20));
  std::string fresh;
  for (int i = 0; i < 4; ++i) {
    fresh += LogLine(1, i);
  }
  WriteAt(log_, 0, fresh);
  EXPECT_EQ(Drain(*tailer), Split(fresh));
  Save(*tailer);
  tailer.reset();

  // While stopped, Domino writes three more lines over the stale tail.
  const std::string more = LogLine(1, 4) + LogLine(1, 5) + LogLine(1, 6);
  WriteAt(log_, fresh.size(), more);
  tailer = Restart(Options());
  EXPECT_EQ(Drain(*tailer), Split(more));
  EXPECT_TRUE(tailer->has_guard_ForTest());
  EXPECT_EQ(tailer->stats().wraps, 0u);
}

TEST_F(TailerRestartTest, RestartInsideAnOverLongLine) {
  AppendToFile(log_, "ok\n" + std::string(3000, 'z'));
  auto tailer = Make(Options());
  std::vector<std::string> got = Drain(*tailer);
  ASSERT_THAT(got, SizeIs(2));
  EXPECT_TRUE(meta_[1].truncated);
  Save(*tailer);
  tailer.reset();
  AppendToFile(log_, std::string(500, 'z') + "\nnext\n");
  tailer = Restart(Options());
  EXPECT_THAT(Drain(*tailer), ElementsAre("next"));
}

// Domino wrapping with lines written in pieces, polls at random points and
// agent restarts in between. With the default persisted sample every line
// arrives exactly once, in order. With a tiny sample (2 records) a restart
// leaves gaps in the guard: lines may then be held or lost, but a stale line
// is never delivered and the order is kept.
TEST_F(TailerRestartTest, WrapStressWithPartialWritesAndRestarts) {
  std::mt19937 rng(
      static_cast<uint32_t>(::testing::UnitTest::GetInstance()->random_seed()));
  for (const size_t sample : {size_t{1024}, size_t{2}}) {
    for (int round = 0; round < 4; ++round) {
      SCOPED_TRACE(
          absl::StrFormat("sample %d, round %d, seed %d", sample, round,
                          ::testing::UnitTest::GetInstance()->random_seed()));
      ::unlink(log_.c_str());
      ::unlink((store_->dir() + "/" + key_ + ".pos").c_str());
      AppendToFile(log_, "");
      TailerOptions options = Options();
      options.persisted_dense_lines = sample;
      options.persisted_sparse_lines = sample;
      auto tailer = Make(options);
      std::vector<std::string> expected, got;
      const auto poll = [&] {
        for (std::string& l : Drain(*tailer)) {
          got.push_back(std::move(l));
        }
      };
      constexpr size_t kMax = 3000;
      uint64_t pos = 0;
      int restarts = 0;
      for (int i = 0; i < 400; ++i) {
        const std::string line =
            LogLine(round, i, static_cast<int>(rng() % 25));
        if (pos + line.size() > kMax) {
          pos = 0;
        }
        if (rng() % 4 == 0) {
          const size_t cut = 1 + rng() % (line.size() - 1);
          WriteAt(log_, pos, line.substr(0, cut));
          poll();
          WriteAt(log_, pos + cut, line.substr(cut));
        } else {
          WriteAt(log_, pos, line);
        }
        pos += line.size();
        expected.push_back(Split(line)[0]);
        if (rng() % 3 == 0) {
          poll();
          if (rng() % 8 == 0) {
            Save(*tailer);
            tailer = Restart(options);
            ++restarts;
          }
        }
      }
      poll();
      EXPECT_GT(restarts, 3);
      if (sample == 1024) {
        ExpectAllButMaybeTheLast(got, expected);
      } else {
        // A subsequence of the written lines: nothing twice, nothing stale.
        size_t at = 0;
        for (const std::string& l : got) {
          while (at < expected.size() && expected[at] != l) {
            ++at;
          }
          ASSERT_LT(at, expected.size()) << "duplicate or stale line: " << l;
          ++at;
        }
        EXPECT_GT(got.size(), expected.size() * 9 / 10);
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Change notification

TEST(PollingNotifierTest, ReturnsAtOnceWhenWokenOrWithZeroInterval) {
  PollingNotifier zero(absl::ZeroDuration());
  absl::StatusOr<bool> r = zero.Wait(absl::Hours(1));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);

  PollingNotifier hourly(absl::Hours(1));
  ASSERT_TRUE(hourly.Watch("/nonexistent/console.log").ok());
  hourly.Wake();
  r = hourly.Wait(absl::Hours(1));  // returns at once: woken
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
}

TEST(InotifyNotifierTest, ReportsCreationWritesAndRenamesOfWatchedFiles) {
  TempDir dir;
  const std::string log = dir.path() + "/console.log";
  absl::StatusOr<std::unique_ptr<InotifyNotifier>> n =
      InotifyNotifier::Create();
  if (!n.ok()) {
    // Linux CI always has inotify; elsewhere the polling notifier covers it.
    if (std::getenv("CI") != nullptr) {
      FAIL() << "CI is set but inotify is unavailable: " << n.status();
    }
    GTEST_SKIP() << "inotify unavailable: " << n.status();
  }
  ASSERT_TRUE((*n)->Watch(log).ok());
  const auto changed = [&n] {
    absl::StatusOr<bool> r = (*n)->Wait(absl::ZeroDuration());
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && *r;
  };
  EXPECT_FALSE(changed());
  AppendToFile(log, "created\n");
  EXPECT_TRUE(changed());
  EXPECT_FALSE(changed());
  AppendToFile(dir.path() + "/other.log", "unrelated\n");
  EXPECT_FALSE(changed());
  AppendToFile(log, "more\n");
  EXPECT_TRUE(changed());
  ASSERT_EQ(std::rename(log.c_str(), (log + ".1").c_str()), 0);
  EXPECT_TRUE(changed());
  (*n)->Wake();
  EXPECT_TRUE(changed());
  EXPECT_FALSE(changed());
}

TEST(ChangeNotifierTest, FallsBackToPolling) {
  auto forced = CreateChangeNotifier(
      {"/tmp/x/console.log"},
      ChangeNotifierOptions{.poll_interval = absl::ZeroDuration(),
                            .force_polling = true});
  EXPECT_NE(dynamic_cast<PollingNotifier*>(forced.get()), nullptr);
  // A directory that does not exist cannot be watched: polling.
  auto fallback = CreateChangeNotifier(
      {"/nonexistent-rampart-dir/console.log"},
      ChangeNotifierOptions{.poll_interval = absl::ZeroDuration()});
  EXPECT_NE(dynamic_cast<PollingNotifier*>(fallback.get()), nullptr);
  absl::StatusOr<bool> r = fallback->Wait(absl::Hours(1));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(*r);
}

}  // namespace
}  // namespace rampart::agent
