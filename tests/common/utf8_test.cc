#include "common/utf8.h"

#include <string>

#include "gtest/gtest.h"

namespace rampart {
namespace {

TEST(IsValidUtf8Test, AcceptsUtf8AndRejectsMalformed) {
  EXPECT_TRUE(IsValidUtf8(""));
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8(std::string("nul\0inside", 10)));
  EXPECT_TRUE(IsValidUtf8("M\xc3\xbcller \xe2\x82\xac \xf0\x9f\x94\x92"));
  EXPECT_TRUE(IsValidUtf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xc3"));              // truncated
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));          // overlong
  EXPECT_FALSE(IsValidUtf8("\xe0\x80\xaf"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xf0\x80\x80\xaf"));  // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\x80"));              // stray continuation
  EXPECT_FALSE(IsValidUtf8("\xff"));
  EXPECT_FALSE(IsValidUtf8("ok\xc3("));  // lead byte without continuation
}

TEST(Utf8SequenceLengthTest, LengthsAtEachPosition) {
  const std::string s = "a\xc3\xbc\xe2\x82\xac\xf0\x9f\x94\x92\xff";
  EXPECT_EQ(Utf8SequenceLength(s, 0), 1u);
  EXPECT_EQ(Utf8SequenceLength(s, 1), 2u);
  EXPECT_EQ(Utf8SequenceLength(s, 2), 0u);  // continuation byte
  EXPECT_EQ(Utf8SequenceLength(s, 3), 3u);
  EXPECT_EQ(Utf8SequenceLength(s, 6), 4u);
  EXPECT_EQ(Utf8SequenceLength(s, 10), 0u);
  // A sequence cut by the end of the view is not one.
  EXPECT_EQ(Utf8SequenceLength(std::string_view(s).substr(0, 8), 6), 0u);
}

// Every single byte and every two-byte string: IsValidUtf8 agrees with a
// direct reading of RFC 3629's table.
TEST(IsValidUtf8Test, ExhaustiveOverShortStrings) {
  for (int a = 0; a < 256; ++a) {
    const std::string one(1, static_cast<char>(a));
    EXPECT_EQ(IsValidUtf8(one), a < 0x80) << a;
    for (int b = 0; b < 256; ++b) {
      const std::string two = {static_cast<char>(a), static_cast<char>(b)};
      const bool want = (a < 0x80 && b < 0x80) ||
                        (a >= 0xC2 && a <= 0xDF && b >= 0x80 && b <= 0xBF);
      EXPECT_EQ(IsValidUtf8(two), want) << a << " " << b;
    }
  }
}

}  // namespace
}  // namespace rampart
