#include "server/core/protected_addresses.h"

#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/in_memory_store.h"

namespace rampart::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Optional;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

IpAddress Ip(const char* s) { return *IpAddress::Parse(s); }
IpPrefix Prefix(const char* s) { return *IpPrefix::FromString(s); }

bool NeverRevoked(std::string_view) { return false; }

// Issue 16 item 3: claimed Hello.host_addresses protected at once, never
// went away and were lost on a restart.
TEST(ProtectedAddressesTest, OnlyPeerAndApprovedAddressesProtect) {
  ProtectedAddresses p({Prefix("192.0.2.1")});
  ASSERT_TRUE(p.AgentConnected("mx1", Ip("192.0.2.10"),
                               {Ip("198.51.100.50"), Ip("192.0.2.10")}, kT0)
                  .ok());
  EXPECT_THAT(p.Overlap(Prefix("192.0.2.10")),
              Optional(HasSubstr("agent mx1's address 192.0.2.10")));
  EXPECT_EQ(p.Overlap(Prefix("198.51.100.50")), std::nullopt);
  EXPECT_EQ(p.Overlap(Prefix("198.51.100.0/24")), std::nullopt);
  EXPECT_THAT(p.Overlap(Prefix("192.0.2.1")), Optional(HasSubstr("own")));
  EXPECT_THAT(p.Overlap(Prefix("127.0.0.1")), Optional(HasSubstr("own")));
  EXPECT_THAT(p.Of("mx1").Unapproved(), ElementsAre(Ip("198.51.100.50")));

  ASSERT_TRUE(p.Approve("mx1", {Ip("198.51.100.50")}, "token:alice", kT0).ok());
  EXPECT_THAT(p.Overlap(Prefix("198.51.100.0/24")),
              Optional(HasSubstr("approved address 198.51.100.50")));
  EXPECT_THAT(p.Of("mx1").Protecting(),
              ElementsAre(Ip("192.0.2.10"), Ip("198.51.100.50")));
  EXPECT_THAT(p.Of("mx1").Unapproved(), IsEmpty());

  // A new stream from elsewhere replaces the peer entry.
  ASSERT_TRUE(p.AgentConnected("mx1", Ip("192.0.2.11"), {}, kT0).ok());
  EXPECT_EQ(p.Overlap(Prefix("192.0.2.10")), std::nullopt);
  EXPECT_NE(p.Overlap(Prefix("192.0.2.11")), std::nullopt);

  ASSERT_TRUE(p.Unprotect("mx1", {Ip("198.51.100.50")}).ok());
  EXPECT_EQ(p.Overlap(Prefix("198.51.100.50")), std::nullopt);
  ASSERT_TRUE(p.ForgetAgent("mx1").ok());
  EXPECT_EQ(p.Overlap(Prefix("192.0.2.11")), std::nullopt);
}

TEST(ProtectedAddressesTest, SurvivesARestartButNotARevocation) {
  InMemoryStore store;
  {
    ProtectedAddresses p({}, &store);
    ASSERT_TRUE(p.Load(NeverRevoked).ok());
    ASSERT_TRUE(
        p.AgentConnected("mx1", Ip("192.0.2.10"), {Ip("198.51.100.9")}, kT0)
            .ok());
    ASSERT_TRUE(p.AgentConnected("mx2", Ip("192.0.2.20"), {}, kT0).ok());
    ASSERT_TRUE(p.Approve("mx1", {Ip("2001:db8::7")}, "token:alice", kT0).ok());
  }
  {
    // Restarted: nobody reconnected yet, the proven entries still hold.
    ProtectedAddresses p({}, &store);
    ASSERT_TRUE(p.Load(NeverRevoked).ok());
    EXPECT_NE(p.Overlap(Prefix("192.0.2.10")), std::nullopt);
    EXPECT_NE(p.Overlap(Prefix("192.0.2.20")), std::nullopt);
    EXPECT_NE(p.Overlap(Prefix("2001:db8::/64")), std::nullopt);
    EXPECT_EQ(p.Overlap(Prefix("198.51.100.9")), std::nullopt);  // claimed
    ASSERT_TRUE(p.ForgetAgent("mx2").ok());                      // revoked
  }
  {
    // mx1 was revoked while the server was down: dropped at Load.
    ProtectedAddresses p({}, &store);
    ASSERT_TRUE(
        p.Load([](std::string_view agent) { return agent == "mx1"; }).ok());
    EXPECT_EQ(p.Overlap(Prefix("192.0.2.0/24")), std::nullopt);
    EXPECT_EQ(p.Overlap(Prefix("2001:db8::/32")), std::nullopt);
  }
  EXPECT_THAT(*store.ListProtectedAddresses(), IsEmpty());
}

TEST(ProtectedAddressesTest, ApprovalsAndClaimsAreBounded) {
  ProtectedAddresses p({});
  std::vector<IpAddress> many;
  for (int i = 0; i < 200; ++i) {
    many.push_back(*IpAddress::Parse(absl::StrFormat("2001:db8::%x", i)));
  }
  ASSERT_TRUE(p.AgentConnected("mx1", std::nullopt, many, kT0).ok());
  EXPECT_EQ(p.Of("mx1").claimed.size(), ProtectedAddresses::kMaxPerAgent);
  EXPECT_EQ(p.Approve("mx1", many, "token:alice", kT0).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(p.Of("mx1").approved, IsEmpty());  // all or nothing
}

}  // namespace
}  // namespace rampart::server
