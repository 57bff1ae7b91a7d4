// End-to-end tests of every rampartctl command (docs/rampartctl.md) against a
// RUNNING rampart-server process: the real binary on 127.0.0.1 with
// OS-chosen ports, a throwaway PostgreSQL database (RAMPART_TEST_PG_DSN) and
// simulated agents (FakeAgent) whose events create the state the commands
// show: automatic bans, an account under attack (several addresses failing
// for one user across two agents) and a compromise alert (a success after
// failures from the same address).
//
// Most commands run in-process through RunCtl (fast); a few run the real
// `rampartctl` binary to prove main()'s wiring (RAMPART_SERVER, exit codes,
// Ctrl-C on `alerts --watch`).
//
// CtlE2eTest starts one server for the whole suite; tests that change state
// use addresses of their own, so they do not depend on each other's order.
// CtlE2eDrainTest has its own server because it stops it.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <streambuf>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ctl/cli.h"
#include "ctl/exit_codes.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fakes/fake_agent.h"
#include "tests/integration/server_process.h"
#include "tests/integration/throwaway_database.h"
#include "tests/server/pg_test_env.h"

extern char** environ;

namespace rampart::testing {
namespace {

using ::rampart::ctl::kExitError;
using ::rampart::ctl::kExitNotFound;
using ::rampart::ctl::kExitOk;
using ::rampart::ctl::kExitPartial;
using ::rampart::ctl::kExitUnreachable;
using ::rampart::ctl::kExitUsage;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
// Ordered, so the documented field order can be checked.
using Json = nlohmann::ordered_json;

constexpr absl::Duration kWait = absl::Seconds(20);

// ---------------------------------------------------------------------------
// Plumbing

constexpr char kConfigYaml[] = R"(
policy:
  ban_threshold: 5
  ban_jitter: 0
  account_min_ips: 3
housekeeping_interval: 1s
)";

// The admin token every test uses: the server makes it the admin token
// "bootstrap" from --bootstrap-token-file (docs/security.md).
constexpr char kAdminToken[] = "e2e-admin-token-0123456789abcdef0123456789";

// A database, a config file, an admin token file and a running server.
struct ServerEnv {
  std::unique_ptr<ThrowawayDatabase> db;
  std::string config_path;
  std::string token_path;
  std::unique_ptr<ServerProcess> server;

  absl::Status Start(const std::string& dsn, const std::string& tag) {
    absl::StatusOr<std::unique_ptr<ThrowawayDatabase>> created =
        ThrowawayDatabase::Create(dsn, "e2ectl");
    if (!created.ok()) {
      return created.status();
    }
    db = *std::move(created);
    config_path = absl::StrFormat("%s/rampart-e2ectl-%d-%s.yaml",
                                  ::testing::TempDir(), getpid(), tag);
    std::ofstream(config_path) << kConfigYaml;
    token_path = absl::StrFormat("%s/rampart-e2ectl-%d-%s.token",
                                 ::testing::TempDir(), getpid(), tag);
    std::ofstream(token_path) << kAdminToken << "\n";
    chmod(token_path.c_str(), 0600);
    auto started = ServerProcess::Start(
        ServerBinary(),
        {"--insecure", "--config", config_path, "--db", db->db_flag(),
         "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
         "--bootstrap-token-file", token_path});
    if (!started.ok()) {
      return started.status();
    }
    server = std::move(*started);
    return absl::OkStatus();
  }
  void Stop() {
    server.reset();
    db.reset();
    if (!config_path.empty()) {
      std::remove(config_path.c_str());
    }
    if (!token_path.empty()) {
      std::remove(token_path.c_str());
    }
  }
  std::string target() const { return server->grpc_target(); }
};

absl::StatusOr<std::unique_ptr<FakeAgent>> ConnectAgent(
    const std::string& target, const std::string& id) {
  auto agent = std::make_unique<FakeAgent>(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  auto welcome = agent->Handshake(FakeAgent::MakeHello(id), kWait);
  if (!welcome.ok()) {
    return welcome.status();
  }
  return agent;
}

v1::AuthEvent Failure(const std::string& ip, const std::string& user) {
  return MakeAuthFailure(ip, absl::Now(), user);
}
v1::AuthEvent Success(const std::string& ip, const std::string& user) {
  v1::AuthEvent e = MakeAuthFailure(ip, absl::Now(), user);
  e.set_kind(v1::EVENT_KIND_AUTH_SUCCESS);
  return e;
}
// `n` SMTP failures from `ip` for users user0..user<n-1>.
std::vector<v1::AuthEvent> Failures(const std::string& ip, int n) {
  std::vector<v1::AuthEvent> events;
  for (int i = 0; i < n; ++i) {
    events.push_back(Failure(ip, "user" + std::to_string(i)));
  }
  return events;
}

absl::Status SendAndWait(FakeAgent& agent, uint64_t sequence,
                         const std::vector<v1::AuthEvent>& events) {
  if (!agent.SendBatch(sequence, events)) {
    return absl::UnavailableError("stream closed");
  }
  if (absl::Status s = agent.WaitForAck(sequence, kWait); !s.ok()) {
    return s;
  }
  if (agent.rejections().count(sequence) != 0) {
    return absl::InternalError(absl::StrCat(
        "batch rejected: ", agent.rejections().at(sequence).DebugString()));
  }
  return absl::OkStatus();
}

// Polls `done` until it holds or `timeout` passes. For state that only shows
// in query results (alerts, accounts), where there is no event to wait on.
bool PollUntil(const std::function<bool()>& done,
               absl::Duration timeout = kWait) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (done()) {
      return true;
    }
    if (absl::Now() >= deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

struct CtlResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::ostream& operator<<(std::ostream& os, const CtlResult& r) {
  return os << "exit " << r.code << "\n--- stdout:\n"
            << r.out << "\n--- stderr:\n"
            << r.err;
}

// Runs rampartctl in-process with exactly `args`.
CtlResult RunRaw(const std::vector<std::string>& args,
                 const ctl::CtlEnvironment& env = {}) {
  std::ostringstream o;
  std::ostringstream e;
  CtlResult r;
  r.code = ctl::RunCtl(args, o, e, env);
  r.out = o.str();
  r.err = e.str();
  return r;
}

std::optional<Json> ParseJson(const std::string& text) {
  try {
    return Json::parse(text);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << text;
    return std::nullopt;
  }
}

// `object` has every key of `keys`, in that relative order (the documented
// shape; fields may only ever be added).
void ExpectFields(const Json& object, std::initializer_list<const char*> keys,
                  std::string_view what) {
  ASSERT_TRUE(object.is_object()) << what << ": " << object.dump();
  std::vector<std::string> order;
  for (auto it = object.begin(); it != object.end(); ++it) {
    order.push_back(it.key());
  }
  size_t last = 0;
  bool first = true;
  for (const char* key : keys) {
    const auto at = std::find(order.begin(), order.end(), key);
    if (at == order.end()) {
      ADD_FAILURE() << what << ": missing \"" << key << "\" in "
                    << object.dump();
      continue;
    }
    const auto index = static_cast<size_t>(at - order.begin());
    EXPECT_TRUE(first || index > last)
        << what << ": \"" << key << "\" out of the documented order in "
        << object.dump();
    last = index;
    first = false;
  }
}

void ExpectBanShape(const Json& ban) {
  ExpectFields(ban,
               {"id", "prefix", "created_at", "expires_at", "reason", "origin",
                "scope", "escalation_level", "revision"},
               "Ban");
  EXPECT_TRUE(ban.value("id", Json()).is_number_unsigned()) << ban.dump();
  EXPECT_TRUE(ban.value("created_at", Json()).is_string()) << ban.dump();
  Json expires = ban.value("expires_at", Json(0));
  EXPECT_TRUE(expires.is_string() || expires.is_null()) << ban.dump();
}
void ExpectEventShape(const Json& event) {
  ExpectFields(event,
               {"agent_id", "time", "observed_at", "received_at", "kind",
                "protocol", "ip", "user", "log_time_text"},
               "Event");
}
void ExpectAllowShape(const Json& entry) {
  ExpectFields(
      entry,
      {"id", "prefix", "created_at", "expires_at", "comment", "created_by"},
      "AllowEntry");
}
void ExpectAlertShape(const Json& alert) {
  ExpectFields(alert,
               {"id", "kind", "raised_at", "user", "ip", "agent_id", "summary",
                "evidence"},
               "Alert");
  for (const Json& e : alert.value("evidence", Json::array())) {
    ExpectEventShape(e);
  }
}
void ExpectAccountShape(const Json& account) {
  ExpectFields(
      account,
      {"user", "distinct_ips", "distinct_servers", "failures", "locked_out",
       "compromise_suspected", "first_seen", "last_seen", "window_seconds",
       "protocols", "agent_ids", "sample_ips", "evidence"},
      "Account");
}

// The first element of `array` whose `key` is `value` (a copy).
std::optional<Json> FindBy(const Json& array, const char* key,
                           const std::string& value) {
  if (!array.is_array()) {
    return std::nullopt;
  }
  for (const Json& item : array) {
    if (item.is_object() && item.contains(key) && item.at(key) == value) {
      return item;
    }
  }
  return std::nullopt;
}

// `text` parsed; an empty object (after a recorded failure) if not JSON.
Json JsonOf(const std::string& text) {
  std::optional<Json> j = ParseJson(text);
  return j ? *j : Json::object();
}

// A stream buffer a test can wait on (with a deadline) while another thread
// writes to it.
class WaitableBuf : public std::streambuf {
 public:
  std::string str() const {
    absl::MutexLock lock(&mu_);
    return text_;
  }
  // Waits until the text contains `needle`; false after `timeout`.
  bool WaitForText(const std::string& needle, absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    const auto has = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return text_.find(needle) != std::string::npos;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&has), timeout);
  }

 protected:
  int_type overflow(int_type c) override {
    if (c != traits_type::eof()) {
      const char ch = traits_type::to_char_type(c);
      xsputn(&ch, 1);
    }
    return traits_type::not_eof(c);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  mutable absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
};

// --- The real rampartctl binary ---------------------------------------------

std::string CtlBinary() { return RAMPARTCTL_BIN; }

// A child process with its stdout and stderr on pipes.
class Child {
 public:
  // Starts `binary args...` with stdin /dev/null and the test's environment
  // minus RAMPART_SERVER, plus `extra_env` ("NAME=value").
  static std::unique_ptr<Child> Spawn(
      const std::vector<std::string>& args,
      const std::vector<std::string>& extra_env = {}) {
    std::vector<std::string> argv_storage = {CtlBinary()};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<std::string> env_storage;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string_view(*e).substr(0, 15) != "RAMPART_SERVER=") {
        env_storage.emplace_back(*e);
      }
    }
    env_storage.insert(env_storage.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> argv;
    for (std::string& a : argv_storage) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& e : env_storage) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);

    int out_pipe[2];
    int err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return nullptr;
    }
    const pid_t pid = fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return nullptr;
    }
    if (pid == 0) {
      // Only async-signal-safe calls until exec.
      const int devnull = open("/dev/null", O_RDONLY);
      dup2(devnull, 0);
      dup2(out_pipe[1], 1);
      dup2(err_pipe[1], 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    auto child = std::unique_ptr<Child>(new Child());
    child->pid_ = pid;
    child->fds_[0] = out_pipe[0];
    child->fds_[1] = err_pipe[0];
    return child;
  }

  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      (void)Reap(absl::Seconds(10));
    }
    for (int fd : fds_) {
      if (fd >= 0) {
        close(fd);
      }
    }
  }

  // Reads stdout/stderr until `done` holds (checked after every read), both
  // reach EOF, or `timeout` passes. Returns whether `done` held (or, with no
  // predicate, whether both reached EOF).
  bool ReadUntil(const std::function<bool()>& done, absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      if (done && done()) {
        return true;
      }
      if (fds_[0] < 0 && fds_[1] < 0) {
        return !done;
      }
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return false;
      }
      pollfd p[2];
      int n = 0;
      int which[2];
      for (int i = 0; i < 2; ++i) {
        if (fds_[i] >= 0) {
          p[n] = pollfd{fds_[i], POLLIN, 0};
          which[n++] = i;
        }
      }
      const int ready = poll(p, static_cast<nfds_t>(n),
                             static_cast<int>(std::max<int64_t>(
                                 1, absl::ToInt64Milliseconds(left))));
      if (ready < 0 && errno != EINTR) {
        return false;
      }
      for (int i = 0; i < n && ready > 0; ++i) {
        if ((p[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
          continue;
        }
        char buf[4096];
        const ssize_t got = read(p[i].fd, buf, sizeof(buf));
        if (got > 0) {
          (which[i] == 0 ? out_ : err_).append(buf, static_cast<size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          close(fds_[which[i]]);
          fds_[which[i]] = -1;
        }
      }
    }
  }

  // Waits for the exit; the status as from waitpid, or nullopt after
  // `timeout` (the child is then killed).
  std::optional<int> Wait(absl::Duration timeout) {
    std::optional<int> status = Reap(timeout);
    if (!status) {
      kill(pid_, SIGKILL);
      (void)Reap(absl::Seconds(10));
    }
    return status;
  }

  void Signal(int sig) { kill(pid_, sig); }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

 private:
  Child() = default;

  std::optional<int> Reap(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      if (absl::Now() >= deadline) {
        return std::nullopt;
      }
      // No blocking wait-with-timeout for a child; bounded short polls.
      poll(nullptr, 0, 10);
    }
    return std::nullopt;
  }

  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  std::string out_;
  std::string err_;
};

// Runs the rampartctl binary to completion (bounded).
CtlResult RunBinary(const std::vector<std::string>& args,
                    const std::vector<std::string>& extra_env = {}) {
  CtlResult r;
  auto child = Child::Spawn(args, extra_env);
  if (child == nullptr) {
    return r;
  }
  EXPECT_TRUE(child->ReadUntil(nullptr, kWait)) << "rampartctl did not finish";
  const std::optional<int> status = child->Wait(kWait);
  r.out = child->out();
  r.err = child->err();
  if (status && WIFEXITED(*status)) {
    r.code = WEXITSTATUS(*status);
  } else {
    ADD_FAILURE() << "rampartctl did not exit normally";
  }
  return r;
}

// ---------------------------------------------------------------------------
// The shared server and its state

struct SuiteState {
  ServerEnv env;
  std::unique_ptr<FakeAgent> mx1;
  std::unique_ptr<FakeAgent> mx2;
  absl::Status setup = absl::OkStatus();
  std::string temp_dir;
  int next_sequence_mx1 = 10;
};

class CtlE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_ = new SuiteState();
    const std::string dsn = server::PgTestDsn();
    if (dsn.empty()) {
      return;  // SetUp() skips (or fails under CI)
    }
    s_->setup = BuildState(dsn);
  }

  static void TearDownTestSuite() {
    if (s_ != nullptr) {
      s_->mx1.reset();
      s_->mx2.reset();
      s_->env.Stop();
      if (!s_->temp_dir.empty()) {
        std::error_code ec;
        std::filesystem::remove_all(s_->temp_dir, ec);
      }
      delete s_;
      s_ = nullptr;
    }
  }

  void SetUp() override {
    if (server::RequirePgTestDsn().empty()) {
      return;
    }
    ASSERT_TRUE(s_->setup.ok())
        << s_->setup
        << (s_->env.server ? "\nserver log:\n" + s_->env.server->log() : "");
  }

  void TearDown() override {
    if (HasFailure() && s_->env.server) {
      const std::string log = s_->env.server->log();
      std::fprintf(
          stderr, "--- server log (last 4000 bytes):\n%s\n",
          log.substr(log.size() > 4000 ? log.size() - 4000 : 0).c_str());
    }
  }

  // The scenario every test sees:
  //  - agents mx1 and mx2 connected and reporting their enforced revision;
  //  - automatic bans of 198.51.100.7 (6 failures via mx1) and 203.0.113.9
  //    (6 failures via mx2);
  //  - account "alice" under attack: 192.0.2.21/.23 via mx1 and 192.0.2.22
  //    via mx2 (account_min_ips is 3);
  //  - a compromise alert: "bob" fails twice from 192.0.2.50 via mx2, then
  //    logs in from there.
  static absl::Status BuildState(const std::string& dsn) {
    if (absl::Status st = s_->env.Start(dsn, "suite"); !st.ok()) {
      return st;
    }
    s_->temp_dir =
        absl::StrFormat("%s/rampart-e2ectl-%d", ::testing::TempDir(), getpid());
    std::filesystem::create_directories(s_->temp_dir);
    auto mx1 = ConnectAgent(s_->env.target(), "mx1");
    if (!mx1.ok()) {
      return mx1.status();
    }
    s_->mx1 = std::move(*mx1);
    auto mx2 = ConnectAgent(s_->env.target(), "mx2");
    if (!mx2.ok()) {
      return mx2.status();
    }
    s_->mx2 = std::move(*mx2);
    FakeAgent& a = *s_->mx1;
    FakeAgent& b = *s_->mx2;

    if (absl::Status st = SendAndWait(a, 1, Failures("198.51.100.7", 6));
        !st.ok()) {
      return st;
    }
    if (absl::Status st = b.WaitForBan("198.51.100.7/32", kWait); !st.ok()) {
      return st;
    }
    if (absl::Status st = SendAndWait(b, 1, Failures("203.0.113.9", 6));
        !st.ok()) {
      return st;
    }
    if (absl::Status st = a.WaitForBan("203.0.113.9/32", kWait); !st.ok()) {
      return st;
    }
    if (absl::Status st = SendAndWait(
            a, 2,
            {Failure("192.0.2.21", "alice"), Failure("192.0.2.23", "alice")});
        !st.ok()) {
      return st;
    }
    if (absl::Status st = SendAndWait(b, 2, {Failure("192.0.2.22", "alice")});
        !st.ok()) {
      return st;
    }
    if (absl::Status st = SendAndWait(
            b, 3, {Failure("192.0.2.50", "bob"), Failure("192.0.2.50", "bob")});
        !st.ok()) {
      return st;
    }
    if (absl::Status st = SendAndWait(b, 4, {Success("192.0.2.50", "bob")});
        !st.ok()) {
      return st;
    }
    if (!a.SendEnforced() || !b.SendEnforced()) {
      return absl::UnavailableError("enforced report not sent");
    }
    // Alerts, accounts and enforcement reports are committed asynchronously
    // after the ack: poll the admin API (bounded).
    const bool ready = PollUntil([&] {
      CtlResult alerts = Ctl({"alerts", "--json"});
      CtlResult accounts = Ctl({"accounts", "list", "--json"});
      CtlResult agents = Ctl({"agents", "list", "--json"});
      if (alerts.code != 0 || accounts.code != 0 || agents.code != 0) {
        return false;
      }
      Json al = Json::parse(alerts.out, nullptr, false);
      Json ac = Json::parse(accounts.out, nullptr, false);
      Json ag = Json::parse(agents.out, nullptr, false);
      if (al.is_discarded() || ac.is_discarded() || ag.is_discarded()) {
        return false;
      }
      int current = 0;
      for (const Json& agent : ag["agents"]) {
        current += agent["enforced_revision"] == ag["current_revision"] ? 1 : 0;
      }
      return FindBy(al["alerts"], "user", "bob").has_value() &&
             FindBy(ac["accounts"], "user", "alice").has_value() &&
             current == 2;
    });
    if (!ready) {
      return absl::DeadlineExceededError(
          "alert for bob, account alice or enforcement reports did not show");
    }
    return absl::OkStatus();
  }

  // Runs rampartctl in-process against the suite's server.
  static CtlResult Ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--insecure", "--server", s_->env.target(),
                               "--token-file", s_->env.token_path});
    return RunRaw(args);
  }
  // Runs with --json; expects exit 0 and a JSON object.
  static Json CtlJson(std::vector<std::string> args) {
    args.push_back("--json");
    const CtlResult r = Ctl(args);
    EXPECT_EQ(r.code, kExitOk) << r;
    std::optional<Json> j = ParseJson(r.out);
    return j ? *j : Json::object();
  }

  static std::string WriteFile(const std::string& name,
                               const std::string& text) {
    const std::string path = s_->temp_dir + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // A fresh batch sequence for mx1 (tests that send events).
  static uint64_t NextSequence() { return s_->next_sequence_mx1++; }

  static FakeAgent& mx1() { return *s_->mx1; }
  static FakeAgent& mx2() { return *s_->mx2; }
  static std::string target() { return s_->env.target(); }

  static SuiteState* s_;
};

SuiteState* CtlE2eTest::s_ = nullptr;

// --- status ------------------------------------------------------------------

TEST_F(CtlE2eTest, StatusTableAndJson) {
  const CtlResult r = Ctl({"status"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, HasSubstr("Server:             rampart-server "));
  EXPECT_THAT(r.out, HasSubstr("Store:              ok"));
  EXPECT_THAT(r.out, HasSubstr("Agents:             2 known, 2 connected"));
  EXPECT_THAT(r.out, HasSubstr("Ban threshold:      5.00"));
  EXPECT_EQ(r.err, "");

  Json j = CtlJson({"status"});
  ExpectFields(j,
               {"server_version", "server_id", "started_at", "uptime_seconds",
                "ban_list_epoch", "current_revision", "journal_oldest_revision",
                "active_bans", "permanent_bans", "allow_entries", "agents",
                "events_last_hour", "correlator_queue_depth", "open_alerts",
                "store", "policy"},
               "status");
  ExpectFields(j["agents"], {"total", "connected", "current"}, "status.agents");
  ExpectFields(j["store"],
               {"state", "message", "last_commit_at", "pending_writes"},
               "status.store");
  EXPECT_EQ(j["agents"]["total"], 2);
  EXPECT_EQ(j["agents"]["connected"], 2);
  EXPECT_EQ(j["store"]["state"], "ok");
  EXPECT_GE(j["active_bans"].get<int>(), 2);
  EXPECT_GE(j["events_last_hour"].get<int>(), 18);
  EXPECT_GE(j["open_alerts"].get<int>(), 1);
  EXPECT_GE(j["current_revision"].get<uint64_t>(), 2u);
  EXPECT_EQ(j["ban_list_epoch"], mx1().ban_list_epoch());
  ASSERT_TRUE(j["policy"].is_object()) << j.dump();
  EXPECT_EQ(j["policy"]["ban_threshold"], 5.0);
}

// --- bans list / show
// ----------------------------------------------------------

TEST_F(CtlE2eTest, BansListShowsTheAutomaticBans) {
  const CtlResult r = Ctl({"bans", "list"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, StartsWith("ID  PREFIX"));
  EXPECT_THAT(r.out, HasSubstr("ORIGIN  SCOPE"));
  EXPECT_THAT(r.out, HasSubstr("198.51.100.7/32"));
  EXPECT_THAT(r.out, HasSubstr("203.0.113.9/32"));

  Json j = CtlJson({"bans", "list", "--origin", "auto"});
  ExpectFields(j, {"bans", "total_size", "truncated"}, "bans list");
  EXPECT_EQ(j["truncated"], false);
  std::optional<Json> ban = FindBy(j["bans"], "prefix", "198.51.100.7/32");
  ASSERT_TRUE(ban.has_value()) << j.dump(2);
  ExpectBanShape(*ban);
  EXPECT_EQ((*ban)["origin"], "auto");
  EXPECT_EQ((*ban)["scope"], "all_ports");
  EXPECT_EQ((*ban)["escalation_level"], 0);
  EXPECT_TRUE((*ban)["expires_at"].is_string());
  EXPECT_THAT((*ban)["reason"].get<std::string>(), HasSubstr("mx1"));
  for (const Json& b : j["bans"]) {
    EXPECT_EQ(b["origin"], "auto") << b.dump();
  }

  // --covering finds exactly the /32 for the address.
  Json covering = CtlJson({"bans", "list", "--covering", "203.0.113.9"});
  ASSERT_EQ(covering["bans"].size(), 1u) << covering.dump(2);
  EXPECT_EQ(covering["bans"][0]["prefix"], "203.0.113.9/32");
  // --limit 1 truncates.
  Json limited = CtlJson({"bans", "list", "--limit", "1"});
  EXPECT_EQ(limited["bans"].size(), 1u);
  EXPECT_EQ(limited["truncated"], true);
}

TEST_F(CtlE2eTest, BansShowExplainsAnAutomaticBan) {
  const CtlResult r = Ctl({"bans", "show", "198.51.100.7"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, HasSubstr("198.51.100.7/32"));
  EXPECT_THAT(r.out, HasSubstr("live on 2 of 2 agents"));

  Json j = CtlJson({"bans", "show", "198.51.100.7"});
  ExpectFields(j,
               {"ban", "active", "explanation", "history", "enforcement",
                "local_agent_id"},
               "bans show");
  ExpectBanShape(j["ban"]);
  EXPECT_EQ(j["ban"]["prefix"], "198.51.100.7/32");
  EXPECT_EQ(j["active"], true);
  ASSERT_TRUE(j["explanation"].is_object()) << j.dump(2);
  ExpectFields(j["explanation"],
               {"summary", "score", "threshold", "contributions",
                "distinct_servers", "cross_server_multiplier",
                "computed_duration_seconds", "aggregated_members", "evidence"},
               "explanation");
  EXPECT_EQ(j["explanation"]["threshold"], 5.0);
  // The explanation's score is not filled in by the server (the Ban keeps
  // no score; it is in the reason): see the summary instead.
  EXPECT_THAT(j["explanation"]["summary"].get<std::string>(),
              AllOf(StartsWith("score "),
                    HasSubstr(" >= 5 after 5 events from 1 server(s): mx1")));
  EXPECT_EQ(j["explanation"]["distinct_servers"], 1);
  for (const Json& e : j["explanation"]["evidence"]) {
    ExpectEventShape(e);
    EXPECT_EQ(e["ip"], "198.51.100.7");
    EXPECT_EQ(e["agent_id"], "mx1");
  }
  ASSERT_FALSE(j["history"].empty());
  EXPECT_EQ(j["history"][0]["action"], "created");
  ExpectFields(j["history"][0],
               {"at", "action", "actor", "reason", "revision", "expires_at"},
               "history");
  ExpectFields(j["enforcement"], {"agents_enforcing", "agents_total", "agents"},
               "enforcement");
  EXPECT_EQ(j["enforcement"]["agents_total"], 2);
  EXPECT_EQ(j["enforcement"]["agents_enforcing"], 2);
  ASSERT_EQ(j["enforcement"]["agents"].size(), 2u);
  EXPECT_TRUE(
      FindBy(j["enforcement"]["agents"], "agent_id", "mx2").has_value());

  // By id: the same ban.
  Json by_id =
      CtlJson({"bans", "show", std::to_string(j["ban"]["id"].get<uint64_t>())});
  EXPECT_EQ(by_id["ban"]["prefix"], "198.51.100.7/32");
}

TEST_F(CtlE2eTest, BansShowUnknownIsNotFound) {
  const CtlResult r = Ctl({"bans", "show", "987654"});
  EXPECT_EQ(r.code, kExitNotFound) << r;
  EXPECT_THAT(r.err, StartsWith("rampartctl: bans show: not found: "));
  const CtlResult by_ip = Ctl({"bans", "show", "198.18.99.99"});
  EXPECT_EQ(by_ip.code, kExitNotFound) << by_ip;
  EXPECT_EQ(by_ip.out, "");
}

// --- bans add / remove
// ---------------------------------------------------------

TEST_F(CtlE2eTest, BansAddReachesTheAgentsAndRemoveLiftsIt) {
  const CtlResult add = Ctl(
      {"bans", "add", "198.18.1.7", "--for", "2h", "--reason", "phishing kit"});
  ASSERT_EQ(add.code, kExitOk) << add;
  EXPECT_THAT(add.out, StartsWith("Banned 198.18.1.7/32 until "));
  EXPECT_THAT(add.out, HasSubstr("(in 2h): ban "));
  EXPECT_THAT(add.out, HasSubstr("scope all_ports, revision "));
  ASSERT_TRUE(mx1().WaitForBan("198.18.1.7/32", kWait).ok());
  ASSERT_TRUE(mx2().WaitForBan("198.18.1.7/32", kWait).ok());
  const auto entry = [](FakeAgent& agent) -> std::optional<v1::BanEntry> {
    for (const auto& [id, b] : agent.bans()) {
      if (b.prefix() == "198.18.1.7/32") {
        return b;
      }
    }
    return std::nullopt;
  };
  ASSERT_TRUE(entry(mx2()).has_value());
  EXPECT_EQ(entry(mx2())->reason(), "phishing kit");
  EXPECT_EQ(entry(mx2())->origin(), v1::BAN_ORIGIN_MANUAL);

  Json listed = CtlJson({"bans", "list", "--origin", "manual"});
  std::optional<Json> ban = FindBy(listed["bans"], "prefix", "198.18.1.7/32");
  ASSERT_TRUE(ban.has_value()) << listed.dump(2);
  EXPECT_EQ((*ban)["reason"], "phishing kit");

  const CtlResult remove = Ctl(
      {"bans", "remove", "198.18.1.7", "--reason", "false positive", "--json"});
  ASSERT_EQ(remove.code, kExitOk) << remove;
  Json removed = JsonOf(remove.out);
  ExpectFields(removed, {"removed", "revision"}, "bans remove");
  ExpectBanShape(removed["removed"]);
  EXPECT_EQ(removed["removed"]["prefix"], "198.18.1.7/32");
  const uint64_t revision = removed["revision"].get<uint64_t>();
  ASSERT_TRUE(mx1().WaitForRevision(revision, kWait).ok());
  ASSERT_TRUE(mx2().WaitForRevision(revision, kWait).ok());
  EXPECT_THAT(mx1().banned_prefixes(), Not(Contains("198.18.1.7/32")));
  EXPECT_THAT(mx2().banned_prefixes(), Not(Contains("198.18.1.7/32")));
  EXPECT_TRUE(mx2().protocol_error().ok()) << mx2().protocol_error();

  // Gone: removing again is NOT_FOUND; `bans show --inactive` finds it.
  const CtlResult again =
      Ctl({"bans", "remove", "198.18.1.7", "--reason", "again"});
  EXPECT_EQ(again.code, kExitNotFound) << again;
  EXPECT_THAT(again.err, StartsWith("rampartctl: bans remove: not found: "));
  Json inactive = CtlJson({"bans", "show", "198.18.1.7", "--inactive"});
  EXPECT_EQ(inactive["active"], false);
  EXPECT_EQ(inactive["ban"]["prefix"], "198.18.1.7/32");
}

TEST_F(CtlE2eTest, BansAddCidrAndIpv6WithJson) {
  const CtlResult add = Ctl({"bans", "add", "198.18.2.0/24", "--for", "2h",
                             "--reason", "scanner block", "--json"});
  ASSERT_EQ(add.code, kExitOk) << add;
  Json j = JsonOf(add.out);
  ExpectFields(j, {"created", "revision", "ban"}, "bans add");
  EXPECT_EQ(j["created"], true);
  ExpectBanShape(j["ban"]);
  EXPECT_EQ(j["ban"]["prefix"], "198.18.2.0/24");
  EXPECT_EQ(j["ban"]["origin"], "manual");
  EXPECT_EQ(j["ban"]["reason"], "scanner block");
  const absl::Duration lifetime = [&] {
    absl::Time created;
    absl::Time expires;
    std::string e1;
    std::string e2;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full,
                                j["ban"]["created_at"].get<std::string>(),
                                &created, &e1))
        << e1;
    EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full,
                                j["ban"]["expires_at"].get<std::string>(),
                                &expires, &e2))
        << e2;
    return expires - created;
  }();
  EXPECT_LE(absl::AbsDuration(lifetime - absl::Hours(2)), absl::Seconds(5))
      << lifetime;
  ASSERT_TRUE(mx1().WaitForBan("198.18.2.0/24", kWait).ok());

  // IPv6 text is canonicalised; a permanent ban has expires_at null.
  const CtlResult v6 = Ctl({"bans", "add", "2001:DB8:0::1", "--permanent",
                            "--reason", "v6 scanner", "--json"});
  ASSERT_EQ(v6.code, kExitOk) << v6;
  Json j6 = JsonOf(v6.out);
  EXPECT_EQ(j6["ban"]["prefix"], "2001:db8::1/128");
  EXPECT_TRUE(j6["ban"]["expires_at"].is_null());
  ASSERT_TRUE(mx2().WaitForBan("2001:db8::1/128", kWait).ok());

  // Removing the CIDR by id.
  const CtlResult remove =
      Ctl({"bans", "remove", std::to_string(j["ban"]["id"].get<uint64_t>()),
           "--reason", "done"});
  ASSERT_EQ(remove.code, kExitOk) << remove;
  EXPECT_THAT(remove.out, HasSubstr("198.18.2.0/24"));
  const CtlResult remove6 =
      Ctl({"bans", "remove", "2001:db8::1", "--reason", "done", "--json"});
  ASSERT_EQ(remove6.code, kExitOk) << remove6;
  ASSERT_TRUE(mx1()
                  .WaitForRevision(
                      JsonOf(remove6.out)["revision"].get<uint64_t>(), kWait)
                  .ok());
  EXPECT_THAT(mx1().banned_prefixes(), AllOf(Not(Contains("198.18.2.0/24")),
                                             Not(Contains("2001:db8::1/128"))));
}

TEST_F(CtlE2eTest, BansAddRefusedByTheServerIsExit1) {
  // Broader than /16 without --allow-broad: the server refuses.
  const CtlResult broad =
      Ctl({"bans", "add", "10.0.0.0/8", "--for", "1h", "--reason", "too wide"});
  EXPECT_EQ(broad.code, kExitError) << broad;
  EXPECT_THAT(broad.err,
              StartsWith("rampartctl: bans add: FAILED_PRECONDITION: "));
}

// --- ip
// --------------------------------------------------------------------------

TEST_F(CtlE2eTest, IpShowsScoreServersUsersAndBans) {
  const CtlResult r = Ctl({"ip", "198.51.100.7"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, HasSubstr("198.51.100.7/32"));
  EXPECT_THAT(r.out, HasSubstr("mx1"));
  EXPECT_THAT(r.out, HasSubstr("user3"));

  Json j = CtlJson({"ip", "198.51.100.7"});
  ExpectFields(j,
               {"address", "score", "ban_threshold", "allow", "self_address",
                "active_ban", "bans", "servers_hit", "users_tried",
                "prefix_scores", "recent_events", "events_truncated"},
               "ip");
  EXPECT_EQ(j["address"], "198.51.100.7");
  EXPECT_EQ(j["ban_threshold"], 5.0);
  EXPECT_TRUE(j["allow"].is_null());
  EXPECT_EQ(j["self_address"], false);
  ASSERT_TRUE(j["active_ban"].is_object()) << j.dump(2);
  EXPECT_EQ(j["active_ban"]["prefix"], "198.51.100.7/32");
  ASSERT_EQ(j["servers_hit"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["servers_hit"][0]["agent_id"], "mx1");
  EXPECT_EQ(j["servers_hit"][0]["events"], 6);
  EXPECT_EQ(j["users_tried"].size(), 6u);
  EXPECT_TRUE(FindBy(j["users_tried"], "user", "user0").has_value());
  ASSERT_EQ(j["recent_events"].size(), 6u);
  for (const Json& e : j["recent_events"]) {
    ExpectEventShape(e);
    EXPECT_EQ(e["kind"], "auth_failure");
    EXPECT_EQ(e["protocol"], "smtp");
  }

  // The compromised account's address: failures and the success.
  Json bob = CtlJson({"ip", "192.0.2.50", "--window", "1h"});
  EXPECT_TRUE(bob["active_ban"].is_null());
  EXPECT_GT(bob["score"].get<double>(), 0);
  EXPECT_LT(bob["score"].get<double>(), 5);
  ASSERT_EQ(bob["users_tried"].size(), 1u) << bob.dump(2);
  EXPECT_EQ(bob["users_tried"][0]["user"], "bob");
  bool success = false;
  for (const Json& e : bob["recent_events"]) {
    success = success || e["kind"] == "auth_success";
  }
  EXPECT_TRUE(success) << bob.dump(2);
}

// --- allow
// -----------------------------------------------------------------------

TEST_F(CtlE2eTest, AllowAddListRemove) {
  const CtlResult add =
      Ctl({"allow", "add", "198.18.3.0/24", "--comment", "monitoring subnet"});
  ASSERT_EQ(add.code, kExitOk) << add;

  const CtlResult table = Ctl({"allow", "list"});
  ASSERT_EQ(table.code, kExitOk) << table;
  EXPECT_THAT(table.out, HasSubstr("198.18.3.0/24"));
  EXPECT_THAT(table.out, HasSubstr("monitoring subnet"));

  Json j = CtlJson({"allow", "list"});
  ExpectFields(j, {"entries", "truncated"}, "allow list");
  std::optional<Json> entry = FindBy(j["entries"], "prefix", "198.18.3.0/24");
  ASSERT_TRUE(entry.has_value()) << j.dump(2);
  ExpectAllowShape(*entry);
  EXPECT_EQ((*entry)["comment"], "monitoring subnet");
  EXPECT_TRUE((*entry)["expires_at"].is_null());
  EXPECT_EQ((*entry)["created_by"], "token:bootstrap");

  // Already there; a ban inside it is refused; an unknown entry is NOT_FOUND.
  const CtlResult dup = Ctl({"allow", "add", "198.18.3.0/24"});
  EXPECT_EQ(dup.code, kExitError) << dup;
  EXPECT_THAT(dup.err, HasSubstr("ALREADY_EXISTS"));
  const CtlResult ban = Ctl({"bans", "add", "198.18.3.9", "--for", "1h",
                             "--reason", "inside the allowlist"});
  EXPECT_EQ(ban.code, kExitError) << ban;
  EXPECT_THAT(ban.err,
              StartsWith("rampartctl: bans add: FAILED_PRECONDITION: "));

  const CtlResult remove = Ctl({"allow", "remove", "198.18.3.0/24", "--json"});
  ASSERT_EQ(remove.code, kExitOk) << remove;
  Json removed = JsonOf(remove.out);
  ExpectFields(removed, {"removed"}, "allow remove");
  EXPECT_EQ(removed["removed"]["prefix"], "198.18.3.0/24");
  Json after = CtlJson({"allow", "list"});
  EXPECT_FALSE(FindBy(after["entries"], "prefix", "198.18.3.0/24").has_value());
  const CtlResult missing = Ctl({"allow", "remove", "198.18.3.0/24"});
  EXPECT_EQ(missing.code, kExitNotFound) << missing;
}

TEST_F(CtlE2eTest, AllowAddLiftsBansInsideAndTheAgentsSeeIt) {
  ASSERT_EQ(
      Ctl({"bans", "add", "198.18.4.7", "--for", "1h", "--reason", "oops"})
          .code,
      kExitOk);
  ASSERT_TRUE(mx1().WaitForBan("198.18.4.7/32", kWait).ok());
  const CtlResult add = Ctl({"allow", "add", "198.18.4.0/28", "--for", "1d",
                             "--comment", "partner", "--json"});
  ASSERT_EQ(add.code, kExitOk) << add;
  Json j = JsonOf(add.out);
  ExpectFields(j, {"entry", "removed_bans", "revision"}, "allow add");
  ExpectAllowShape(j["entry"]);
  EXPECT_TRUE(j["entry"]["expires_at"].is_string());
  ASSERT_EQ(j["removed_bans"].size(), 1u) << j.dump(2);
  EXPECT_EQ(j["removed_bans"][0]["prefix"], "198.18.4.7/32");
  ASSERT_TRUE(mx1().WaitForRevision(j["revision"].get<uint64_t>(), kWait).ok());
  EXPECT_THAT(mx1().banned_prefixes(), Not(Contains("198.18.4.7/32")));
  EXPECT_EQ(
      Ctl({"allow", "remove", std::to_string(j["entry"]["id"].get<uint64_t>())})
          .code,
      kExitOk);
}

// Issue 16 item 4: a /0 allowlist entry switched banning off with no width
// check. Broad entries need --broad (and the admin role: the bootstrap
// token is admin; the role check itself is AdminServiceTest's) and are
// audited as "allow.add.broad".
TEST_F(CtlE2eTest, AllowAddBroadNeedsTheBroadFlagAndIsAudited) {
  for (const char* cidr : {"0.0.0.0/0", "::/0", "3fff::/20"}) {
    const CtlResult refused = Ctl({"allow", "add", cidr});
    EXPECT_EQ(refused.code, kExitError) << refused;
    EXPECT_THAT(refused.err,
                StartsWith("rampartctl: allow add: FAILED_PRECONDITION: "));
    EXPECT_THAT(refused.err, HasSubstr("broader than"));
  }
  Json none = CtlJson({"allow", "list"});
  EXPECT_FALSE(FindBy(none["entries"], "prefix", "3fff::/20").has_value());

  // 3fff::/20 (documentation, RFC 9637): no other test's bans lie inside.
  const CtlResult add =
      Ctl({"allow", "add", "3fff::/20", "--broad", "--comment", "lab"});
  ASSERT_EQ(add.code, kExitOk) << add;
  Json audit = CtlJson({"audit", "--since", "1h"});
  bool audited = false;
  for (const Json& rec : audit["records"]) {
    audited = audited || (rec.value("action", "") == "allow.add.broad" &&
                          rec.value("target", "") == "3fff::/20");
  }
  EXPECT_TRUE(audited) << audit.dump(2);
  EXPECT_EQ(Ctl({"allow", "remove", "3fff::/20"}).code, kExitOk);
}

// --- agents
// ----------------------------------------------------------------------

// Issue 16 item 3: an admin approves an agent's address (it then refuses
// bans), overrides that protection explicitly, and withdraws it; all
// audited. Claimed Hello addresses protect nothing (AgentServiceTest).
TEST_F(CtlE2eTest, AgentsProtectOverrideAndUnprotect) {
  const CtlResult approve =
      Ctl({"agents", "protect", "mx1", "198.18.40.1", "--json"});
  ASSERT_EQ(approve.code, kExitOk) << approve;
  Json j = JsonOf(approve.out);
  EXPECT_THAT(j["protected_addresses"].dump(), HasSubstr("198.18.40.1"));
  Json listed = CtlJson({"agents", "list"});
  std::optional<Json> mx1 = FindBy(listed["agents"], "agent_id", "mx1");
  ASSERT_TRUE(mx1.has_value()) << listed.dump(2);
  EXPECT_THAT((*mx1)["protected_addresses"].dump(), HasSubstr("198.18.40.1"));

  const CtlResult refused =
      Ctl({"bans", "add", "198.18.40.1", "--for", "1h", "--reason", "x"});
  EXPECT_EQ(refused.code, kExitError) << refused;
  EXPECT_THAT(refused.err, HasSubstr("agent mx1's approved address"));
  const CtlResult over =
      Ctl({"bans", "add", "198.18.40.1", "--for", "1h", "--reason",
           "agent host taken over", "--override-protected"});
  ASSERT_EQ(over.code, kExitOk) << over;
  EXPECT_EQ(Ctl({"bans", "remove", "198.18.40.1", "--reason", "done"}).code,
            kExitOk);

  EXPECT_EQ(Ctl({"agents", "unprotect", "mx1", "198.18.40.1"}).code, kExitOk);
  const CtlResult again =
      Ctl({"bans", "add", "198.18.40.1", "--for", "1h", "--reason", "y"});
  EXPECT_EQ(again.code, kExitOk) << again;
  EXPECT_EQ(Ctl({"bans", "remove", "198.18.40.1", "--reason", "done"}).code,
            kExitOk);

  Json audit = CtlJson({"audit", "--since", "1h"});
  std::set<std::string> actions;
  for (const Json& rec : audit["records"]) {
    actions.insert(rec.value("action", ""));
  }
  EXPECT_TRUE(actions.contains("agent.protect")) << audit.dump(2);
  EXPECT_TRUE(actions.contains("agent.unprotect")) << audit.dump(2);
  EXPECT_TRUE(actions.contains("ban.override_protected")) << audit.dump(2);
}

TEST_F(CtlE2eTest, AgentsListShowsBothAgents) {
  const CtlResult r = Ctl({"agents", "list"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, StartsWith("AGENT"));
  EXPECT_THAT(r.out, HasSubstr("mx1"));
  EXPECT_THAT(r.out, HasSubstr("mx2"));
  EXPECT_THAT(r.out, HasSubstr("connected"));

  Json j = CtlJson({"agents", "list", "--connected"});
  ExpectFields(j, {"agents", "current_revision", "truncated"}, "agents list");
  ASSERT_EQ(j["agents"].size(), 2u) << j.dump(2);
  for (const Json& agent : j["agents"]) {
    ExpectFields(agent,
                 {"agent_id",
                  "site",
                  "hostname",
                  "agent_version",
                  "connected",
                  "connected_since",
                  "last_seen",
                  "peer_address",
                  "host_addresses",
                  "protected_addresses",
                  "unapproved_addresses",
                  "enforced_revision",
                  "revision_lag",
                  "time_lag_seconds",
                  "apply_errors",
                  "spool_depth_batches",
                  "spool_dropped_batches",
                  "tailer_lag_seconds",
                  "clock_skew_seconds",
                  "firewall_backend",
                  "local_fallback_bans",
                  "enrollment",
                  "durable_through"},
                 "Agent");
    EXPECT_EQ(agent["connected"], true);
    EXPECT_EQ(agent["site"], "test");
    EXPECT_TRUE(agent["connected_since"].is_string());
  }
  EXPECT_TRUE(FindBy(j["agents"], "agent_id", "mx1").has_value());
  EXPECT_TRUE(FindBy(j["agents"], "agent_id", "mx2").has_value());

  Json site = CtlJson({"agents", "list", "--site", "elsewhere"});
  EXPECT_TRUE(site["agents"].empty()) << site.dump(2);
}

// This suite's server runs --insecure: no agent identity, so enrollment and
// revocation are refused (tests/integration/tls_integration_test.cc covers
// them over mutual TLS).
TEST_F(CtlE2eTest, AgentsEnrollAndRevokeNeedMutualTls) {
  const CtlResult enroll = Ctl({"agents", "enroll", "mx9", "--site", "fra"});
  EXPECT_NE(enroll.code, kExitOk) << enroll;
  EXPECT_THAT(enroll.err,
              StartsWith("rampartctl: agents enroll: FAILED_PRECONDITION: "
                         "agent enrollment needs mutual TLS"));
  EXPECT_EQ(enroll.out, "");
  const CtlResult revoke =
      Ctl({"agents", "revoke", "mx1", "--reason", "stolen host"});
  EXPECT_NE(revoke.code, kExitOk) << revoke;
  EXPECT_THAT(revoke.err,
              StartsWith("rampartctl: agents revoke: FAILED_PRECONDITION: "
                         "agent enrollment needs mutual TLS"));
  // Nothing happened to mx1.
  EXPECT_FALSE(mx1().ended());
}

// --- accounts
// --------------------------------------------------------------------

TEST_F(CtlE2eTest, AccountsListShowsTheAttackedAccount) {
  const CtlResult r = Ctl({"accounts", "list"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, HasSubstr("alice"));

  Json j = CtlJson({"accounts", "list", "--min-ips", "3"});
  ExpectFields(j, {"accounts", "truncated"}, "accounts list");
  std::optional<Json> alice = FindBy(j["accounts"], "user", "alice");
  ASSERT_TRUE(alice.has_value()) << j.dump(2);
  ExpectAccountShape(*alice);
  EXPECT_EQ((*alice)["distinct_ips"], 3);
  EXPECT_EQ((*alice)["distinct_servers"], 2);
  EXPECT_EQ((*alice)["failures"], 3);
  std::vector<std::string> agents = (*alice)["agent_ids"];
  std::sort(agents.begin(), agents.end());
  EXPECT_EQ(agents, (std::vector<std::string>{"mx1", "mx2"}));
  std::vector<std::string> ips = (*alice)["sample_ips"];
  std::sort(ips.begin(), ips.end());
  EXPECT_EQ(ips, (std::vector<std::string>{"192.0.2.21", "192.0.2.22",
                                           "192.0.2.23"}));
  // Protocols and evidence come from the stored events of its attackers.
  EXPECT_EQ((*alice)["protocols"], Json::array({"smtp"}));
  ASSERT_TRUE((*alice)["evidence"].is_array());
  ASSERT_EQ((*alice)["evidence"].size(), 3u) << alice->dump(2);
  std::vector<std::string> evidence_ips;
  for (const Json& e : (*alice)["evidence"]) {
    EXPECT_EQ(e["user"], "alice");
    EXPECT_EQ(e["kind"], "auth_failure");
    evidence_ips.push_back(e["ip"]);
  }
  std::sort(evidence_ips.begin(), evidence_ips.end());
  EXPECT_EQ(evidence_ips, ips);
  EXPECT_EQ((*alice)["locked_out"], false);
  EXPECT_EQ((*alice)["window_seconds"], 3600);
  EXPECT_EQ((*alice)["compromise_suspected"], false);
  // Users hit from one address only are not under attack at --min-ips 3.
  EXPECT_FALSE(FindBy(j["accounts"], "user", "user0").has_value());
}

// --- alerts
// ----------------------------------------------------------------------

TEST_F(CtlE2eTest, AlertsListsTheCompromiseAlert) {
  const CtlResult r = Ctl({"alerts"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, HasSubstr("bob"));
  EXPECT_THAT(r.out, HasSubstr("192.0.2.50"));

  Json j =
      CtlJson({"alerts", "--since", "1h", "--kind", "success_after_failures"});
  ExpectFields(j, {"alerts", "truncated"}, "alerts");
  std::optional<Json> bob = FindBy(j["alerts"], "user", "bob");
  ASSERT_TRUE(bob.has_value()) << j.dump(2);
  ExpectAlertShape(*bob);
  EXPECT_EQ((*bob)["kind"], "success_after_failures");
  EXPECT_EQ((*bob)["ip"], "192.0.2.50");
  EXPECT_EQ((*bob)["agent_id"], "mx2");
  EXPECT_THAT((*bob)["summary"].get<std::string>(), HasSubstr("bob"));
}

// `alerts --watch` through the real binary: a new alert raised while it
// watches is printed as a JSON line; Ctrl-C (SIGINT) ends it.
TEST_F(CtlE2eTest, AlertsWatchBinaryPrintsANewAlertUntilInterrupted) {
  Json before = CtlJson({"alerts"});
  uint64_t last_id = 0;
  for (const Json& a : before["alerts"]) {
    last_id = std::max(last_id, a["id"].get<uint64_t>());
  }
  ASSERT_GT(last_id, 0u);
  // --after: whether the alert is raised before or after the watch is
  // registered, it is delivered (replayed or live).
  auto child = Child::Spawn({"--insecure", "--server", target(), "--token-file",
                             s_->env.token_path, "alerts", "--watch", "--json",
                             "--after", std::to_string(last_id)});
  ASSERT_NE(child, nullptr);

  const uint64_t failure_seq = NextSequence();
  const uint64_t success_seq = NextSequence();
  ASSERT_TRUE(
      SendAndWait(mx1(), failure_seq, {Failure("192.0.2.60", "carol")}).ok());
  ASSERT_TRUE(
      SendAndWait(mx1(), success_seq, {Success("192.0.2.60", "carol")}).ok());
  const bool printed = child->ReadUntil(
      [&] { return child->out().find('\n') != std::string::npos; }, kWait);
  ASSERT_TRUE(printed) << "stdout: " << child->out()
                       << "\nstderr: " << child->err();
  const std::string line = child->out().substr(0, child->out().find('\n'));
  const std::optional<Json> alert = ParseJson(line);
  ASSERT_TRUE(alert.has_value());
  ExpectAlertShape(*alert);
  EXPECT_EQ((*alert)["user"], "carol");
  EXPECT_EQ((*alert)["ip"], "192.0.2.60");
  EXPECT_EQ((*alert)["agent_id"], "mx1");
  EXPECT_GT((*alert)["id"].get<uint64_t>(), last_id);

  child->Signal(SIGINT);
  const std::optional<int> status = child->Wait(kWait);
  ASSERT_TRUE(status.has_value()) << "rampartctl ignored SIGINT";
  EXPECT_TRUE(WIFSIGNALED(*status) || WIFEXITED(*status)) << *status;
}

// --- report
// ----------------------------------------------------------------------

TEST_F(CtlE2eTest, ReportTextJsonAndCsv) {
  const CtlResult text = Ctl({"report", "--since", "24h"});
  ASSERT_EQ(text.code, kExitOk) << text;
  EXPECT_THAT(text.out, StartsWith("Report "));
  EXPECT_THAT(text.out, HasSubstr("Top offenders"));
  EXPECT_THAT(text.out, HasSubstr("198.51.100.7"));
  EXPECT_THAT(text.out, HasSubstr("alice"));
  EXPECT_THAT(text.out, HasSubstr("bob"));

  Json j = CtlJson({"report", "--since", "24h"});
  ExpectFields(j,
               {"period_start", "period_end", "events_total", "per_protocol",
                "top_offenders", "new_bans_total", "new_bans",
                "targeted_accounts", "compromise_alerts"},
               "report");
  EXPECT_GE(j["events_total"].get<int>(), 18);
  EXPECT_GE(j["new_bans_total"].get<int>(), 2);
  std::optional<Json> smtp = FindBy(j["per_protocol"], "protocol", "smtp");
  ASSERT_TRUE(smtp.has_value()) << j.dump(2);
  EXPECT_GE((*smtp)["auth_failures"].get<int>(), 17);
  std::optional<Json> offender =
      FindBy(j["top_offenders"], "address", "198.51.100.7");
  ASSERT_TRUE(offender.has_value()) << j.dump(2);
  ExpectFields(*offender,
               {"address", "events", "peak_score", "distinct_servers",
                "distinct_users", "banned"},
               "offender");
  EXPECT_EQ((*offender)["events"], 6);
  EXPECT_EQ((*offender)["banned"], true);
  EXPECT_EQ((*offender)["distinct_users"], 6);
  EXPECT_TRUE(FindBy(j["new_bans"], "prefix", "203.0.113.9/32").has_value());
  std::optional<Json> alice = FindBy(j["targeted_accounts"], "user", "alice");
  ASSERT_TRUE(alice.has_value()) << j.dump(2);
  ExpectAccountShape(*alice);
  std::optional<Json> bob = FindBy(j["compromise_alerts"], "user", "bob");
  ASSERT_TRUE(bob.has_value()) << j.dump(2);
  ExpectAlertShape(*bob);

  const CtlResult csv = Ctl({"report", "--since", "24h", "--csv"});
  ASSERT_EQ(csv.code, kExitOk) << csv;
  EXPECT_THAT(csv.out,
              StartsWith("section,rank,subject,at,events,score,distinct_ips,"
                         "distinct_servers,distinct_users,banned,origin,"
                         "expires_at,ip,detail\r\n"));
  EXPECT_THAT(csv.out, HasSubstr("\r\nsummary,,period_start,"));
  EXPECT_THAT(csv.out, HasSubstr("\r\nprotocol,,smtp,"));
  EXPECT_THAT(csv.out, HasSubstr(",198.51.100.7,"));
  EXPECT_THAT(csv.out, HasSubstr("\r\nnew_ban,"));
  EXPECT_THAT(csv.out, HasSubstr(",alice,"));
  EXPECT_THAT(csv.out, HasSubstr(",bob,"));
  // Every record has the header's 14 columns (no field here has a comma).
  for (const std::string& row :
       std::vector<std::string>(absl::StrSplit(csv.out, "\r\n"))) {
    if (row.empty() || row.find('"') != std::string::npos) {
      continue;
    }
    EXPECT_EQ(std::count(row.begin(), row.end(), ','), 13) << row;
  }
}

// --- export
// ----------------------------------------------------------------------

TEST_F(CtlE2eTest, ExportInEveryFormat) {
  const CtlResult plain = Ctl({"export", "--format", "plain"});
  ASSERT_EQ(plain.code, kExitOk) << plain;
  EXPECT_THAT(plain.out, HasSubstr("198.51.100.7/32\n"));
  EXPECT_THAT(plain.out, HasSubstr("203.0.113.9/32\n"));
  for (const std::string& line :
       std::vector<std::string>(absl::StrSplit(plain.out, '\n'))) {
    EXPECT_TRUE(line.empty() || line.find('/') != std::string::npos) << line;
  }

  const CtlResult nft = Ctl({"export", "--format", "nft"});
  ASSERT_EQ(nft.code, kExitOk) << nft;
  EXPECT_THAT(nft.out, StartsWith("#!/usr/sbin/nft -f\n"));
  EXPECT_THAT(nft.out, HasSubstr("table inet rampart {"));
  EXPECT_THAT(nft.out, HasSubstr("add element inet rampart rampart_v4 { "
                                 "198.51.100.7/32 timeout "));

  const CtlResult netsh = Ctl({"export", "--format", "netsh"});
  ASSERT_EQ(netsh.code, kExitOk) << netsh;
  EXPECT_THAT(netsh.out, HasSubstr("\nGet-NetFirewallRule -DisplayName "
                                   "'rampart-block-*'"));
  EXPECT_THAT(netsh.out, HasSubstr("netsh advfirewall firewall add rule "
                                   "name=rampart-block-0001 dir=in "
                                   "action=block remoteip="));
  EXPECT_THAT(netsh.out, HasSubstr("198.51.100.7/32"));

  const CtlResult csv = Ctl({"export", "--format", "csv"});
  ASSERT_EQ(csv.code, kExitOk) << csv;
  EXPECT_THAT(csv.out,
              StartsWith("id,prefix,created_at,expires_at,origin,scope,"
                         "escalation_level,reason\r\n"));
  EXPECT_THAT(csv.out, HasSubstr(",198.51.100.7/32,"));
  EXPECT_THAT(csv.out, HasSubstr(",auto,all_ports,0,"));

  // --output writes the same text to the file; --json is a usage error.
  const std::string path = s_->temp_dir + "/bans.txt";
  const CtlResult to_file = Ctl({"export", "--format", "plain", "-o", path});
  ASSERT_EQ(to_file.code, kExitOk) << to_file;
  EXPECT_THAT(to_file.out, HasSubstr("Exported "));
  const std::string written = ReadFile(path);
  EXPECT_THAT(written, HasSubstr("198.51.100.7/32\n"));
  EXPECT_FALSE(std::filesystem::exists(path + ".rampartctl-partial"));
  const CtlResult json = Ctl({"export", "--format", "plain", "--json"});
  EXPECT_EQ(json.code, kExitUsage) << json;
}

// --- import
// ----------------------------------------------------------------------

TEST_F(CtlE2eTest, ImportPlainFileAddsBansTheAgentsReceive) {
  const std::string path = WriteFile("feed.txt",
                                     "# threat feed\n"
                                     "198.18.10.1 # brute forcer\n"
                                     "\n"
                                     "198.18.11.0/24\n");
  const CtlResult r =
      Ctl({"import", path, "--for", "7d", "--reason", "threat feed"});
  ASSERT_EQ(r.code, kExitOk) << r;
  EXPECT_THAT(r.out, StartsWith("Imported " + path + ": 2 added, "));
  ASSERT_TRUE(mx1().WaitForBan("198.18.10.1/32", kWait).ok());
  ASSERT_TRUE(mx2().WaitForBan("198.18.11.0/24", kWait).ok());

  Json j = CtlJson({"bans", "list", "--origin", "import"});
  std::optional<Json> one = FindBy(j["bans"], "prefix", "198.18.10.1/32");
  ASSERT_TRUE(one.has_value()) << j.dump(2);
  EXPECT_EQ((*one)["origin"], "import");
  EXPECT_THAT((*one)["reason"].get<std::string>(), HasSubstr("brute forcer"));
  EXPECT_TRUE(FindBy(j["bans"], "prefix", "198.18.11.0/24").has_value());
}

TEST_F(CtlE2eTest, ImportCsvInTheExportLayout) {
  const absl::Time expires_time =
      absl::FromUnixSeconds(absl::ToUnixSeconds(absl::Now() + absl::Hours(3)));
  const std::string expires =
      absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", expires_time, absl::UTCTimeZone());
  const std::string path = WriteFile(
      "feed.csv",
      "id,prefix,created_at,expires_at,origin,scope,escalation_level,reason\r\n"
      "1,198.18.12.1/32,2024-11-23T08:00:00Z," +
          expires +
          ",manual,all_ports,0,\"csv, with comma\"\r\n"
          "2,198.18.13.0/24,2024-11-23T08:00:00Z,,manual,all_ports,0,csv "
          "block\r\n");
  // Dry run: the server checks, nothing is committed.
  const CtlResult dry = Ctl({"import", path, "--permanent", "--reason",
                             "csv feed", "--dry-run", "--json"});
  ASSERT_EQ(dry.code, kExitOk) << dry;
  Json d = JsonOf(dry.out);
  ExpectFields(d,
               {"dry_run", "added", "updated", "skipped", "errors", "revision",
                "results"},
               "import");
  EXPECT_EQ(d["dry_run"], true);
  EXPECT_EQ(d["added"], 2);
  EXPECT_TRUE(
      CtlJson({"bans", "list", "--covering", "198.18.12.1"})["bans"].empty());

  const CtlResult r = Ctl({"import", path, "--permanent", "--reason",
                           "csv feed", "--all-lines", "--json"});
  ASSERT_EQ(r.code, kExitOk) << r;
  Json j = JsonOf(r.out);
  EXPECT_EQ(j["dry_run"], false);
  EXPECT_EQ(j["added"], 2);
  EXPECT_EQ(j["errors"], 0);
  ASSERT_EQ(j["results"].size(), 2u) << j.dump(2);
  EXPECT_EQ(j["results"][0]["line"], 2);
  EXPECT_EQ(j["results"][0]["outcome"], "added");
  EXPECT_GT(j["results"][0]["ban_id"].get<uint64_t>(), 0u);
  ASSERT_TRUE(mx2().WaitForRevision(j["revision"].get<uint64_t>(), kWait).ok());
  EXPECT_THAT(mx2().banned_prefixes(),
              AllOf(Contains("198.18.12.1/32"), Contains("198.18.13.0/24")));

  // expires_at from the file; no expires_at = --permanent.
  Json listed = CtlJson({"bans", "list", "--within", "198.18.12.0/23"});
  std::optional<Json> timed =
      FindBy(listed["bans"], "prefix", "198.18.12.1/32");
  std::optional<Json> permanent =
      FindBy(listed["bans"], "prefix", "198.18.13.0/24");
  ASSERT_TRUE(timed.has_value()) << listed.dump(2);
  ASSERT_TRUE(permanent.has_value()) << listed.dump(2);
  // The ban ends exactly at the file's expires_at.
  absl::Time timed_expires;
  std::string parse_error;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full,
                              (*timed)["expires_at"].get<std::string>(),
                              &timed_expires, &parse_error))
      << parse_error;
  EXPECT_EQ(timed_expires, expires_time) << (*timed)["expires_at"];
  EXPECT_EQ((*timed)["reason"], "csv, with comma");
  EXPECT_TRUE((*permanent)["expires_at"].is_null());
}

TEST_F(CtlE2eTest, ImportWithRejectedLinesIsExit5) {
  // A broad prefix is refused per line by the server (the file itself is
  // valid), the other line is committed.
  const std::string path =
      WriteFile("partial.txt", "198.18.14.1\n10.0.0.0/8\n");
  const CtlResult r =
      Ctl({"import", path, "--for", "1h", "--reason", "partial feed"});
  EXPECT_EQ(r.code, kExitPartial) << r;
  EXPECT_THAT(r.out, HasSubstr("1 added"));
  EXPECT_THAT(r.out, HasSubstr("1 rejected"));
  EXPECT_THAT(r.out, HasSubstr("LINE  OUTCOME"));
  ASSERT_TRUE(mx1().WaitForBan("198.18.14.1/32", kWait).ok());
}

TEST_F(CtlE2eTest, InvalidImportFileIsAUsageErrorAndSendsNothing) {
  const std::string path = WriteFile("bad.txt", "198.18.15.1\nnot-an-ip\n");
  const CtlResult r =
      Ctl({"import", path, "--for", "1h", "--reason", "bad feed"});
  EXPECT_EQ(r.code, kExitUsage) << r;
  EXPECT_THAT(r.err, HasSubstr(path + ":2: "));
  EXPECT_TRUE(
      CtlJson({"bans", "list", "--covering", "198.18.15.1"})["bans"].empty());
}

// --- audit
// -----------------------------------------------------------------------

TEST_F(CtlE2eTest, AuditListsTheMutationsWithTheActor) {
  ASSERT_EQ(
      Ctl({"bans", "add", "198.18.20.1", "--for", "1h", "--reason", "audit me"})
          .code,
      kExitOk);
  ASSERT_EQ(
      Ctl({"bans", "remove", "198.18.20.1", "--reason", "audit me too"}).code,
      kExitOk);
  ASSERT_EQ(
      Ctl({"allow", "add", "198.18.21.0/24", "--comment", "audit allow"}).code,
      kExitOk);
  ASSERT_EQ(Ctl({"allow", "remove", "198.18.21.0/24"}).code, kExitOk);
  const std::string feed = WriteFile("audit-feed.txt", "198.18.22.1\n");
  ASSERT_EQ(Ctl({"import", feed, "--for", "1h", "--reason", "audit feed"}).code,
            kExitOk);

  const CtlResult table = Ctl({"audit"});
  ASSERT_EQ(table.code, kExitOk) << table;
  EXPECT_THAT(table.out, HasSubstr("ban.add"));
  EXPECT_THAT(table.out, HasSubstr("198.18.20.1"));
  EXPECT_THAT(table.out, HasSubstr("token:bootstrap"));

  Json j = CtlJson({"audit", "--since", "1h"});
  ExpectFields(j, {"records", "truncated"}, "audit");
  const auto find = [&](const std::string& action,
                        const std::string& target) -> std::optional<Json> {
    for (const Json& rec : j["records"]) {
      if (rec.value("action", "") == action &&
          rec.value("target", "").find(target) != std::string::npos) {
        return rec;
      }
    }
    return std::nullopt;
  };
  std::optional<Json> added = find("ban.add", "198.18.20.1");
  ASSERT_TRUE(added.has_value()) << j.dump(2);
  ExpectFields(*added,
               {"id", "at", "actor", "action", "target", "reason", "peer",
                "before", "after"},
               "AuditRecord");
  EXPECT_EQ((*added)["actor"], "token:bootstrap");
  EXPECT_THAT((*added)["peer"].get<std::string>(),
              StartsWith("ipv4:127.0.0.1:"));
  EXPECT_EQ((*added)["reason"], "audit me");
  EXPECT_TRUE((*added)["after"].is_object()) << added->dump();
  std::optional<Json> removed = find("ban.remove", "198.18.20.1");
  ASSERT_TRUE(removed.has_value()) << j.dump(2);
  EXPECT_EQ((*removed)["reason"], "audit me too");
  EXPECT_TRUE((*removed)["before"].is_object()) << removed->dump();
  EXPECT_TRUE(find("allow.add", "198.18.21.0/24").has_value()) << j.dump(2);
  EXPECT_TRUE(find("allow.remove", "198.18.21.0/24").has_value()) << j.dump(2);
  // An import commits each line as its own ban.add (origin import).
  EXPECT_TRUE(find("ban.add", "198.18.22.1").has_value()) << j.dump(2);
  // Newest first.
  for (size_t i = 1; i < j["records"].size(); ++i) {
    EXPECT_GE(j["records"][i - 1]["id"].get<uint64_t>(),
              j["records"][i]["id"].get<uint64_t>());
  }

  // Filters: by action and by actor.
  Json only_allow = CtlJson({"audit", "--action", "allow.add"});
  ASSERT_FALSE(only_allow["records"].empty());
  for (const Json& rec : only_allow["records"]) {
    EXPECT_EQ(rec["action"], "allow.add");
  }
  const std::string actor = (*added)["actor"];
  Json by_actor = CtlJson({"audit", "--actor", actor});
  ASSERT_FALSE(by_actor["records"].empty());
  for (const Json& rec : by_actor["records"]) {
    EXPECT_EQ(rec["actor"], actor);
  }
}

// --- errors and the binary
// ---------------------------------------------------------

TEST_F(CtlE2eTest, InvalidAddressIsAUsageErrorWithoutAnyRpc) {
  // A server address where nothing listens: any RPC would make it exit 3.
  const std::string dead = absl::StrFormat("127.0.0.1:%d", PickFreePort());
  const CtlResult host_bits =
      RunRaw({"--insecure", "--server", dead, "bans", "add", "198.51.100.7/24",
              "--for", "2h", "--reason", "typo"});
  EXPECT_EQ(host_bits.code, kExitUsage) << host_bits;
  EXPECT_THAT(host_bits.err, HasSubstr("did you mean 198.51.100.0/24?"));
  const CtlResult not_ip =
      RunRaw({"--insecure", "--server", dead, "ip", "mail.example.com"});
  EXPECT_EQ(not_ip.code, kExitUsage) << not_ip;
  const CtlResult cidr =
      RunRaw({"--insecure", "--server", dead, "ip", "198.51.100.0/24"});
  EXPECT_EQ(cidr.code, kExitUsage) << cidr;
  const CtlResult duration =
      RunRaw({"--insecure", "--server", dead, "bans", "add", "198.51.100.8",
              "--for", "2x", "--reason", "typo"});
  EXPECT_EQ(duration.code, kExitUsage) << duration;
  EXPECT_THAT(duration.err, HasSubstr("--for: invalid duration \"2x\""));
  // Against the live server the usage error does not reach it either.
  const CtlResult live = Ctl({"allow", "add", "198.18.30.7/24"});
  EXPECT_EQ(live.code, kExitUsage) << live;
  EXPECT_FALSE(
      FindBy(CtlJson({"allow", "list"})["entries"], "prefix", "198.18.30.0/24")
          .has_value());
}

TEST_F(CtlE2eTest, UnreachableServerIsExit3NamingTheAddress) {
  const std::string dead = absl::StrFormat("127.0.0.1:%d", PickFreePort());
  const CtlResult r =
      RunRaw({"--insecure", "--server", dead, "--timeout", "5s", "status"});
  EXPECT_EQ(r.code, kExitUnreachable) << r;
  EXPECT_THAT(r.err,
              StartsWith("rampartctl: cannot reach rampart-server at " + dead));
  EXPECT_THAT(r.err, HasSubstr("is it running?"));
}

TEST_F(CtlE2eTest, BinaryWiringEnvironmentAndExitCodes) {
  // RAMPART_SERVER and RAMPART_TOKEN from the environment; JSON on stdout.
  const CtlResult status =
      RunBinary({"--insecure", "status", "--json"},
                {"RAMPART_SERVER=" + target(),
                 std::string("RAMPART_TOKEN=") + kAdminToken});
  ASSERT_EQ(status.code, kExitOk) << status;
  const std::optional<Json> j = ParseJson(status.out);
  ASSERT_TRUE(j.has_value());
  EXPECT_EQ((*j)["agents"]["connected"], 2);

  // NOT_FOUND -> 4, on stderr.
  const CtlResult missing =
      RunBinary({"--insecure", "--server", target(), "--token-file",
                 s_->env.token_path, "bans", "show", "987654"});
  EXPECT_EQ(missing.code, kExitNotFound) << missing;
  EXPECT_THAT(missing.err, HasSubstr("not found"));
  EXPECT_EQ(missing.out, "");

  // No token -> UNAUTHENTICATED, a wrong one too: exit 6, nothing changed.
  const CtlResult anonymous =
      RunBinary({"--insecure", "--server", target(), "bans", "remove",
                 "198.51.100.7", "--reason", "x"});
  EXPECT_EQ(anonymous.code, ctl::kExitDenied) << anonymous;
  EXPECT_THAT(anonymous.err, HasSubstr("UNAUTHENTICATED"));
  const CtlResult forged =
      RunBinary({"--insecure", "--server", target(), "--token",
                 "forged-token-0123456789abcdef012345", "status"});
  EXPECT_EQ(forged.code, ctl::kExitDenied) << forged;

  // Unreachable -> 3 naming the address; usage -> 2.
  const std::string dead = absl::StrFormat("127.0.0.1:%d", PickFreePort());
  const CtlResult unreachable =
      RunBinary({"--insecure", "--timeout", "5s", "agents", "list"},
                {"RAMPART_SERVER=" + dead});
  EXPECT_EQ(unreachable.code, kExitUnreachable) << unreachable;
  EXPECT_THAT(unreachable.err, HasSubstr(dead));
  const CtlResult usage =
      RunBinary({"--insecure", "--server", target(), "bans", "frobnicate"});
  EXPECT_EQ(usage.code, kExitUsage) << usage;

  // A table through the binary.
  const CtlResult bans =
      RunBinary({"--insecure", "--server", target(), "--token-file",
                 s_->env.token_path, "bans", "list"});
  ASSERT_EQ(bans.code, kExitOk) << bans;
  EXPECT_THAT(bans.out, HasSubstr("198.51.100.7/32"));
}

// ---------------------------------------------------------------------------
// A server of its own, stopped while `alerts --watch` runs in-process.

class CtlE2eDrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dsn = server::RequirePgTestDsn();
    if (dsn.empty()) {
      return;
    }
    const absl::Status st = env_.Start(dsn, "drain");
    ASSERT_TRUE(st.ok()) << st;
    auto agent = ConnectAgent(env_.target(), "mx1");
    ASSERT_TRUE(agent.ok()) << agent.status() << "\n" << env_.server->log();
    agent_ = std::move(*agent);
  }
  void TearDown() override {
    agent_.reset();
    env_.Stop();
  }

  // A compromise alert for `user` from `ip` (one failure, then a success).
  void RaiseAlert(const std::string& ip, const std::string& user) {
    ASSERT_TRUE(SendAndWait(*agent_, next_seq_++, {Failure(ip, user)}).ok());
    ASSERT_TRUE(SendAndWait(*agent_, next_seq_++, {Success(ip, user)}).ok());
  }

  ServerEnv env_;
  std::unique_ptr<FakeAgent> agent_;
  uint64_t next_seq_ = 1;
};

TEST_F(CtlE2eDrainTest, AlertsWatchPrintsNewAlertsAndExits3WhenServerStops) {
  RaiseAlert("192.0.2.70", "dave");
  uint64_t first_id = 0;
  ASSERT_TRUE(PollUntil([&] {
    const CtlResult r =
        RunRaw({"--insecure", "--server", env_.target(), "--token-file",
                env_.token_path, "alerts", "--json"});
    Json j = Json::parse(r.out, nullptr, false);
    if (r.code != 0 || j.is_discarded() || j["alerts"].empty()) {
      return false;
    }
    first_id = j["alerts"][0]["id"].get<uint64_t>();
    return true;
  }));

  WaitableBuf out_buf;
  WaitableBuf err_buf;
  std::ostream watch_out(&out_buf);
  std::ostream watch_err(&err_buf);
  int code = -1;
  std::thread watcher([&] {
    code = ctl::RunCtl({"--insecure", "--server", env_.target(), "--token-file",
                        env_.token_path, "alerts", "--watch", "--after",
                        std::to_string(first_id)},
                       watch_out, watch_err);
  });
  RaiseAlert("192.0.2.71", "erin");
  const bool printed = out_buf.WaitForText("user erin from 192.0.2.71", kWait);
  // End the watch by stopping the server (graceful drain), also on failure.
  const auto terminated = env_.server->Terminate();
  watcher.join();
  ASSERT_TRUE(printed) << "stdout: " << out_buf.str()
                       << "\nstderr: " << err_buf.str();
  EXPECT_THAT(err_buf.str(), HasSubstr("watching alerts on " + env_.target()));
  EXPECT_THAT(out_buf.str(), HasSubstr(" on mx1: "));
  EXPECT_THAT(out_buf.str(), Not(HasSubstr("dave")));  // not after --after
  ASSERT_TRUE(terminated.ok()) << terminated.status();
  EXPECT_EQ(code, kExitUnreachable) << "stderr: " << err_buf.str();
  EXPECT_THAT(err_buf.str(), HasSubstr("shutting down"));

  // The server is gone: commands exit 3 naming its address.
  const CtlResult r = RunRaw(
      {"--insecure", "--server", env_.target(), "--timeout", "5s", "status"});
  EXPECT_EQ(r.code, kExitUnreachable) << r;
  EXPECT_THAT(r.err, HasSubstr(env_.target()));
}

}  // namespace
}  // namespace rampart::testing
