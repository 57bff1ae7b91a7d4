#include "server/enroll/enrollment_manager.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/store/in_memory_store.h"
#include "tests/pki/test_certs.h"

namespace rampart::server {
namespace {

using ::rampart::testing::TestCerts;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1'790'000'000);

class EnrollmentManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = TestCerts::Make({});
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_.emplace(*std::move(certs));
    auto ca = pki::CertificateAuthority::Create(certs_->Read("ca.pem"),
                                                certs_->Read("ca.key"));
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    manager_ = std::make_unique<EnrollmentManager>(
        EnrollmentManagerOptions{.cert_ttl = absl::Hours(24 * 30)}, store_,
        store_, ca_.get(), clock_);
  }

  std::string Csr(const std::string& id) {
    auto kc = pki::GenerateKeyAndCsr(id);
    EXPECT_TRUE(kc.ok());
    return kc.ok() ? kc->csr_pem : "";
  }
  std::string Token(const std::string& id, bool reenroll = false) {
    auto t = manager_->IssueToken(id, "hq", std::nullopt, reenroll, "alice");
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->token : "";
  }
  // Enrolls `id` and returns the identity its certificate presents.
  PeerCertificate EnrollOk(const std::string& id,
                           const std::string& peer = "192.0.2.1") {
    auto c = manager_->Enroll(Token(id), id, Csr(id), peer);
    EXPECT_TRUE(c.ok()) << c.status();
    auto info = pki::ParseCertificate(c.ok() ? c->certificate_chain_pem : "");
    EXPECT_TRUE(info.ok());
    return PeerCertificate{.common_name = info->common_name,
                           .sha256_hex = info->sha256_hex,
                           .not_after = info->not_after};
  }

  SimulatedClock clock_{kT0};
  InMemoryStore store_;
  std::optional<TestCerts> certs_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<EnrollmentManager> manager_;
};

TEST_F(EnrollmentManagerTest, TokenIsStoredOnlyAsItsHashAndAudited) {
  auto t = manager_->IssueToken("dom-01", "hq", absl::Hours(2), false, "alice");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->expires_at, kT0 + absl::Hours(2));
  auto record = store_.GetEnrollment("dom-01");
  ASSERT_TRUE(record.ok() && record->has_value());
  EXPECT_EQ((*record)->token_sha256, pki::HashEnrollmentToken(t->token));
  auto audit = store_.ListAudit(absl::InfinitePast(), 10);
  ASSERT_TRUE(audit.ok());
  ASSERT_EQ(audit->size(), 1u);
  EXPECT_EQ((*audit)[0].action, "agent.enroll");
  EXPECT_EQ((*audit)[0].actor, "alice");
  EXPECT_THAT((*audit)[0].after, ::testing::Not(HasSubstr(t->token)));
  EXPECT_THAT((*audit)[0].after,
              ::testing::Not(HasSubstr((*record)->token_sha256)));
}

TEST_F(EnrollmentManagerTest, TokenTtlBounds) {
  for (absl::Duration bad : {absl::Seconds(59), absl::Hours(24 * 7 + 1)}) {
    EXPECT_EQ(
        manager_->IssueToken("dom-01", "", bad, false, "a").status().code(),
        absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(manager_->IssueToken("bad id", "", std::nullopt, false, "a")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(EnrollmentManagerTest, ExpiredTokenIsRefusedWithTheOneCode) {
  const std::string token = Token("dom-01");
  clock_.Advance(absl::Hours(24));
  auto c = manager_->Enroll(token, "dom-01", Csr("dom-01"), "192.0.2.1");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(EnrollmentManagerTest, TokenWorksOnceAndOnlyForItsAgent) {
  const std::string token = Token("dom-01");
  const std::string bad_token_message = std::string(
      manager_->Enroll("x", "dom-01", Csr("dom-01"), "p1").status().message());
  auto other = manager_->Enroll(token, "dom-02", Csr("dom-02"), "p1");
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(other.status().message(), bad_token_message);  // no oracle
  // A bad CSR does not consume the token (retry is safe).
  auto bad_csr = manager_->Enroll(token, "dom-01", Csr("dom-02"), "p1");
  EXPECT_EQ(bad_csr.status().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(manager_->Enroll(token, "dom-01", Csr("dom-01"), "p1").ok());
  auto reuse = manager_->Enroll(token, "dom-01", Csr("dom-01"), "p1");
  EXPECT_EQ(reuse.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(reuse.status().message(), bad_token_message);
}

TEST_F(EnrollmentManagerTest, RateLimitPerPeerAddress) {
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(
        manager_->Enroll("x", "dom-01", "csr", "198.51.100.7").status().code(),
        absl::StatusCode::kUnauthenticated);
  }
  EXPECT_EQ(
      manager_->Enroll("x", "dom-01", "csr", "198.51.100.7").status().code(),
      absl::StatusCode::kResourceExhausted);
  // Another address is not affected; the window passes.
  EXPECT_EQ(
      manager_->Enroll("x", "dom-01", "csr", "198.51.100.8").status().code(),
      absl::StatusCode::kUnauthenticated);
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(
      manager_->Enroll("x", "dom-01", "csr", "198.51.100.7").status().code(),
      absl::StatusCode::kUnauthenticated);
}

TEST_F(EnrollmentManagerTest, AuthenticateMapsCertificateToEnrolledAgent) {
  const PeerCertificate cert = EnrollOk("dom-01");
  EXPECT_TRUE(manager_->Authenticate(cert, "dom-01").ok());
  EXPECT_EQ(manager_->Authenticate(std::nullopt, "dom-01").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(manager_->Authenticate(cert, "dom-02").code(),
            absl::StatusCode::kPermissionDenied);
  PeerCertificate forged = cert;
  forged.sha256_hex[0] = forged.sha256_hex[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(manager_->Authenticate(forged, "dom-01").code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(manager_
                ->Authenticate(
                    PeerCertificate{.common_name = "ghost", .sha256_hex = "x"},
                    "ghost")
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(EnrollmentManagerTest, ReenrollNeedsTheFlagAndReplacesTheCertificate) {
  const PeerCertificate old_cert = EnrollOk("dom-01");
  EXPECT_EQ(manager_->IssueToken("dom-01", "hq", std::nullopt, false, "a")
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
  const std::string token = Token("dom-01", /*reenroll=*/true);
  // The old certificate keeps working until the new token is used.
  EXPECT_TRUE(manager_->Authenticate(old_cert, "dom-01").ok());
  auto c = manager_->Enroll(token, "dom-01", Csr("dom-01"), "p");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(manager_->Authenticate(old_cert, "dom-01").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(EnrollmentManagerTest, RevokedAgentIsRefusedEverywhere) {
  const PeerCertificate cert = EnrollOk("dom-01");
  EXPECT_EQ(manager_->Revoke("nobody", "x", "alice").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(manager_->Revoke("dom-01", "", "alice").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto at = manager_->Revoke("dom-01", "stolen", "alice");
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(*at, kT0);
  const absl::Status s = manager_->Authenticate(cert, "dom-01");
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(s.message(), HasSubstr("stolen"));
  auto audit = store_.ListAudit(absl::InfinitePast(), 10);
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->front().action, "agent.revoke");
  EXPECT_THAT(audit->front().before, HasSubstr("\"state\":\"enrolled\""));
  EXPECT_THAT(audit->front().after, HasSubstr("\"state\":\"revoked\""));
}

TEST_F(EnrollmentManagerTest, PendingTokenOfARevokedAgentIsPermissionDenied) {
  const std::string token = Token("dom-01");
  ASSERT_TRUE(manager_->Revoke("dom-01", "changed my mind", "alice").ok());
  EXPECT_EQ(
      manager_->Enroll(token, "dom-01", Csr("dom-01"), "p").status().code(),
      absl::StatusCode::kPermissionDenied);
}

TEST_F(EnrollmentManagerTest, LoadedRecordsAnswerWithoutTheStore) {
  const PeerCertificate cert = EnrollOk("dom-01");
  ASSERT_TRUE(manager_->LoadRecords().ok());
  EXPECT_TRUE(manager_->Authenticate(cert, "dom-01").ok());
  // Writes go through to the store and the cache.
  ASSERT_TRUE(manager_->Revoke("dom-01", "stolen", "alice").ok());
  EXPECT_EQ(manager_->Authenticate(cert, "dom-01").code(),
            absl::StatusCode::kPermissionDenied);
  auto stored = store_.GetEnrollment("dom-01");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_TRUE((*stored)->revoked);
  // A record written behind the manager's back is not seen once loaded.
  AgentEnrollment sneaky = **stored;
  sneaky.revoked = false;
  ASSERT_TRUE(store_.PutEnrollment(sneaky).ok());
  EXPECT_EQ(manager_->Authenticate(cert, "dom-01").code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(EnrollmentManagerTest, ExpiredCertificateIsRefusedByTheInjectedClock) {
  const PeerCertificate cert = EnrollOk("dom-01");  // valid for 30 days
  EXPECT_EQ(cert.not_after, kT0 + absl::Hours(24 * 30));
  clock_.Advance(absl::Hours(24 * 30) - absl::Seconds(1));
  EXPECT_TRUE(manager_->Authenticate(cert, "dom-01").ok());
  clock_.Advance(absl::Seconds(1));
  const absl::Status s = manager_->Authenticate(cert, "dom-01");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(), HasSubstr("expired"));
}

TEST_F(EnrollmentManagerTest, CertificateListenerHearsEveryStoredCertificate) {
  std::vector<std::string> heard;
  manager_->SetCertificateListener([&](const std::string& agent_id) {
    heard.push_back(agent_id);
    // Called without the manager's lock: it may authenticate.
    EXPECT_EQ(manager_->Authenticate(std::nullopt, agent_id).code(),
              absl::StatusCode::kUnauthenticated);
  });
  const PeerCertificate first = EnrollOk("dom-01");
  EXPECT_THAT(heard, ::testing::ElementsAre("dom-01"));
  // A refused enrollment stores nothing and says nothing.
  EXPECT_FALSE(manager_->Enroll("bogus", "dom-01", Csr("dom-01"), "p").ok());
  EXPECT_EQ(heard.size(), 1u);
  const std::string token = Token("dom-01", /*reenroll=*/true);
  ASSERT_TRUE(manager_->Enroll(token, "dom-01", Csr("dom-01"), "p").ok());
  EXPECT_THAT(heard, ::testing::ElementsAre("dom-01", "dom-01"));
  EXPECT_EQ(manager_->Authenticate(first, "dom-01").code(),
            absl::StatusCode::kPermissionDenied);
  manager_->SetCertificateListener(nullptr);
  EnrollOk("dom-02");
  EXPECT_EQ(heard.size(), 2u);
}

TEST(EnrollmentDisabledTest, WithoutCaKeyEnrollmentIsAPrecondition) {
  SimulatedClock clock(kT0);
  InMemoryStore store;
  EnrollmentManager manager({}, store, store, nullptr, clock);
  EXPECT_EQ(manager.IssueToken("dom-01", "", std::nullopt, false, "a")
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace rampart::server
