// Issue 16 item 6: revocation races on the agent stream. With mutual TLS and
// the EnrollmentManager as the identity check (in-process server,
// tests/grpc/agent_service_harness.h):
//   - a revocation stored between a Hello's identity check and the stream's
//     registration (RevokeAgent's EndAgentStream then finds no stream) still
//     ends the stream, before any Welcome;
//   - re-enrolling an agent ends the stream of the certificate it replaced;
//   - a live stream ends when its certificate's notAfter passes (injected
//     clock, SweepIdleStreams).
//
// The SimulatedClock starts at the wall-clock second: the TLS handshake
// checks certificate validity against the wall clock, the server against the
// injected one.

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "common/pki/pki.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/enroll/enrollment_manager.h"
#include "tests/fakes/fake_agent.h"
#include "tests/grpc/agent_service_harness.h"
#include "tests/pki/test_certs.h"

namespace rampart::testing {
namespace {

using ::testing::HasSubstr;

constexpr absl::Duration kWait = absl::Seconds(20);

// The enrollment records, with a hook that runs once right after the next
// read of one agent's record: what a revocation committed just after the
// agent stream's identity check looks like. Thread-safe.
class HookedEnrollmentStore final : public server::EnrollmentStore {
 public:
  explicit HookedEnrollmentStore(server::EnrollmentStore& inner)
      : inner_(inner) {}

  void RunAfterNextRead(std::string agent_id, std::function<void()> hook) {
    absl::MutexLock lock(&mu_);
    agent_id_ = std::move(agent_id);
    hook_ = std::move(hook);
  }

  // server::EnrollmentStore
  absl::StatusOr<std::optional<server::AgentEnrollment>> GetEnrollment(
      std::string_view agent_id) override {
    auto record = inner_.GetEnrollment(agent_id);
    std::function<void()> hook;
    {
      absl::MutexLock lock(&mu_);
      if (hook_ != nullptr && agent_id == agent_id_) {
        hook = std::move(hook_);
        hook_ = nullptr;
      }
    }
    if (hook != nullptr) {
      hook();
    }
    return record;
  }
  absl::Status PutEnrollment(const server::AgentEnrollment& e) override {
    return inner_.PutEnrollment(e);
  }
  absl::StatusOr<std::vector<server::AgentEnrollment>> ListEnrollments()
      override {
    return inner_.ListEnrollments();
  }
  absl::StatusOr<std::vector<server::ProtectedAgentAddress>>
  ListProtectedAddresses() override {
    return inner_.ListProtectedAddresses();
  }
  absl::Status ReplaceProtectedAddresses(
      std::string_view agent_id,
      const std::vector<server::ProtectedAgentAddress>& rows) override {
    return inner_.ReplaceProtectedAddresses(agent_id, rows);
  }

 private:
  server::EnrollmentStore& inner_;
  absl::Mutex mu_;
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
  std::function<void()> hook_ ABSL_GUARDED_BY(mu_);
};

struct AgentCredentials {
  std::string cert_pem;
  std::string key_pem;
};

class AgentIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = TestCerts::Make({});
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_.emplace(*std::move(certs));
    auto ca = pki::CertificateAuthority::Create(certs_->Read("ca.pem"),
                                                certs_->Read("ca.key"));
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    // No LoadRecords(): every identity check reads the (hooked) records.
    manager_ = std::make_unique<server::EnrollmentManager>(
        server::EnrollmentManagerOptions{.cert_ttl = absl::Hours(2)}, records_,
        harness_.store(), ca_.get(), clock_);
    grpc::SslServerCredentialsOptions ssl(
        GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = certs_->Read("ca.pem");
    ssl.pem_key_cert_pairs.push_back(
        {certs_->Read("server.key"), certs_->Read("server.pem")});
    AgentServiceHarness::Setup setup;
    setup.credentials = grpc::SslServerCredentials(ssl);
    setup.identity = manager_.get();
    // Only identity decisions end streams here, never idleness.
    setup.service.heartbeat_timeout = absl::Hours(24);
    ASSERT_TRUE(harness_.Start(setup).ok());
  }
  // The service refers to the manager: stop it first.
  void TearDown() override { harness_.Stop(); }

  AgentCredentials Enroll(const std::string& agent_id, bool reenroll = false) {
    auto token =
        manager_->IssueToken(agent_id, "hq", std::nullopt, reenroll, "alice");
    EXPECT_TRUE(token.ok()) << token.status();
    auto kc = pki::GenerateKeyAndCsr(agent_id);
    EXPECT_TRUE(kc.ok()) << kc.status();
    if (!token.ok() || !kc.ok()) {
      return {};
    }
    auto cert =
        manager_->Enroll(token->token, agent_id, kc->csr_pem, "127.0.0.1");
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.ok()
               ? AgentCredentials{cert->certificate_chain_pem, kc->key_pem}
               : AgentCredentials{};
  }

  std::unique_ptr<FakeAgent> AgentWith(const AgentCredentials& c) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = certs_->Read("ca.pem");
    ssl.pem_cert_chain = c.cert_pem;
    ssl.pem_private_key = c.key_pem;
    return std::make_unique<FakeAgent>(
        harness_.NewChannel(grpc::SslCredentials(ssl)));
  }

  // A batch round trip: everything before it was processed by the stream.
  absl::Status Barrier(FakeAgent& agent, uint64_t sequence) {
    v1::AuthEvent e = MakeAuthFailure("192.0.2.1", clock_.Now(), "");
    e.set_kind(v1::EVENT_KIND_CONNECT);
    if (!agent.SendBatch(sequence, {e})) {
      return absl::UnavailableError("batch not sent");
    }
    return agent.WaitForAck(sequence, kWait);
  }

  static int Welcomes(const FakeAgent& agent) {
    int n = 0;
    for (const v1::ServerMessage& m : agent.received()) {
      n += m.has_welcome() ? 1 : 0;
    }
    return n;
  }

  SimulatedClock clock_{
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now()))};
  AgentServiceHarness harness_{clock_};
  HookedEnrollmentStore records_{harness_.store()};
  std::optional<TestCerts> certs_;
  std::unique_ptr<pki::CertificateAuthority> ca_;
  std::unique_ptr<server::EnrollmentManager> manager_;
};

TEST_F(AgentIdentityTest, RevokeBetweenIdentityCheckAndRegistrationEndsStream) {
  const AgentCredentials creds = Enroll("dom-01");
  // Right after the Hello's identity check read the (valid) record, an
  // admin revokes the agent: the record is stored revoked, then
  // RevokeAgent ends the agent's stream, of which there is none yet.
  // Written on the server's thread; gRPC's socket I/O orders it before the
  // stream's end only as far as the test can see, not for ThreadSanitizer.
  std::atomic<int> was_connected{-1};
  records_.RunAfterNextRead("dom-01", [&] {
    auto record = harness_.store().GetEnrollment("dom-01");
    ASSERT_TRUE(record.ok() && record->has_value());
    server::AgentEnrollment revoked = **record;
    revoked.revoked = true;
    revoked.revoked_at = clock_.Now();
    revoked.revoke_reason = "laptop stolen";
    ASSERT_TRUE(harness_.store().PutEnrollment(revoked).ok());
    was_connected =
        harness_.service().EndAgentStream(
            "dom-01", grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                   "agent dom-01 was revoked"))
            ? 1
            : 0;
  });
  auto agent = AgentWith(creds);
  ASSERT_TRUE(agent->Open(FakeAgent::MakeHello("dom-01")).ok());
  absl::StatusOr<grpc::Status> end = agent->WaitForEnd(kWait);
  ASSERT_TRUE(end.ok()) << end.status() << " (the revoked stream stayed up)";
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(end->error_message(), HasSubstr("revoked"));
  EXPECT_EQ(was_connected.load(), 0);  // the race this test is about
  EXPECT_EQ(Welcomes(*agent), 0);
  EXPECT_TRUE(
      WaitUntil([&] { return harness_.service().connected_agents() == 0; }));

  // And it cannot come back.
  auto again = AgentWith(creds);
  EXPECT_FALSE(again->Handshake(FakeAgent::MakeHello("dom-01")).ok());
}

TEST_F(AgentIdentityTest, ReenrollmentEndsTheOldCertificatesStream) {
  const AgentCredentials first = Enroll("dom-01");
  auto old_stream = AgentWith(first);
  ASSERT_TRUE(old_stream->Handshake(FakeAgent::MakeHello("dom-01")).ok());
  ASSERT_TRUE(Barrier(*old_stream, 1).ok());
  // Another agent's stream is not affected.
  auto other = AgentWith(Enroll("dom-02"));
  ASSERT_TRUE(other->Handshake(FakeAgent::MakeHello("dom-02")).ok());

  const AgentCredentials second = Enroll("dom-01", /*reenroll=*/true);
  absl::StatusOr<grpc::Status> end = old_stream->WaitForEnd(kWait);
  ASSERT_TRUE(end.ok()) << end.status() << " (the old certificate's stream "
                        << "stayed up)";
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(end->error_message(), HasSubstr("not the one issued"));

  auto new_stream = AgentWith(second);
  ASSERT_TRUE(new_stream->Handshake(FakeAgent::MakeHello("dom-01")).ok());
  ASSERT_TRUE(Barrier(*new_stream, 2).ok());
  auto replay = AgentWith(first);
  EXPECT_FALSE(replay->Handshake(FakeAgent::MakeHello("dom-01")).ok());
  ASSERT_TRUE(Barrier(*other, 1).ok());
  EXPECT_FALSE(other->ended());
  EXPECT_FALSE(new_stream->ended());
}

TEST_F(AgentIdentityTest, LiveStreamEndsWhenItsCertificateExpires) {
  const AgentCredentials creds = Enroll("dom-01");  // valid for 2 hours
  auto agent = AgentWith(creds);
  ASSERT_TRUE(agent->Handshake(FakeAgent::MakeHello("dom-01")).ok());
  clock_.Advance(absl::Hours(1));
  harness_.service().SweepIdleStreams();
  ASSERT_TRUE(Barrier(*agent, 1).ok());
  EXPECT_FALSE(agent->ended());

  clock_.Advance(absl::Hours(1) + absl::Seconds(1));
  harness_.service().SweepIdleStreams();
  absl::StatusOr<grpc::Status> end = agent->WaitForEnd(kWait);
  ASSERT_TRUE(end.ok()) << end.status() << " (the stream outlived its "
                        << "certificate)";
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(end->error_message(), HasSubstr("expired"));

  // The TLS handshake still accepts the certificate (the wall clock has not
  // reached its notAfter); the Hello is refused by the injected clock.
  auto again = AgentWith(creds);
  ASSERT_TRUE(again->Open(FakeAgent::MakeHello("dom-01")).ok());
  end = again->WaitForEnd(kWait);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(end->error_message(), HasSubstr("expired"));
}

}  // namespace
}  // namespace rampart::testing
