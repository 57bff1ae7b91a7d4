#include "agent/parse_command.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/domino/line_reader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "rampart-parse-XXXXXX")
            .string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& content) {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs the command with stdout/stderr captured in memory.
struct RunResult {
  int code;
  std::string out;
  std::string err;
};

RunResult RunCommand(const ParseCommandOptions& options) {
  char* out_buf = nullptr;
  char* err_buf = nullptr;
  size_t out_len = 0, err_len = 0;
  std::FILE* out = open_memstream(&out_buf, &out_len);
  std::FILE* err = open_memstream(&err_buf, &err_len);
  const int code = RunParseCommand(options, out, err);
  std::fclose(out);
  std::fclose(err);
  RunResult r{code, std::string(out_buf, out_len),
              std::string(err_buf, err_len)};
  std::free(out_buf);
  std::free(err_buf);
  return r;
}

constexpr char kA[] =
    "06.03.2024 10:15:32   smtp: jdoe [198.51.100.7] authentication failure "
    "using internet password\n";
constexpr char kB[] =
    "06.03.2024 10:15:32   SMTP Server: Authentication failed for user jdoe "
    "; connecting host 198.51.100.7\n";

TEST(ParseCommandTest, PrintsTheDocumentedJsonWithLineNumbersAndDedup) {
  TempDir dir;
  const std::string f =
      dir.Write("console.log", std::string("banner\n") + kA + kB);
  RunResult r = RunCommand({.files = {f}});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            "{\"line\":2,\"kind\":\"auth_failure\",\"protocol\":\"smtp\","
            "\"ip\":\"198.51.100.7\",\"user\":\"jdoe\",\"time\":\"2024-03-"
            "06T10:15:32\",\"dedup\":false}\n"
            "{\"line\":3,\"kind\":\"auth_failure\",\"protocol\":\"smtp\","
            "\"ip\":\"198.51.100.7\",\"user\":\"jdoe\",\"time\":\"2024-03-"
            "06T10:15:32\",\"dedup\":true}\n");
}

TEST(ParseCommandTest, UnreadableFileIsReportedAndOthersStillRun) {
  TempDir dir;
  const std::string good = dir.Write("good.log", kA);
  const std::string missing = dir.path() + "/missing.log";
  RunResult r = RunCommand({.files = {missing, dir.path(), good}});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("cannot open " + missing +
                               ": No such file or directory"));
  EXPECT_THAT(r.err, HasSubstr("cannot read " + dir.path()));
  // Several files: each object names its file.
  EXPECT_THAT(r.out, HasSubstr("\"file\":\"" + good + "\""));
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
}

TEST(ParseCommandTest, DedupStateIsPerFile) {
  TempDir dir;
  const std::string a = dir.Write("a.log", kA);
  const std::string b = dir.Write("b.log", kB);
  RunResult r = RunCommand({.files = {a, b}});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, Not(HasSubstr("\"dedup\":true")));
}

TEST(ParseCommandTest, StatsAndFinalLineWithoutNewline) {
  TempDir dir;
  std::string content = std::string(kA) + kB;
  content.pop_back();  // partially written last line
  const std::string f = dir.Write("c.log", content);
  RunResult r = RunCommand({.files = {f}, .stats = true});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("lines=2 recognised=2 dedup=1 truncated=0 "
                               "date_order=auto"));
}

TEST(ParseCommandTest, DateOrderOptionIsHonoured) {
  TempDir dir;
  const std::string f = dir.Write(
      "d.log",
      "03-06-2024 10:15:32   smtp: a [192.0.2.1] authentication failure "
      "using internet password\n");
  RunResult mdy =
      RunCommand({.parser = {.date_order = DateOrder::kMdy}, .files = {f}});
  EXPECT_THAT(mdy.out, HasSubstr("\"time\":\"2024-03-06T10:15:32\""));
  RunResult dmy =
      RunCommand({.parser = {.date_order = DateOrder::kDmy}, .files = {f}});
  EXPECT_THAT(dmy.out, HasSubstr("\"time\":\"2024-06-03T10:15:32\""));
}

TEST(LineReaderTest, OverlongLinesAreCutAndCounted) {
  TempDir dir;
  const std::string f =
      dir.Write("long.log", std::string(100, 'x') + "\nshort\r\n" +
                                std::string(250, 'y') + "\nlast");
  absl::StatusOr<std::unique_ptr<LineReader>> reader =
      LineReader::Open(f, /*max_line=*/64);
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string_view line;
  bool truncated = false;
  std::vector<std::pair<std::string, bool>> got;
  while (true) {
    absl::StatusOr<bool> more = (*reader)->Next(&line, &truncated);
    ASSERT_TRUE(more.ok()) << more.status();
    if (!*more) break;
    got.emplace_back(std::string(line), truncated);
  }
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[0], std::make_pair(std::string(64, 'x'), true));
  EXPECT_EQ(got[1], std::make_pair(std::string("short\r"), false));
  EXPECT_EQ(got[2], std::make_pair(std::string(64, 'y'), true));
  EXPECT_EQ(got[3], std::make_pair(std::string("last"), false));
  EXPECT_EQ((*reader)->line_number(), 4u);
  EXPECT_EQ((*reader)->truncated_lines(), 2u);
}

TEST(LineReaderTest, LinesSpanningManyBufferFills) {
  TempDir dir;
  std::string content;
  for (int i = 0; i < 200000; ++i) {
    content += "line " + std::to_string(i) + "\n";
  }
  const std::string f = dir.Write("many.log", content);
  absl::StatusOr<std::unique_ptr<LineReader>> reader = LineReader::Open(f);
  ASSERT_TRUE(reader.ok());
  std::string_view line;
  bool truncated = false;
  int n = 0;
  while (*(*reader)->Next(&line, &truncated)) {
    ASSERT_EQ(line, "line " + std::to_string(n));
    ++n;
  }
  EXPECT_EQ(n, 200000);
}

}  // namespace
}  // namespace rampart::agent
