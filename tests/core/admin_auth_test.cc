// AdminAuthenticator: token hashing, authentication, roles, revocation and
// the offline grace while the store is down.

#include "server/core/admin_auth.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/in_memory_store.h"
#include "tests/fakes/flaky_store.h"

namespace rampart::server {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;
using ::testing::StartsWith;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());

class AdminAuthTest : public ::testing::Test {
 protected:
  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  AdminAuthenticator auth_{AdminAuthenticator::Options{}, store_, clock_};
};

TEST_F(AdminAuthTest, CreatedTokenAuthenticatesAndOnlyItsHashIsStored) {
  absl::StatusOr<CreatedToken> t =
      auth_.CreateToken("ops", AdminRole::kOperator);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->secret, StartsWith("rpt_"));
  EXPECT_EQ(t->secret.size(), 4u + 64u);  // 32 random bytes in hex
  absl::StatusOr<std::vector<ApiToken>> stored = store_.ListApiTokens();
  ASSERT_TRUE(stored.ok());
  ASSERT_THAT(*stored, SizeIs(1));
  EXPECT_EQ((*stored)[0].hash, AdminAuthenticator::HashSecret(t->secret));
  EXPECT_EQ((*stored)[0].hash.find(t->secret.substr(4)), std::string::npos);

  absl::StatusOr<Principal> who = auth_.Authenticate("Bearer " + t->secret);
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->actor, "token:ops");
  EXPECT_EQ(who->role, AdminRole::kOperator);
  EXPECT_TRUE(auth_.Authenticate("bearer " + t->secret).ok());
  // A second token of the same name is refused while the first is active.
  EXPECT_EQ(auth_.CreateToken("ops", AdminRole::kAdmin).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(auth_.CreateToken("bad name", AdminRole::kAdmin).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(AdminAuthTest, MissingMalformedUnknownAndRevokedAreUnauthenticated) {
  absl::StatusOr<CreatedToken> t =
      auth_.CreateToken("ro", AdminRole::kReadOnly);
  ASSERT_TRUE(t.ok());
  for (const std::optional<std::string_view> header :
       {std::optional<std::string_view>(), std::optional<std::string_view>(""),
        std::optional<std::string_view>("Bearer"),
        std::optional<std::string_view>("Basic abc"),
        std::optional<std::string_view>("Bearer short"),
        std::optional<std::string_view>(
            "Bearer rpt_0000000000000000000000000000000000000000")}) {
    EXPECT_EQ(auth_.Authenticate(header).status().code(),
              absl::StatusCode::kUnauthenticated)
        << header.value_or("(none)");
  }
  ASSERT_TRUE(auth_.RevokeToken("ro").ok());
  EXPECT_EQ(auth_.Authenticate("Bearer " + t->secret).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(auth_.RevokeToken("ro").code(), absl::StatusCode::kNotFound);
  // The name can be reused after revocation.
  EXPECT_TRUE(auth_.CreateToken("ro", AdminRole::kReadOnly).ok());
}

TEST_F(AdminAuthTest, RolesAreOrdered) {
  const Principal ro{.actor = "token:ro", .role = AdminRole::kReadOnly};
  const Principal op{.actor = "token:op", .role = AdminRole::kOperator};
  const Principal admin{.actor = "token:a", .role = AdminRole::kAdmin};
  EXPECT_TRUE(
      AdminAuthenticator::Authorize(ro, AdminRole::kReadOnly, "x").ok());
  absl::Status s =
      AdminAuthenticator::Authorize(ro, AdminRole::kOperator, "RemoveBan");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("token:ro has role read-only; RemoveBan "
                                     "needs role operator"));
  EXPECT_TRUE(
      AdminAuthenticator::Authorize(op, AdminRole::kOperator, "x").ok());
  EXPECT_FALSE(AdminAuthenticator::Authorize(op, AdminRole::kAdmin, "x").ok());
  EXPECT_TRUE(
      AdminAuthenticator::Authorize(admin, AdminRole::kAdmin, "x").ok());
}

TEST_F(AdminAuthTest, EnsureTokenIsIdempotentAndReplacesTheOldSecret) {
  const std::string first(40, 'a');
  const std::string second(40, 'b');
  ASSERT_TRUE(auth_.EnsureToken("bootstrap", AdminRole::kAdmin, first).ok());
  ASSERT_TRUE(auth_.EnsureToken("bootstrap", AdminRole::kAdmin, first).ok());
  EXPECT_TRUE(auth_.Authenticate("Bearer " + first).ok());
  ASSERT_TRUE(auth_.EnsureToken("bootstrap", AdminRole::kAdmin, second).ok());
  EXPECT_FALSE(auth_.Authenticate("Bearer " + first).ok());
  EXPECT_TRUE(auth_.Authenticate("Bearer " + second).ok());
  EXPECT_EQ(auth_.EnsureToken("bootstrap", AdminRole::kAdmin, "short").code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AdminAuthOfflineTest, RecentlyVerifiedTokensSurviveAStoreOutage) {
  SimulatedClock clock{kT0};
  InMemoryStore inner;
  FlakyStore store{inner};
  AdminAuthenticator auth({.offline_grace = absl::Minutes(5)}, store, clock);
  const std::string seen(40, 's');
  const std::string unseen(40, 'u');
  ASSERT_TRUE(auth.EnsureToken("seen", AdminRole::kAdmin, seen).ok());
  ASSERT_TRUE(auth.EnsureToken("unseen", AdminRole::kAdmin, unseen).ok());
  ASSERT_TRUE(auth.Authenticate("Bearer " + seen).ok());
  store.SetDown(true);
  EXPECT_TRUE(auth.Authenticate("Bearer " + seen).ok());
  EXPECT_EQ(auth.Authenticate("Bearer " + unseen).status().code(),
            absl::StatusCode::kUnavailable);
  clock.Advance(absl::Minutes(6));
  EXPECT_EQ(auth.Authenticate("Bearer " + seen).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace rampart::server
