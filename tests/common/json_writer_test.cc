#include "common/json_writer.h"

#include "gtest/gtest.h"

namespace rampart {
namespace {

std::string J(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

TEST(JsonWriterTest, EscapesSpecials) {
  EXPECT_EQ(J(""), "\"\"");
  EXPECT_EQ(J("plain"), "\"plain\"");
  EXPECT_EQ(J("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(J("\n\r\t"), "\"\\n\\r\\t\"");
  EXPECT_EQ(J(std::string("\x00\x1f\x7f", 3)), "\"\\u0000\\u001f\\u007f\"");
}

TEST(JsonWriterTest, ValidUtf8PassesThrough) {
  EXPECT_EQ(J("J\xC3\xBCrgen"), "\"J\xC3\xBCrgen\"");
  EXPECT_EQ(J("\xE2\x82\xAC"), "\"\xE2\x82\xAC\"");          // euro sign
  EXPECT_EQ(J("\xF0\x9F\x98\x80"), "\"\xF0\x9F\x98\x80\"");  // emoji
}

TEST(JsonWriterTest, InvalidBytesBecomeLatin1CodePoints) {
  EXPECT_EQ(J("J\xFCrgen"), "\"J\xC3\xBCrgen\"");
  EXPECT_EQ(J("\xC3"), "\"\xC3\x83\"");              // truncated sequence
  EXPECT_EQ(J("\xC0\xAF"), "\"\xC3\x80\xC2\xAF\"");  // overlong '/'
  EXPECT_EQ(J("\xED\xA0\x80"), "\"\xC3\xAD\xC2\xA0\xC2\x80\"");  // surrogate
  EXPECT_EQ(J("\xF4\x90\x80\x80"),
            "\"\xC3\xB4\xC2\x90\xC2\x80\xC2\x80\"");  // > U+10FFFF
}

}  // namespace
}  // namespace rampart
