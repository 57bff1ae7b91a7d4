// Rendering building blocks: tables, fields, CSV, sanitizing hostile text.

#include "ctl/output.h"

#include <sstream>
#include <string>

#include "ctl/render.h"
#include "ctl/text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::ctl {
namespace {

TEST(TableTest, AlignsColumnsAndLeavesNoTrailingBlanks) {
  Table t({{"ID", Table::Align::kRight}, {"NAME"}, {"NOTE"}});
  t.AddRow({"7", "a", "x"});
  t.AddRow({"1234", "longer name", ""});
  t.AddRow({"9", "ü", "last"});
  std::ostringstream out;
  t.Render(out);
  EXPECT_EQ(out.str(),
            "  ID  NAME         NOTE\n"
            "   7  a            x\n"
            "1234  longer name\n"
            "   9  ü            last\n");
}

TEST(TableTest, SanitizesCellsAndPadsMissingOnes) {
  Table t({{"A"}, {"B"}});
  t.AddRow({"\x1b[2J"});
  std::ostringstream out;
  t.Render(out);
  EXPECT_EQ(out.str(), "A        B\n\\x1b[2J\n");
}

TEST(FieldsTest, AlignsValues) {
  Fields f;
  f.Add("Address", "198.51.100.7");
  f.Add("Own address", "no");
  f.Add("Empty", "");
  std::ostringstream out;
  f.Render(out);
  EXPECT_EQ(out.str(),
            "Address:      198.51.100.7\n"
            "Own address:  no\n"
            "Empty:\n");
}

TEST(CsvTest, QuotesOnlyWhenNeeded) {
  std::ostringstream out;
  WriteCsvRow(out, {"plain", "a,b", "say \"hi\"", "two\nlines", ""});
  EXPECT_EQ(out.str(), "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n");
}

TEST(CsvTest, CsvTextDefusesFormulas) {
  EXPECT_EQ(CsvText("=1+2"), "'=1+2");
  EXPECT_EQ(CsvText("+cmd"), "'+cmd");
  EXPECT_EQ(CsvText("-x"), "'-x");
  EXPECT_EQ(CsvText("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(CsvText("admin"), "admin");
  EXPECT_EQ(CsvText("a\tb"), "a\\x09b");
}

struct SanitizeCase {
  std::string in;
  std::string want;
};

void PrintTo(const SanitizeCase& c, std::ostream* os) {
  *os << ::testing::PrintToString(c.in);
}

class SanitizeTest : public ::testing::TestWithParam<SanitizeCase> {};

TEST_P(SanitizeTest, Sanitizes) {
  const std::string got = SanitizeForTerminal(GetParam().in);
  EXPECT_EQ(got, GetParam().want);
  EXPECT_TRUE(IsValidUtf8(got));
}

INSTANTIATE_TEST_SUITE_P(
    Hostile, SanitizeTest,
    ::testing::Values(
        SanitizeCase{"admin", "admin"}, SanitizeCase{"jürgen", "jürgen"},
        SanitizeCase{"日本", "日本"}, SanitizeCase{"a\\b", "a\\\\b"},
        SanitizeCase{"\x1b]52;c;QUFB\x07", "\\x1b]52;c;QUFB\\x07"},
        SanitizeCase{"line\nbreak\r", "line\\x0abreak\\x0d"},
        SanitizeCase{std::string("nul\0byte", 8), "nul\\x00byte"},
        SanitizeCase{"del\x7f", "del\\x7f"},
        SanitizeCase{"latin1 \xe9t\xe9", "latin1 \\xe9t\\xe9"},
        SanitizeCase{"c1 \xc2\x9b", "c1 \\xc2\\x9b"},         // U+009B CSI
        SanitizeCase{"bidi \xe2\x80\xae", "bidi \\u{202e}"},  // RLO
        SanitizeCase{"overlong \xc0\xaf", "overlong \\xc0\\xaf"},
        SanitizeCase{"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        SanitizeCase{"cut \xe6\x97", "cut \\xe6\\x97"}));

TEST(BytesToUtf8Test, KeepsUtf8AndDecodesOtherBytesAsLatin1) {
  EXPECT_EQ(BytesToUtf8("jürgen"), "jürgen");
  EXPECT_EQ(BytesToUtf8("j\xfcrgen"), "j\xc3\xbcrgen");
  EXPECT_EQ(BytesToUtf8("\xff\xfe"), "\xc3\xbf\xc3\xbe");
  EXPECT_TRUE(IsValidUtf8(BytesToUtf8("\x80\xc0\xed\xa0\x80")));
}

TEST(JsonTest, OutputIsValidEvenForHostileStrings) {
  Json doc = {{"user", BytesToUtf8("evil\x1b\xff\"")}, {"n", 1}};
  std::ostringstream out;
  WriteJson(out, doc);
  EXPECT_EQ(out.str(),
            "{\n  \"user\": \"evil\\u001b\xc3\xbf\\\"\",\n  \"n\": 1\n}\n");
  std::ostringstream line;
  WriteJsonLine(line, doc);
  EXPECT_EQ(line.str(), "{\"user\":\"evil\\u001b\xc3\xbf\\\"\",\"n\":1}\n");
}

TEST(RenderTest, EnumNames) {
  EXPECT_EQ(EnumName(v1::BAN_ORIGIN_LOCAL_FALLBACK), "local_fallback");
  EXPECT_EQ(EnumName(v1::BAN_SCOPE_ALL_PORTS), "all_ports");
  EXPECT_EQ(EnumName(v1::EVENT_KIND_AUTH_FAILURE), "auth_failure");
  EXPECT_EQ(EnumName(v1::PROTOCOL_UNSPECIFIED), "unspecified");
  EXPECT_EQ(EnumName(static_cast<v1::BanOrigin>(99)), "99");
}

TEST(RenderTest, Times) {
  const absl::Time t = absl::FromUnixSeconds(1732352400);
  EXPECT_EQ(FormatUtc(t), "2024-11-23T09:00:00Z");
  EXPECT_EQ(FormatUtc(t + absl::Milliseconds(500)), "2024-11-23T09:00:00.5Z");
  EXPECT_EQ(FormatRelative(t + absl::Minutes(90), t), "in 1h30m");
  EXPECT_EQ(FormatRelative(t - absl::Seconds(12), t), "12s ago");
  EXPECT_EQ(FormatRelative(t + absl::Milliseconds(300), t), "now");
  google::protobuf::Timestamp ts;
  SetTimestamp(t + absl::Nanoseconds(5), &ts);
  EXPECT_EQ(ts.seconds(), 1732352400);
  EXPECT_EQ(ts.nanos(), 5);
  EXPECT_EQ(ToTime(ts), t + absl::Nanoseconds(5));
  google::protobuf::Duration d;
  SetDuration(absl::Milliseconds(1500), &d);
  EXPECT_EQ(d.seconds(), 1);
  EXPECT_EQ(d.nanos(), 500000000);
}

}  // namespace
}  // namespace rampart::ctl
