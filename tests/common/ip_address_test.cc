#include "common/ip_address.h"

#include "absl/container/flat_hash_set.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart {
namespace {

using ::testing::HasSubstr;

std::string Canon(std::string_view s) {
  auto ip = IpAddress::Parse(s);
  return ip ? ip->ToString() : "<invalid>";
}

TEST(IpAddressTest, ParsesAndCanonicalises) {
  EXPECT_EQ(Canon("198.51.100.7"), "198.51.100.7");
  EXPECT_EQ(Canon("0.0.0.0"), "0.0.0.0");
  EXPECT_EQ(Canon("255.255.255.255"), "255.255.255.255");
  EXPECT_EQ(Canon("::ffff:198.51.100.7"), "198.51.100.7");
  EXPECT_EQ(Canon("::FFFF:c633:6407"), "198.51.100.7");
  EXPECT_EQ(Canon("2001:DB8:0:0:0:0:0:1"), "2001:db8::1");
  EXPECT_EQ(Canon("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(Canon("2001:db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");  // one 0
  EXPECT_EQ(Canon("2001:0db8:0000:0000:0000:ff00:0042:8329"),
            "2001:db8::ff00:42:8329");
  EXPECT_EQ(Canon("2001:db8::7%eth0"), "2001:db8::7");
  EXPECT_EQ(Canon("::1"), "::1");
  EXPECT_EQ(Canon("::"), "::");
  EXPECT_EQ(Canon("1::"), "1::");
}

TEST(IpAddressTest, RejectsInvalidAndMasked) {
  for (const char* bad :
       {"", "xxx.xxx.xxx.xxx", "111.222.333.444", "1.2.3", "1.2.3.4.5",
        "01.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1.2.3.-4", "256.1.1.1",
        "2001:db8::g", "2001:db8:::1", "1:2:3:4:5:6:7:8:9", "fe80::1%",
        "[2001:db8::1]", "localhost", "1.2.3.4/24"}) {
    EXPECT_FALSE(IpAddress::Parse(bad).has_value()) << bad;
  }
  absl::StatusOr<IpAddress> s = IpAddress::FromString(std::string(500, '9'));
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("..."));
  EXPECT_LT(s.status().message().size(), 200u);
}

TEST(IpAddressTest, FamilyOrderingAndHashing) {
  const IpAddress a = *IpAddress::Parse("198.51.100.7");
  const IpAddress b = *IpAddress::Parse("::ffff:198.51.100.7");
  const IpAddress c = *IpAddress::Parse("2001:db8::1");
  EXPECT_TRUE(a.is_v4());
  EXPECT_TRUE(c.is_v6());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.v4(), 0xC6336407u);
  absl::flat_hash_set<IpAddress> set = {a, b, c};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_TRUE(IpAddress::Parse("127.8.9.1")->IsLoopback());
  EXPECT_TRUE(IpAddress::Parse("::1")->IsLoopback());
  EXPECT_FALSE(IpAddress::Parse("::2")->IsLoopback());
  EXPECT_TRUE(IpAddress::Parse("::")->IsUnspecified());
}

TEST(IpPrefixTest, ParsesContainsAndPrints) {
  absl::StatusOr<IpPrefix> p = IpPrefix::FromString("203.0.113.0/24");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->ToString(), "203.0.113.0/24");
  EXPECT_TRUE(p->Contains(*IpAddress::Parse("203.0.113.255")));
  EXPECT_FALSE(p->Contains(*IpAddress::Parse("203.0.114.0")));
  EXPECT_FALSE(p->Contains(*IpAddress::Parse("2001:db8::1")));
  EXPECT_TRUE(p->Contains(*IpPrefix::FromString("203.0.113.128/25")));
  EXPECT_FALSE(p->Contains(*IpPrefix::FromString("203.0.112.0/23")));

  absl::StatusOr<IpPrefix> v6 = IpPrefix::FromString("2001:db8:1:2::/64");
  ASSERT_TRUE(v6.ok());
  EXPECT_TRUE(v6->Contains(*IpAddress::Parse("2001:db8:1:2:ffff::1")));
  EXPECT_EQ(IpPrefix::Of(*IpAddress::Parse("2001:db8:1:2:3::1"), 48).ToString(),
            "2001:db8:1::/48");
  EXPECT_EQ(IpPrefix::Of(*IpAddress::Parse("198.51.100.77"), 20).ToString(),
            "198.51.96.0/20");
  EXPECT_EQ(IpPrefix::FromString("198.51.100.7")->ToString(), "198.51.100.7");
  EXPECT_TRUE(IpPrefix::FromString("198.51.100.7")->is_host());
  EXPECT_EQ(IpPrefix::FromString("0.0.0.0/0")->ToString(), "0.0.0.0/0");
}

TEST(IpPrefixTest, RejectsHostBitsAndBadLengths) {
  absl::StatusOr<IpPrefix> p = IpPrefix::FromString("198.51.100.7/24");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()),
              HasSubstr("did you mean 198.51.100.0/24?"));
  for (const char* bad :
       {"198.51.100.0/33", "198.51.100.0/", "1.2.3.0/-1", "1.2.3.0/+8",
        "2001:db8::/129", "1.2.3.0/2a", "x/8", "1.2.3.0/0008"}) {
    EXPECT_FALSE(IpPrefix::FromString(bad).ok()) << bad;
  }
  // A long non-numeric length must not overflow (found by the config fuzzer).
  EXPECT_FALSE(
      IpPrefix::FromString("192.0.2.0/" + std::string(10000, 'z')).ok());
  EXPECT_FALSE(IpPrefix::FromString("192.0.2.0/sqlite:ons:25000").ok());
}

}  // namespace
}  // namespace rampart
