// Mutual TLS and agent enrollment end to end (docs/security.md, "Transport
// and agent identity"): the real rampart-server binary on 127.0.0.1 with
// certificates from deploy/make-certs.sh and SQLite, rampartctl (in-process,
// same channel code as the binary) for EnrollAgent/RevokeAgent, the real
// rampart-agent binary for `enroll`, and FakeAgent streams with chosen
// client credentials for the identity checks.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "ctl/cli.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/fake_agent.h"
#include "tests/integration/server_process.h"
#include "tests/pki/test_certs.h"

namespace rampart::testing {
namespace {

using ::testing::HasSubstr;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& ca_pem,
                                              const std::string& cert_pem = "",
                                              const std::string& key_pem = "") {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ca_pem;
  ssl.pem_cert_chain = cert_pem;
  ssl.pem_private_key = key_pem;
  return grpc::SslCredentials(ssl);
}

class TlsIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto certs = TestCerts::Make({"stranger"}, "ops");
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_.emplace(*std::move(certs));
    auto other = TestCerts::Make({"dom-01"});
    ASSERT_TRUE(other.ok()) << other.status();
    other_ca_.emplace(*std::move(other));
    config_ = certs_->path("server.yaml");
    std::ofstream(config_) << absl::StrFormat(
        "tls:\n  cert_file: %s\n  key_file: %s\n  client_ca_file: %s\n"
        "  ca_key_file: %s\n  cert_ttl: 30d\n",
        certs_->path("server.pem"), certs_->path("server.key"),
        certs_->path("ca.pem"), certs_->path("ca.key"));
    // The admin token rampartctl presents (the server's "bootstrap" token).
    token_file_ = certs_->path("admin.token");
    std::ofstream(token_file_) << "tls-integration-admin-token-0123456789\n";
    ::chmod(token_file_.c_str(), 0600);
    auto server = ServerProcess::Start(
        ServerBinary(),
        {"--config", config_, "--db", "sqlite:" + certs_->path("rampart.db"),
         "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--bootstrap-token-file", token_file_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ca_pem_ = certs_->Read("ca.pem");
  }
  void TearDown() override {
    if (HasFailure() && server_ != nullptr) {
      std::cerr << "server log:\n" << server_->log();
    }
  }

  std::string target() const { return server_->grpc_target(); }

  // rampartctl with the admin client certificate and token over TLS.
  int Ctl(std::vector<std::string> args, std::string* out = nullptr,
          std::string* err = nullptr) {
    args.insert(args.begin(),
                {"--server", target(), "--ca-file", certs_->path("ca.pem"),
                 "--cert", certs_->path("admin-ops.pem"), "--key",
                 certs_->path("admin-ops.key"), "--token-file", token_file_});
    std::ostringstream o;
    std::ostringstream e;
    const int code = ctl::RunCtl(args, o, e);
    if (out != nullptr) *out = o.str();
    if (err != nullptr) *err = e.str();
    return code;
  }

  std::string NewToken(const std::string& agent_id) {
    std::string out;
    std::string err;
    EXPECT_EQ(Ctl({"--json", "agents", "enroll", agent_id, "--ttl", "1h"}, &out,
                  &err),
              0)
        << err;
    return nlohmann::json::parse(out).value("token", "");
  }

  // `rampart-agent enroll`; returns the process result.
  ProcessResult AgentEnroll(const std::string& token,
                            const std::string& agent_id,
                            const std::string& state_dir) {
    auto r = RunProcess(
        AgentBinary(),
        {"enroll", "--server", target(), "--ca-file", certs_->path("ca.pem"),
         "--token", token, "--agent-id", agent_id, "--state-dir", state_dir});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ProcessResult{.status = -1};
  }

  // Enrolls `agent_id` end to end; returns its state dir.
  std::string Enroll(const std::string& agent_id) {
    const std::string state = certs_->path("state-" + agent_id);
    const ProcessResult r = AgentEnroll(NewToken(agent_id), agent_id, state);
    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.err;
    return state;
  }

  std::unique_ptr<FakeAgent> AgentWith(
      std::shared_ptr<grpc::ChannelCredentials> creds) {
    return std::make_unique<FakeAgent>(
        grpc::CreateChannel(target(), std::move(creds)));
  }
  std::unique_ptr<FakeAgent> EnrolledAgent(const std::string& state) {
    return AgentWith(Tls(Slurp(state + "/tls/ca.pem"),
                         Slurp(state + "/tls/agent.pem"),
                         Slurp(state + "/tls/agent.key")));
  }

  // Opens a stream with `hello_id` and returns how it ended (OK if Welcome).
  grpc::Status Connect(FakeAgent& agent, const std::string& hello_id) {
    absl::StatusOr<v1::Welcome> w =
        agent.Handshake(FakeAgent::MakeHello(hello_id));
    if (w.ok()) {
      return grpc::Status::OK;
    }
    absl::StatusOr<grpc::Status> end = agent.WaitForEnd();
    return end.ok() ? *end
                    : grpc::Status(grpc::StatusCode::UNKNOWN,
                                   std::string(end.status().message()));
  }

  static std::string AgentBinary() { return RAMPART_AGENT_BIN; }

  std::optional<TestCerts> certs_;
  std::optional<TestCerts> other_ca_;
  std::string config_;
  std::string token_file_;
  std::string ca_pem_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(TlsIntegrationTest, EnrollmentHappyPathThenMutualTlsStream) {
  const std::string state = Enroll("dom-01");
  struct stat st = {};
  ASSERT_EQ(stat((state + "/tls/agent.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat((state + "/tls").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(Slurp(state + "/tls/ca.pem"), ca_pem_);

  auto agent = EnrolledAgent(state);
  const grpc::Status s = Connect(*agent, "dom-01");
  EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();

  // The audit log has the enrollment.
  std::string out;
  std::string err;
  ASSERT_EQ(Ctl({"--json", "audit", "--since", "1h"}, &out, &err), 0) << err;
  EXPECT_THAT(out, HasSubstr("agent.enroll"));
  EXPECT_THAT(out, HasSubstr("agent.enrolled"));
  EXPECT_THAT(out, HasSubstr("token:bootstrap"));  // the admin's token
  EXPECT_THAT(out, HasSubstr("cert:ops"));  // its certificate, in the peer
  // The agent's enrollment is recorded with the address it came from.
  EXPECT_THAT(out, HasSubstr(R"("peer": "127.0.0.1")"));
}

// issue 16 item 8e: the enrollment token need not be on the command line
// (where `ps` shows it): --token-file FILE and --token-file - (stdin).
TEST_F(TlsIntegrationTest, EnrollReadsTheTokenFromAFileOrStandardInput) {
  const std::string file = certs_->path("enroll.token");
  std::ofstream(file) << "  " << NewToken("dom-01") << "  \nignored\n";
  auto from_file =
      RunProcess(AgentBinary(),
                 {"enroll", "--server", target(), "--ca-file",
                  certs_->path("ca.pem"), "--token-file", file, "--agent-id",
                  "dom-01", "--state-dir", certs_->path("f1")});
  ASSERT_TRUE(from_file.ok()) << from_file.status();
  EXPECT_TRUE(WIFEXITED(from_file->status) &&
              WEXITSTATUS(from_file->status) == 0)
      << from_file->err;
  EXPECT_TRUE(std::ifstream(certs_->path("f1") + "/tls/agent.pem").good());

  const std::string token = NewToken("dom-02");
  auto from_stdin = RunProcess(
      "/bin/sh",
      {"-c",
       absl::StrFormat("printf '%%s\\n' \"$1\" | \"$2\" enroll --server "
                       "%s --ca-file %s --token-file - --agent-id dom-02 "
                       "--state-dir %s",
                       target(), certs_->path("ca.pem"), certs_->path("f2")),
       "sh", token, AgentBinary()});
  ASSERT_TRUE(from_stdin.ok()) << from_stdin.status();
  EXPECT_TRUE(WIFEXITED(from_stdin->status) &&
              WEXITSTATUS(from_stdin->status) == 0)
      << from_stdin->err;
  EXPECT_TRUE(std::ifstream(certs_->path("f2") + "/tls/agent.pem").good());

  // Both, or an empty file, are usage errors (exit 2) before any network call.
  std::ofstream(certs_->path("empty.token")) << "\n";
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"--token", "x", "--token-file", file},
        std::vector<std::string>{"--token-file", certs_->path("empty.token")},
        std::vector<std::string>{"--token-file", certs_->path("missing")}}) {
    std::vector<std::string> args = {"enroll",
                                     "--server",
                                     target(),
                                     "--ca-file",
                                     certs_->path("ca.pem"),
                                     "--agent-id",
                                     "dom-03",
                                     "--state-dir",
                                     certs_->path("f3")};
    args.insert(args.end(), bad.begin(), bad.end());
    auto r = RunProcess(AgentBinary(), args);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(WIFEXITED(r->status) && WEXITSTATUS(r->status) != 0)
        << bad.back();
  }
}

TEST_F(TlsIntegrationTest, TokenIsSingleUseAndBoundToItsAgent) {
  const std::string token = NewToken("dom-01");
  // Issued for dom-01: useless for dom-02, with the one error for all.
  ProcessResult other = AgentEnroll(token, "dom-02", certs_->path("s2"));
  EXPECT_EQ(WEXITSTATUS(other.status), 1) << other.err;
  EXPECT_THAT(other.err, HasSubstr("enrollment token is not valid"));
  ProcessResult first = AgentEnroll(token, "dom-01", certs_->path("s1"));
  EXPECT_EQ(WEXITSTATUS(first.status), 0) << first.err;
  ProcessResult again = AgentEnroll(token, "dom-01", certs_->path("s3"));
  EXPECT_EQ(WEXITSTATUS(again.status), 1) << again.err;
  EXPECT_THAT(again.err, HasSubstr("enrollment token is not valid"));
  ProcessResult garbage =
      AgentEnroll("not-a-token", "dom-01", certs_->path("s4"));
  EXPECT_THAT(garbage.err, HasSubstr("enrollment token is not valid"));
}

TEST_F(TlsIntegrationTest, AgentWithoutClientCertificateIsRefused) {
  auto agent = AgentWith(Tls(ca_pem_));
  const grpc::Status s = Connect(*agent, "dom-01");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("client certificate is required"));
}

TEST_F(TlsIntegrationTest, CertificateFromAnotherCaIsRefused) {
  auto agent = AgentWith(Tls(ca_pem_, other_ca_->Read("agent-dom-01.pem"),
                             other_ca_->Read("agent-dom-01.key")));
  const grpc::Status s = Connect(*agent, "dom-01");
  // The TLS handshake fails: no stream, no Welcome.
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsIntegrationTest, PlaintextClientIsRefused) {
  auto agent = AgentWith(grpc::InsecureChannelCredentials());
  const grpc::Status s = Connect(*agent, "dom-01");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
}

TEST_F(TlsIntegrationTest, CertificateNameMustMatchHello) {
  const std::string state = Enroll("dom-01");
  auto agent = EnrolledAgent(state);
  const grpc::Status s = Connect(*agent, "dom-02");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("names agent \"dom-01\""));
}

TEST_F(TlsIntegrationTest, CertificateOfTheRightCaButNotEnrolledIsRefused) {
  auto agent = AgentWith(Tls(ca_pem_, certs_->Read("agent-stranger.pem"),
                             certs_->Read("agent-stranger.key")));
  const grpc::Status s = Connect(*agent, "stranger");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("not enrolled"));
}

TEST_F(TlsIntegrationTest, RevokedAgentIsCutOffAndCannotReconnect) {
  const std::string state = Enroll("dom-01");
  auto agent = EnrolledAgent(state);
  ASSERT_TRUE(Connect(*agent, "dom-01").ok());
  std::string out;
  std::string err;
  ASSERT_EQ(
      Ctl({"--json", "agents", "revoke", "dom-01", "--reason", "laptop stolen"},
          &out, &err),
      0)
      << err;
  EXPECT_EQ(nlohmann::json::parse(out).value("was_connected", false), true)
      << out;
  absl::StatusOr<grpc::Status> end = agent->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(end->error_message(), HasSubstr("revoked"));

  auto again = EnrolledAgent(state);
  const grpc::Status s = Connect(*again, "dom-01");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("laptop stolen"));

  // Revoking an agent the server never heard of is NOT_FOUND.
  EXPECT_NE(Ctl({"agents", "revoke", "nobody", "--reason", "x"}, &out, &err),
            0);
  EXPECT_THAT(err, HasSubstr("not found: agent nobody has no enrollment"));
}

TEST_F(TlsIntegrationTest, CtlWithoutTlsMaterialRefusesToFallBackToPlaintext) {
  std::ostringstream o;
  std::ostringstream e;
  EXPECT_EQ(ctl::RunCtl({"--server", target(), "status"}, o, e), 2);
  EXPECT_THAT(e.str(), HasSubstr("no TLS material"));
  // Server-authenticated TLS without an admin certificate still works
  // (admin authorization is a separate layer).
  std::ostringstream o2;
  std::ostringstream e2;
  EXPECT_EQ(
      ctl::RunCtl({"--server", target(), "--ca-file", certs_->path("ca.pem"),
                   "--token-file", token_file_, "status"},
                  o2, e2),
      0)
      << e2.str();
}

TEST_F(TlsIntegrationTest, ClientCertificateAloneIsNoAdminCredential) {
  // The CA that signs admin certificates signs every agent's too: a
  // certificate (here an agent's) without a token gets no admin access.
  std::ostringstream o;
  std::ostringstream e;
  EXPECT_EQ(
      ctl::RunCtl({"--server", target(), "--ca-file", certs_->path("ca.pem"),
                   "--cert", certs_->path("agent-stranger.pem"), "--key",
                   certs_->path("agent-stranger.key"), "bans", "add",
                   "203.0.113.7", "--for", "2h", "--reason", "forged"},
                  o, e),
      6);
  EXPECT_THAT(e.str(), HasSubstr("UNAUTHENTICATED"));
  // With the token, the certificate's name is recorded next to the actor.
  std::string out;
  std::string err;
  ASSERT_EQ(
      Ctl({"bans", "add", "203.0.113.7", "--for", "2h", "--reason", "test"},
          &out, &err),
      0)
      << err;
  ASSERT_EQ(Ctl({"--json", "audit"}, &out, &err), 0) << err;
  EXPECT_THAT(out, HasSubstr("token:bootstrap"));
  EXPECT_THAT(out, HasSubstr("cert:ops"));
}

// --- Start-up transport rules (no server needed) -----------------------------

TEST(ServerTransportTest, RefusesToStartWithoutTlsOrInsecure) {
  const std::string db =
      absl::StrFormat("%s/rampart-notls-%d.db", ::testing::TempDir(), getpid());
  auto r = RunProcess(ServerBinary(),
                      {"--db", "sqlite:" + db, "--listen", "127.0.0.1:0",
                       "--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(WEXITSTATUS(r->status), 2) << r->err;
  EXPECT_THAT(r->err, HasSubstr("no TLS material"));
}

TEST(ServerTransportTest, InsecureOnNonLoopbackNeedsTheForceFlag) {
  const std::string db = absl::StrFormat("%s/rampart-nonloop-%d.db",
                                         ::testing::TempDir(), getpid());
  // 192.0.2.1 (documentation range) is not an address of this host: once
  // the guard lets it through, binding fails (exit 1) - nothing listens.
  const std::vector<std::string> base = {
      "--insecure",     "--db",          "sqlite:" + db, "--listen",
      "192.0.2.1:7443", "--http-listen", "127.0.0.1:0"};
  auto refused = RunProcess(ServerBinary(), base);
  ASSERT_TRUE(refused.ok());
  EXPECT_EQ(WEXITSTATUS(refused->status), 2) << refused->err;
  EXPECT_THAT(refused->err, HasSubstr("not a loopback address"));
  EXPECT_THAT(refused->err, HasSubstr("--allow-insecure-non-loopback"));

  std::vector<std::string> forced = base;
  forced.push_back("--allow-insecure-non-loopback");
  auto passed = RunProcess(ServerBinary(), forced);
  ASSERT_TRUE(passed.ok());
  EXPECT_EQ(WEXITSTATUS(passed->status), 1) << passed->err;
  EXPECT_THAT(passed->err, HasSubstr("cannot listen on 192.0.2.1:7443"));
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove((db + suffix).c_str());
  }
}

TEST(AgentTransportTest, RunWithoutTlsMaterialIsAClearError) {
  const std::string state = absl::StrFormat("%s/rampart-agent-notls-%d",
                                            ::testing::TempDir(), getpid());
  auto r = RunProcess(
      RAMPART_AGENT_BIN,
      {"run", "--server", "127.0.0.1:1", "--agent-id", "dom-01", "--log",
       state + "/console.log", "--state-dir", state, "--firewall", "dry-run"});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(WEXITSTATUS(r->status), 1) << r->err;
  EXPECT_THAT(r->err, HasSubstr("no TLS material"));
  EXPECT_THAT(r->err, HasSubstr(state + "/tls/ca.pem"));
  EXPECT_THAT(r->err, HasSubstr("--insecure"));
}

}  // namespace
}  // namespace rampart::testing
