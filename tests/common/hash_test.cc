#include "common/hash.h"

#include "gtest/gtest.h"

namespace rampart {
namespace {

// Reference values of 64-bit FNV-1a (draft-eastlake-fnv): these are
// persisted (agent state checksums, netsh chunk names, tail fingerprints),
// so they must never change.
TEST(Fnv1a64Test, KnownValues) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ull);
  EXPECT_EQ(Fnv1a64("\xff"), 0xaf64724c8602eb6eull);  // bytes are unsigned
}

TEST(Fnv1a64Test, SeedContinuesAHash) {
  EXPECT_EQ(Fnv1a64("bar", Fnv1a64("foo")), Fnv1a64("foobar"));
  static_assert(Fnv1a64("") == kFnv1a64Offset);
}

}  // namespace
}  // namespace rampart
