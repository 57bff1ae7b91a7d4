#include "common/pki/pki.h"

#include <sys/stat.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pki/test_certs.h"

namespace rampart::pki {
namespace {

using ::rampart::testing::TestCerts;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'790'000'000);

class PkiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = TestCerts::Make({"agent-1"}, "ops");
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_.emplace(*std::move(certs));
    auto ca = CertificateAuthority::Create(certs_->Read("ca.pem"),
                                           certs_->Read("ca.key"));
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
  }
  std::optional<TestCerts> certs_;
  std::unique_ptr<CertificateAuthority> ca_;
};

TEST_F(PkiTest, MakeCertsWritesKeysPrivate) {
  struct stat st = {};
  ASSERT_EQ(stat(certs_->dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  for (const char* key :
       {"ca.key", "server.key", "agent-agent-1.key", "admin-ops.key"}) {
    ASSERT_EQ(stat(certs_->path(key).c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << key;
  }
  auto agent = ParseCertificate(certs_->Read("agent-agent-1.pem"));
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ(agent->common_name, "agent-1");
}

TEST_F(PkiTest, SignsAGeneratedCsr) {
  auto kc = GenerateKeyAndCsr("dom-01");
  ASSERT_TRUE(kc.ok()) << kc.status();
  EXPECT_THAT(kc->key_pem, HasSubstr("BEGIN PRIVATE KEY"));
  EXPECT_THAT(kc->csr_pem, HasSubstr("BEGIN CERTIFICATE REQUEST"));
  auto signed_cert = ca_->SignCsr(kc->csr_pem, "dom-01", kNow, absl::Hours(24));
  ASSERT_TRUE(signed_cert.ok()) << signed_cert.status();
  EXPECT_EQ(signed_cert->info.common_name, "dom-01");
  EXPECT_EQ(signed_cert->info.not_after, kNow + absl::Hours(24));
  EXPECT_EQ(signed_cert->info.sha256_hex.size(), 64u);
  EXPECT_GE(signed_cert->info.serial_hex.size(), 31u);
  auto parsed = ParseCertificate(signed_cert->certificate_pem);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->sha256_hex, signed_cert->info.sha256_hex);
  EXPECT_EQ(parsed->serial_hex, signed_cert->info.serial_hex);
  // Two signatures of the same CSR get different serials.
  auto again = ca_->SignCsr(kc->csr_pem, "dom-01", kNow, absl::Hours(24));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->info.serial_hex, signed_cert->info.serial_hex);
}

TEST_F(PkiTest, RefusesCsrForAnotherIdentity) {
  auto kc = GenerateKeyAndCsr("dom-01");
  ASSERT_TRUE(kc.ok());
  auto s = ca_->SignCsr(kc->csr_pem, "dom-02", kNow, absl::Hours(24));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("does not match"));
}

TEST_F(PkiTest, RefusesGarbageAndTamperedCsrs) {
  for (const std::string& bad :
       {std::string(""), std::string("hello"), std::string(20000, 'A'),
        std::string("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END "
                    "CERTIFICATE REQUEST-----\n")}) {
    auto s = ca_->SignCsr(bad, "dom-01", kNow, absl::Hours(1));
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  }
  auto kc = GenerateKeyAndCsr("dom-01");
  ASSERT_TRUE(kc.ok());
  // A certificate is not a CSR.
  auto s = ca_->SignCsr(certs_->Read("ca.pem"), "dom-01", kNow, absl::Hours(1));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PkiTest, RefusesWeakRsaKey) {
  // A 2048-bit RSA CSR made with the openssl CLI.
  const std::string csr_path = certs_->path("weak.csr");
  const std::string cmd =
      "openssl req -new -newkey rsa:2048 -nodes -keyout /dev/null -subj "
      "/CN=dom-01 -out '" +
      csr_path + "' 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto s =
      ca_->SignCsr(certs_->Read("weak.csr"), "dom-01", kNow, absl::Hours(1));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.status().message(), HasSubstr("3072"));
}

TEST_F(PkiTest, CaKeyMustMatch) {
  auto ca = CertificateAuthority::Create(certs_->Read("ca.pem"),
                                         certs_->Read("server.key"));
  EXPECT_EQ(ca.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ca.status().message(), HasSubstr("does not belong"));
  EXPECT_FALSE(CertificateAuthority::Create("x", "y").ok());
}

TEST(TokenTest, TokensAreRandomUrlSafeAndHashed) {
  auto a = NewEnrollmentToken();
  auto b = NewEnrollmentToken();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 43u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
                                 "rstuvwxyz0123456789-_"),
            std::string::npos);
  EXPECT_EQ(HashEnrollmentToken("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

}  // namespace
}  // namespace rampart::pki
