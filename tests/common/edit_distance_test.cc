#include "common/edit_distance.h"

#include "gtest/gtest.h"

namespace rampart {
namespace {

TEST(EditDistanceTest, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("", "abc"), 3u);
  EXPECT_EQ(EditDistance("abc", ""), 3u);
  EXPECT_EQ(EditDistance("policy", "policy"), 0u);
  EXPECT_EQ(EditDistance("polcy", "policy"), 1u);        // insertion
  EXPECT_EQ(EditDistance("half_lfe", "half_life"), 1u);  // insertion
  EXPECT_EQ(EditDistance("servrs", "servers"), 1u);
  EXPECT_EQ(EditDistance("flush_intervall", "flush_interval"), 1u);
  EXPECT_EQ(EditDistance("Max_Agents", "max_agents"), 2u);  // bytewise
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
}

TEST(EditDistanceTest, IsSymmetric) {
  EXPECT_EQ(EditDistance("kitten", "sitting"),
            EditDistance("sitting", "kitten"));
  EXPECT_EQ(EditDistance("a", "xyz"), EditDistance("xyz", "a"));
}

}  // namespace
}  // namespace rampart
