// Parsing the `rampartctl import` file: table-driven, hostile input included.

#include "ctl/import_file.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::ctl {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// "line:prefix:reason" for compact expectations.
std::vector<std::string> Entries(const ImportFile& f) {
  std::vector<std::string> out;
  for (const ImportFileEntry& e : f.entries) {
    out.push_back(std::to_string(e.line) + ":" + e.prefix + ":" + e.reason);
  }
  return out;
}

// "line: message-substring" matchers are too loose for a table; errors are
// compared as "line|message" with the message checked by substring.
struct ErrorWant {
  uint32_t line;
  std::string substring;
};

struct Case {
  std::string name;
  ImportFileFormat format;
  std::string text;
  std::vector<std::string> entries;
  std::vector<ErrorWant> errors;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class ImportFileTest : public ::testing::TestWithParam<Case> {};

TEST_P(ImportFileTest, Parses) {
  const Case& c = GetParam();
  absl::StatusOr<ImportFile> f = ParseImportFile(c.text, c.format);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_THAT(Entries(*f), ElementsAreArray(c.entries));
  ASSERT_EQ(f->errors.size(), c.errors.size());
  EXPECT_EQ(f->error_count, c.errors.size());
  for (size_t i = 0; i < c.errors.size(); ++i) {
    EXPECT_EQ(f->errors[i].line, c.errors[i].line) << i;
    EXPECT_THAT(f->errors[i].message, HasSubstr(c.errors[i].substring)) << i;
  }
}

const auto kPlain = ImportFileFormat::kPlain;
const auto kCsv = ImportFileFormat::kCsv;

INSTANTIATE_TEST_SUITE_P(
    Files, ImportFileTest,
    ::testing::Values(
        Case{"PlainBasics",
             kPlain,
             "198.51.100.7\n203.0.113.0/24\n2001:DB8::1\n2001:db8::/32\n",
             {"1:198.51.100.7:", "2:203.0.113.0/24:", "3:2001:db8::1:",
              "4:2001:db8::/32:"},
             {}},
        Case{"PlainCommentsBlanksAndReasons",
             kPlain,
             "# feed\n\n   \n198.51.100.7 # smtp spray \n\t10.0.0.0/8#x\n"
             "   # indented comment\n",
             {"4:198.51.100.7:smtp spray", "5:10.0.0.0/8:x"},
             {}},
        Case{"PlainCrlfAndNoFinalNewline",
             kPlain,
             "198.51.100.7\r\n198.51.100.8",
             {"1:198.51.100.7:", "2:198.51.100.8:"},
             {}},
        Case{"PlainHostBitsAndBadAddresses",
             kPlain,
             "198.51.100.7/24\n198.51.100.300\nexample.com\n1.2.3\n"
             "01.2.3.4\n::ffff:1.2.3.4/129\n",
             {},
             {{1, "host bits set; did you mean 198.51.100.0/24?"},
              {2, "not a valid IPv4 or IPv6 address"},
              {3, "not a valid"},
              {4, "not a valid"},
              {5, "not a valid"},
              {6, "invalid prefix length"}}},
        Case{"PlainTwoAddressesOnALine",
             kPlain,
             "1.2.3.4 5.6.7.8\n",
             {},
             {{1, "expected one IP or CIDR"}}},
        Case{"PlainLongReason",
             kPlain,
             "1.2.3.4 # " + std::string(257, 'r') + "\n1.2.3.5 # " +
                 std::string(256, 'r') + "\n",
             {"2:1.2.3.5:" + std::string(256, 'r')},
             {{1, "reason is 257 bytes long; at most 256"}}},
        // Hostile bytes: checked per physical line before parsing.
        Case{"HostileControlCharacters",
             kPlain,
             std::string("1.2.3.4\n1.2.3.5\0\n1.2.3.6 # \x1b[2J\n", 29),
             {},
             {{2, "control character 0x00 at column 8"},
              {3, "control character 0x1b at column 11"}}},
        Case{"HostileInvalidUtf8",
             kPlain,
             "1.2.3.4 # caf\xe9\n",
             {},
             {{1, "not valid UTF-8"}}},
        Case{"HostileOverlongLine",
             kPlain,
             "1.2.3.4 # " + std::string(5000, 'a') + "\n1.2.3.5\n",
             {},
             {{1, "line is 5010 bytes long; at most 4096"}}},
        Case{"HostileBareCarriageReturn",
             kPlain,
             "1.2.3.4\r1.2.3.5\n",
             {},
             {{1, "control character 0x0d"}}},
        Case{"CsvAsExported",
             kCsv,
             "id,prefix,created_at,expires_at,origin,scope,escalation_level,"
             "reason\r\n"
             "42,198.51.100.0/24,2024-11-23T08:00:00Z,2024-11-24T08:00:00Z,"
             "auto,all_ports,1,\"spray, 31 failures\"\r\n"
             "43,2001:db8::/64,2024-11-23T08:00:00Z,,manual,mail,0,\"say "
             "\"\"hi\"\"\"\r\n",
             {"2:198.51.100.0/24:spray, 31 failures",
              "3:2001:db8::/64:say \"hi\""},
             {}},
        Case{"CsvPrefixOnlyWithBlankLines",
             kCsv,
             "Prefix\n\n198.51.100.7\n \n198.51.100.8\n",
             {"3:198.51.100.7:", "5:198.51.100.8:"},
             {}},
        Case{"CsvMultiLineQuotedReasonKeepsLineNumbers",
             kCsv,
             "prefix,reason\n1.2.3.4,\"two\nlines\"\n1.2.3.5,x\n",
             {"2:1.2.3.4:two\nlines", "4:1.2.3.5:x"},
             {}},
        Case{"CsvBadRows",
             kCsv,
             "prefix,expires_at,scope\n"
             "1.2.3.4,tomorrow,\n"
             "1.2.3.5,,ssh\n"
             "1.2.3.6\n"
             "1.2.3.7/8,,\n"
             ",,\n"
             "1.2.3.8,2025-01-01T00:00:00Z,web\n",
             {"7:1.2.3.8:"},
             {{2, "expires_at \"tomorrow\" is not an RFC 3339 time"},
              {3, "unknown scope \"ssh\""},
              {4, "1 fields; the header has 3"},
              {5, "host bits set"},
              {6, "empty prefix"}}},
        Case{"CsvMalformedQuotes",
             kCsv,
             "prefix,reason\n"
             "1.2.3.4,a\"b\n"
             "1.2.3.5,\"a\"b\n"
             "1.2.3.6,ok\n"
             "1.2.3.7,\"never closed\n",
             {"4:1.2.3.6:ok"},
             {{2, "quote inside an unquoted field"},
              {3, "text after a closing quote"},
              {5, "unterminated quoted field"}}}),
    [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

TEST(ImportFileLimitsTest, TooManyBytes) {
  ImportFileLimits limits;
  limits.max_bytes = 16;
  absl::StatusOr<ImportFile> f =
      ParseImportFile("198.51.100.7\n198.51.100.8\n", kPlain, limits);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("26 bytes; one import takes at "
                                              "most 16 bytes"));
}

TEST(ImportFileLimitsTest, TooManyLines) {
  ImportFileLimits limits;
  limits.max_lines = 3;
  absl::StatusOr<ImportFile> f = ParseImportFile("\n\n\n\n", kPlain, limits);
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(f.status().message(), HasSubstr("4 lines; one import takes at "
                                              "most 3"));
}

TEST(ImportFileLimitsTest, ErrorsAreCountedButOnlyTheFirstAreKept) {
  std::string text;
  for (int i = 0; i < 100; ++i) {
    text += "bad\n";
  }
  absl::StatusOr<ImportFile> f = ParseImportFile(text, kPlain);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->error_count, 100u);
  ASSERT_EQ(f->errors.size(), 20u);
  EXPECT_EQ(f->errors.back().line, 20u);
}

TEST(ImportFileLimitsTest, OverlongCsvRecordAcrossLines) {
  ImportFileLimits limits;
  limits.max_line_bytes = 20;
  absl::StatusOr<ImportFile> f = ParseImportFile(
      "prefix,reason\n1.2.3.4,\"aaaaaaaaa\nbbbbbbbbbb\ncccccc\"\n1.2.3.5,x\n",
      kCsv, limits);
  ASSERT_TRUE(f.ok());
  ASSERT_GE(f->errors.size(), 1u);
  EXPECT_EQ(f->errors[0].line, 2u);
  EXPECT_THAT(f->errors[0].message, HasSubstr("record longer than 20 bytes"));
}

TEST(ImportFileTest, BomIsRemovedFromTheTextToSend) {
  absl::StatusOr<ImportFile> f = ParseImportFile(
      "\xEF\xBB\xBF"
      "198.51.100.7\n",
      kPlain);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->text, "198.51.100.7\n");
  EXPECT_THAT(Entries(*f), ElementsAre("1:198.51.100.7:"));
}

TEST(ImportFileTest, CsvExpiryIsParsed) {
  absl::StatusOr<ImportFile> f = ParseImportFile(
      "prefix,expires_at\n1.2.3.4,2025-01-01T00:00:00Z\n1.2.3.5,\n", kCsv);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->entries.size(), 2u);
  EXPECT_EQ(f->entries[0].expires_at, absl::FromUnixSeconds(1735689600));
  EXPECT_FALSE(f->entries[1].expires_at.has_value());
}

struct HeaderCase {
  std::string text;
  std::string substring;
};

void PrintTo(const HeaderCase& c, std::ostream* os) {
  *os << ::testing::PrintToString(c.text);
}

class CsvHeaderTest : public ::testing::TestWithParam<HeaderCase> {};

TEST_P(CsvHeaderTest, BadHeadersRejectTheFile) {
  absl::StatusOr<ImportFile> f = ParseImportFile(GetParam().text, kCsv);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(f.status().message(), HasSubstr(GetParam().substring));
}

INSTANTIATE_TEST_SUITE_P(
    Headers, CsvHeaderTest,
    ::testing::Values(
        HeaderCase{"id,reason\n1,x\n", "has no \"prefix\" column"},
        HeaderCase{"prefix,expire_at\n", "unknown CSV column \"expire_at\""},
        HeaderCase{"prefix,prefix\n", "duplicate CSV column \"prefix\""},
        HeaderCase{"", "no header line"},
        HeaderCase{"\n\n", "no header line"}));

TEST(DetectImportFormatTest, Detects) {
  EXPECT_EQ(DetectImportFormat("198.51.100.7\n"), kPlain);
  EXPECT_EQ(DetectImportFormat("# comment\n\nprefix,reason\n"), kCsv);
  EXPECT_EQ(DetectImportFormat("\xEF\xBB\xBF\"id\",\"Prefix\"\r\n"), kCsv);
  EXPECT_EQ(DetectImportFormat("id,prefix,created_at\n"), kCsv);
  EXPECT_EQ(DetectImportFormat("198.51.100.7 # prefix\n"), kPlain);
  EXPECT_EQ(DetectImportFormat(""), kPlain);
}

}  // namespace
}  // namespace rampart::ctl
