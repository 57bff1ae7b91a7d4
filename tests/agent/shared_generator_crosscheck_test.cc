// Cross-checks the parser against the independent Domino log generator in
// ../shared/tools/gen_domino_log.py and its ground truth. The generator is
// not part of this repository: the test runs whenever ../shared exists
// (always in CI, where its absence is a failure) and otherwise reports itself
// skipped with the reason.

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "agent/domino/domino_parser.h"
#include "agent/domino/line_reader.h"
#include "agent/domino/pair_deduplicator.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

namespace fs = std::filesystem;

constexpr int kLines = 50000;

fs::path SharedDir() {
  if (const char* env = std::getenv("RAMPART_SHARED_DIR")) {
    return env;
  }
  return fs::path(RAMPART_SOURCE_DIR) / ".." / "shared";
}

std::vector<std::vector<std::string>> ReadTsv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    rows.push_back(absl::StrSplit(line, '\t'));
  }
  return rows;
}

std::string Iso(const absl::CivilSecond& t) {
  std::ostringstream s;
  s << t;  // absl prints "2024-03-06T10:15:32"
  return s.str();
}

struct FormatCase {
  std::string generator_format;
  DateOrder order;
};

class SharedGeneratorCrossCheck : public ::testing::TestWithParam<FormatCase> {
 protected:
  void SetUp() override {
    const fs::path gen = SharedDir() / "tools" / "gen_domino_log.py";
    if (!fs::exists(gen)) {
      if (std::getenv("CI") != nullptr) {
        FAIL() << "CI must provide " << gen;
      }
      GTEST_SKIP() << "independent generator not found at " << gen
                   << " (../shared is only present in CI); skipping the "
                      "cross-check";
    }
    dir_ = fs::temp_directory_path() /
           ("rampart-xcheck-" + GetParam().generator_format + "-" +
            std::to_string(::getpid()));
    fs::create_directories(dir_);
    const std::string cmd =
        "python3 '" + gen.string() + "' --lines " + std::to_string(kLines) +
        " --attack-ratio 0.25 --ips 400 --seed 20240306 --date-format " +
        GetParam().generator_format + " --events '" +
        (dir_ / "events.tsv").string() + "' --truth '" +
        (dir_ / "truth.tsv").string() + "' > '" +
        (dir_ / "console.log").string() + "'";
    const int rc = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << cmd;
  }
  void TearDown() override {
    if (!dir_.empty()) {
      fs::remove_all(dir_);
    }
  }
  fs::path dir_;
};

TEST_P(SharedGeneratorCrossCheck, MatchesGroundTruthExactly) {
  // Parse the whole log.
  DominoParser parser(DominoParserOptions{.date_order = GetParam().order});
  PairDeduplicator dedup;
  absl::StatusOr<std::unique_ptr<LineReader>> reader =
      LineReader::Open((dir_ / "console.log").string());
  ASSERT_TRUE(reader.ok()) << reader.status();

  // Per auth-failure line, in log order: time, ip, "<proto>_<inet|task>".
  std::vector<std::string> got_events;
  struct Counts {
    std::map<std::string, int> by_column;
    int attempts = 0;
  };
  std::map<std::string, Counts> got;  // by canonical IP
  std::string_view line;
  bool truncated = false;
  uint64_t total_lines = 0;
  ParsedLine p;
  while (*(*reader)->Next(&line, &truncated)) {
    ++total_lines;
    if (!parser.Parse(line, &p)) {
      continue;
    }
    const bool dup = dedup.Observe(p);
    const std::string ip = p.ip ? p.ip->ToString() : "";
    switch (p.kind) {
      case EventKind::kAuthFailure:
      case EventKind::kLockout: {
        ASSERT_TRUE(p.has_time) << line;
        ASSERT_TRUE(p.ip.has_value()) << line;
        const std::string col =
            std::string(ProtocolName(p.protocol)) +
            (p.family == LineFamily::kServerTask ? "_task" : "_inet");
        got_events.push_back(Iso(p.time) + "\t" + ip + "\t" + col);
        Counts& c = got[ip];
        ++c.by_column[col];
        ++c.by_column["fail_lines"];
        if (p.kind == EventKind::kLockout) {
          ++c.by_column["lockout"];
        }
        if (!dup) {
          ++c.attempts;
        }
        break;
      }
      case EventKind::kPolicyReject:
        ++got[ip].by_column["policy_reject"];
        break;
      case EventKind::kTlsFailure:
        ++got[ip].by_column["tls_fail"];
        break;
      default:
        break;
    }
  }
  EXPECT_EQ(total_lines, static_cast<uint64_t>(kLines));

  // 1. Every auth-failure line, in order, exactly.
  std::vector<std::string> want_events;
  for (const auto& row : ReadTsv(dir_ / "events.tsv")) {
    ASSERT_EQ(row.size(), 4u);
    want_events.push_back(row[0] + "\t" + row[1] + "\t" + row[2]);
  }
  ASSERT_GT(want_events.size(), 10000u);
  ASSERT_EQ(got_events.size(), want_events.size());
  for (size_t i = 0; i < want_events.size(); ++i) {
    ASSERT_EQ(got_events[i], want_events[i]) << "auth-failure line #" << i;
  }

  // 2. Per-IP truth: every line-count column exactly.
  const auto truth = ReadTsv(dir_ / "truth.tsv");
  ASSERT_GT(truth.size(), 1u);
  const std::vector<std::string>& header = truth[0];
  int truth_attempts = 0, got_attempts = 0;
  size_t truth_ips = 0;
  for (size_t r = 1; r < truth.size(); ++r) {
    const auto& row = truth[r];
    ASSERT_EQ(row.size(), header.size());
    const std::string& ip = row[0];
    ++truth_ips;
    const Counts& c = got[ip];
    for (size_t k = 3; k < header.size(); ++k) {
      const std::string& col = header[k];
      if (col == "fail_lines" || col == "lockout" || col == "policy_reject" ||
          col == "tls_fail" || col.ends_with("_task") ||
          col.ends_with("_inet")) {
        const auto it = c.by_column.find(col);
        EXPECT_EQ(it == c.by_column.end() ? 0 : it->second, std::stoi(row[k]))
            << ip << " column " << col;
      }
    }
    // 3. Attempts: the A+B pair collapse. An A-only attempt and a B-only
    // attempt from the same IP, user, protocol and second are
    // indistinguishable from one A+B pair in the log itself, so the parser
    // may count fewer attempts than the generator made, never more.
    const int want = std::stoi(row[2]);
    EXPECT_LE(c.attempts, want) << ip;
    truth_attempts += want;
    got_attempts += c.attempts;
  }
  EXPECT_EQ(got.size(), truth_ips) << "the parser saw addresses the truth "
                                      "does not list";
  EXPECT_LE(truth_attempts - got_attempts, truth_attempts / 1000)
      << "attempts: truth " << truth_attempts << ", parsed " << got_attempts;
  RecordProperty("attempts_truth", truth_attempts);
  RecordProperty("attempts_parsed", got_attempts);
}

INSTANTIATE_TEST_SUITE_P(
    DateFormats, SharedGeneratorCrossCheck,
    ::testing::Values(FormatCase{"dmy-dash", DateOrder::kDmy},
                      FormatCase{"dmy-dot", DateOrder::kAuto},
                      FormatCase{"mdy-slash", DateOrder::kMdy},
                      FormatCase{"mdy-slash-12h", DateOrder::kAuto},
                      FormatCase{"ymd-dash", DateOrder::kAuto}),
    [](const ::testing::TestParamInfo<FormatCase>& param_info) {
      std::string n = param_info.param.generator_format;
      std::replace(n.begin(), n.end(), '-', '_');
      return n;
    });

}  // namespace
}  // namespace rampart::agent
