// The end-to-end estate test (issue 6): real packets, real processes.
//
// Builds a small Domino estate in network namespaces (documentation
// addresses only; picture and measured timings in docs/e2e.md):
//
//   servers   192.0.2.0/24     rampart-server .10, domino1..3 .11-.13
//   attackers 203.0.113.0/24   attacker1 .5, attacker2 .6 (+ probe .7)
//   admin     198.51.100.0/24  admin .7 (allowlisted on the server)
//
// joined by a router namespace with one bridge per subnet. Each Domino host
// runs rampart-auth-responder (tests/e2e/auth_responder) and a real
// `rampart-agent run` with the nftables backend tailing the responder's
// console.log; rampart-server runs on its own throwaway PostgreSQL
// (scripts/test-postgres.sh), whose unix socket crosses namespaces.
//
// Test policy (server config below), chosen so the numbers are small:
//   ban_threshold 10, server_factor 1 (an event's weight is multiplied by the
//   number of distinct hosts the address hit: 1 + (n - 1)), no IPv4 prefix
//   aggregation, LDAP weight 0.1 (the link-cut probe uses LDAP so the server
//   never bans it and the agent's local ban must be reconciled away).
//   Agents: local fallback after 10 s unreachable, 3 failures per minute.
//
// Needs root, network namespaces, nftables, PostgreSQL 15 and hydra; fails
// (does not skip) under CI when any is missing.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/domino/domino_parser.h"
#include "agent/domino/pair_deduplicator.h"
#include "agent/firewall/subprocess.h"
#include "agent/firewall/testing/netns.h"
#include "common/ip_address.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/estate_process.h"

namespace rampart::e2e {
namespace {

using agent::testing::ScopedNetns;
using Json = nlohmann::json;

constexpr char kNsPrefix[] = "rpe2e-";
constexpr char kServerIp[] = "192.0.2.10";
constexpr int kGrpcPort = 7443;
constexpr int kHttpPort = 9443;
constexpr char kAttacker1[] = "203.0.113.5";
constexpr char kAttacker2[] = "203.0.113.6";
constexpr char kProbe[] = "203.0.113.7";
constexpr char kAdmin[] = "198.51.100.7";
constexpr int kThreshold = 10;
constexpr absl::Duration kPropagationLimit = absl::Seconds(2);
constexpr char kPgScript[] = RAMPART_SOURCE_DIR "/scripts/test-postgres.sh";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

double Secs(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Deletes namespaces "rpe2e-<pid>-*" of test processes that no longer exist
// (a SIGKILLed run cannot clean up after itself).
void DeleteStaleNamespaces() {
  absl::StatusOr<Ran> list = RunCmd({"/usr/sbin/ip", "netns", "list"});
  if (!list.ok()) return;
  for (absl::string_view line : absl::StrSplit(list->output, '\n')) {
    const std::string name(line.substr(0, line.find(' ')));
    if (!absl::StartsWith(name, kNsPrefix)) continue;
    const std::string rest = name.substr(sizeof(kNsPrefix) - 1);
    int pid = 0;
    if (!absl::SimpleAtoi(rest.substr(0, rest.find('-')), &pid) || pid <= 0) {
      continue;
    }
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      (void)RunCmd({"/usr/sbin/ip", "netns", "del", name});
    }
  }
}

std::vector<std::string> OurNamespaces() {
  std::vector<std::string> out;
  absl::StatusOr<Ran> list = RunCmd({"/usr/sbin/ip", "netns", "list"});
  if (!list.ok()) return out;
  const std::string mine = absl::StrCat(kNsPrefix, ::getpid(), "-");
  for (absl::string_view line : absl::StrSplit(list->output, '\n')) {
    if (absl::StartsWith(line, mine)) out.emplace_back(line);
  }
  return out;
}

// ---------------------------------------------------------------------------
// The ONE place that builds the command lines of rampart-server,
// rampart-agent and rampartctl. The estate runs plaintext gRPC on its own
// namespaces (server.insecure + allow_insecure_non_loopback in the server
// config, insecure in each agent's, --insecure here); mutual TLS and
// enrollment are covered by tests/integration/tls_integration_test.cc.
struct Launcher {
  std::string server_bin = RAMPART_SERVER_BIN;
  std::string agent_bin = RAMPART_AGENT_BIN;
  std::string ctl_bin = RAMPARTCTL_BIN;
  // Admin token (mode 0600): the server makes it its "bootstrap" admin
  // token, rampartctl presents it (docs/security.md).
  std::string token_file;

  std::vector<std::string> Server(const std::string& config) const {
    return {server_bin, "--config", config, "--bootstrap-token-file",
            token_file};
  }
  std::vector<std::string> Agent(const std::string& config) const {
    return {agent_bin, "run", "--config", config};
  }
  std::vector<std::string> Ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {
        ctl_bin,        "--insecure",
        "--server",     absl::StrCat(kServerIp, ":", kGrpcPort),
        "--timeout",    "5s",
        "--token-file", token_file};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
};
// ---------------------------------------------------------------------------

// A throwaway PostgreSQL cluster (scripts/test-postgres.sh), stoppable and
// restartable mid-test.
class Postgres {
 public:
  static absl::StatusOr<std::unique_ptr<Postgres>> Start() {
    absl::StatusOr<Ran> r = RunCmd({kPgScript, "start"}, absl::Seconds(120));
    if (!r.ok()) return r.status();
    for (absl::string_view line : absl::StrSplit(r->output, '\n')) {
      if (absl::StartsWith(line, "host=/tmp/rampart-pg.")) {
        std::unique_ptr<Postgres> pg(new Postgres());
        pg->dsn_ = std::string(line);
        pg->dir_ = pg->dsn_.substr(5, pg->dsn_.find(' ') - 5);
        return pg;
      }
    }
    return absl::UnavailableError("test-postgres.sh start: " + r->output);
  }
  ~Postgres() { (void)RunCmd({kPgScript, "stop", dir_}); }

  const std::string& dsn() const { return dsn_; }
  absl::Status Stop() { return Ctl({"-m", "fast", "-w", "stop"}); }
  absl::Status Resume() {
    return Ctl({"-l", dir_ + "/server.log", "-w", "-t", "60", "start"});
  }
  // psql -Atc QUERY.
  absl::StatusOr<std::string> Query(const std::string& sql) {
    absl::StatusOr<Ran> r =
        RunCmd({"/usr/sbin/runuser", "-u", "postgres", "--",
                "/usr/lib/postgresql/15/bin/psql", "-h", dir_, "-d",
                "rampart_test", "-U", "postgres", "-Atc", sql});
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return absl::UnavailableError(r->output);
    return std::string(absl::StripAsciiWhitespace(r->output));
  }

 private:
  Postgres() = default;
  absl::Status Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/sbin/runuser",
                                     "-u",
                                     "postgres",
                                     "--",
                                     "/usr/lib/postgresql/15/bin/pg_ctl",
                                     "-D",
                                     dir_ + "/data"};
    argv.insert(argv.end(), args.begin(), args.end());
    absl::StatusOr<Ran> r = RunCmd(argv, absl::Seconds(90));
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) return absl::UnavailableError(r->output);
    return absl::OkStatus();
  }
  std::string dsn_;
  std::string dir_;
};

struct DominoHost {
  std::string name;        // domino1
  std::string ip;          // 192.0.2.11
  std::string date_style;  // dmy | mdy | ymd (responder)
  std::string ns;          // namespace name
  std::string dir;         // work dir: console.log, agent state, logs
  std::unique_ptr<Child> responder;
  std::unique_ptr<Child> agent;
  std::string console_log() const { return dir + "/console.log"; }
};

#define RETURN_IF(expr)                                \
  do {                                                 \
    if (absl::Status _s = (expr); !_s.ok()) return _s; \
  } while (0)

// The estate: namespaces, addresses and every process, torn down in the
// destructor (processes first, then namespaces, which takes every nftables
// rule inside with them; then PostgreSQL and the work directory).
class Estate {
 public:
  ~Estate() {
    for (auto& h : hosts_) {
      if (h.agent) h.agent->Kill();
      if (h.responder) h.responder->Kill();
    }
    if (server_) server_->Kill();
    extra_.clear();
    namespaces_.clear();
    pg_.reset();
    if (!work_.empty() && std::getenv("RAMPART_E2E_KEEP") == nullptr) {
      std::filesystem::remove_all(work_);
    }
  }

  absl::Status Build() {
    DeleteStaleNamespaces();
    char tmpl[] = "/tmp/rampart-e2e-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return absl::InternalError("mkdtemp");
    work_ = tmpl;
    ::chmod(work_.c_str(), 0755);
    launcher_.token_file = work_ + "/admin.token";
    WriteFile(launcher_.token_file,
              "e2e-admin-token-for-the-estate-test-0123456789\n");
    ::chmod(launcher_.token_file.c_str(), 0600);
    RETURN_IF(MakeNs("hub"));
    RETURN_IF(HubCmd({"/usr/sbin/sysctl", "-qw", "net.ipv4.ip_forward=1"}));
    const std::vector<std::pair<std::string, std::string>> bridges = {
        {"br-srv", "192.0.2.1/24"},
        {"br-att", "203.0.113.1/24"},
        {"br-adm", "198.51.100.1/24"}};
    RETURN_IF(Ns("hub").Ip({"link", "set", "lo", "up"}));
    for (const auto& [br, addr] : bridges) {
      RETURN_IF(Ns("hub").Ip({"link", "add", br, "type", "bridge"}));
      RETURN_IF(Ns("hub").Ip({"addr", "add", addr, "dev", br}));
      RETURN_IF(Ns("hub").Ip({"link", "set", br, "up"}));
    }
    RETURN_IF(AddHost("srv", "br-srv", {std::string(kServerIp) + "/24"},
                      "192.0.2.1"));
    const char* styles[] = {"dmy", "mdy", "ymd"};
    for (int i = 0; i < 3; ++i) {
      DominoHost h;
      h.name = absl::StrCat("domino", i + 1);
      h.ip = absl::StrCat("192.0.2.", 11 + i);
      h.date_style = styles[i];
      h.ns = NsName(h.name);
      h.dir = absl::StrCat(work_, "/", h.name);
      std::filesystem::create_directories(h.dir + "/state");
      RETURN_IF(AddHost(h.name, "br-srv", {h.ip + "/24"}, "192.0.2.1"));
      hosts_.push_back(std::move(h));
    }
    RETURN_IF(AddHost("attacker1", "br-att", {std::string(kAttacker1) + "/24"},
                      "203.0.113.1"));
    RETURN_IF(
        AddHost("attacker2", "br-att",
                {std::string(kAttacker2) + "/24", std::string(kProbe) + "/24"},
                "203.0.113.1"));
    RETURN_IF(AddHost("admin", "br-adm", {std::string(kAdmin) + "/24"},
                      "198.51.100.1"));
    // Everything reaches everything (no ban yet, no responder: RST = reached).
    for (const auto& [from, src] :
         std::vector<std::pair<std::string, std::string>>{
             {"attacker1", kAttacker1},
             {"admin", kAdmin},
             {"srv", kServerIp}}) {
      for (const DominoHost& h : hosts_) {
        bool up = false;
        for (int i = 0; i < 50 && !up; ++i) up = Reachable(from, src, h.ip, 25);
        if (!up) {
          return absl::UnavailableError(
              absl::StrCat(from, " cannot reach ", h.name));
        }
      }
    }
    return absl::OkStatus();
  }

  absl::Status StartPostgres() {
    absl::StatusOr<std::unique_ptr<Postgres>> pg = Postgres::Start();
    if (!pg.ok()) return pg.status();
    pg_ = std::move(*pg);
    return absl::OkStatus();
  }

  absl::Status StartServer() {
    const std::string config = work_ + "/server.yaml";
    WriteFile(config,
              absl::StrFormat(R"(server:
  listen: "%s:%d"
  http_listen: "%s:%d"
  db: "postgresql:%s"
  insecure: true
  allow_insecure_non_loopback: true
policy:
  ban_threshold: %d
  server_factor: 1
  v4_ladder: []
  protocol_ldap: 0.1
allowlist:
  - cidr: "%s"
    comment: "admin host"
housekeeping_interval: 1s
limits:
  heartbeat_timeout: 15s
  keepalive_time: 10s
  keepalive_timeout: 2s
)",
                              kServerIp, kGrpcPort, kServerIp, kHttpPort,
                              pg_->dsn(), kThreshold, kAdmin));
    if (server_) {
      server_->Kill();
      server_log_offset_ = server_->log().size();
    }
    absl::StatusOr<std::unique_ptr<Child>> c =
        Child::Spawn(InNetns(NsName("srv"), launcher_.Server(config)),
                     work_ + "/server.log", work_);
    if (!c.ok()) return c.status();
    server_ = std::move(*c);
    if (!server_->WaitForLog("serving agents and admin on", absl::Seconds(60),
                             server_log_offset_)) {
      return absl::UnavailableError("rampart-server did not start:\n" +
                                    server_->log());
    }
    return absl::OkStatus();
  }

  absl::Status StartResponders() {
    for (DominoHost& h : hosts_) {
      absl::StatusOr<std::unique_ptr<Child>> c =
          Child::Spawn(InNetns(h.ns, {RAMPART_RESPONDER_BIN,
                                      "--address",
                                      h.ip,
                                      "--smtp-port",
                                      "25",
                                      "--imap-port",
                                      "143",
                                      "--pop3-port",
                                      "110",
                                      "--ldap-port",
                                      "389",
                                      "--http-port",
                                      "80",
                                      "--credential",
                                      "jdoe:Corr3ct-Horse",
                                      "--credential",
                                      "cn=admin,o=acme:Ldap-Secret",
                                      "--log",
                                      h.console_log(),
                                      "--date-style",
                                      h.date_style,
                                      "--hostname",
                                      h.name + ".example.com"}),
                       h.dir + "/responder.log");
      if (!c.ok()) return c.status();
      h.responder = std::move(*c);
      if (!h.responder->WaitForLog("auth-responder listening",
                                   absl::Seconds(10))) {
        return absl::UnavailableError(h.name +
                                      " responder: " + h.responder->log());
      }
    }
    return absl::OkStatus();
  }

  absl::Status StartAgent(DominoHost& h) {
    const std::string config = h.dir + "/agent.yaml";
    WriteFile(config, absl::StrFormat(R"(servers: ["%s:%d"]
insecure: true
agent_id: %s
time_zone: "UTC"
logs:
  - path: %s
    date_order: %s
read_existing_logs: true
state_dir: %s/state
firewall:
  backend: nftables
  repair_interval: 10s
batch:
  flush_interval: 100ms
reconnect:
  backoff_min: 100ms
  backoff_max: 1s
  heartbeat_interval: 5s
local_fallback:
  enabled: true
  activate_after: 10s
  failures: 3
  window: 1m
  ban_duration: 10m
)",
                                      kServerIp, kGrpcPort, h.name,
                                      h.console_log(), h.date_style, h.dir));
    if (h.agent) h.agent->Kill();
    absl::StatusOr<std::unique_ptr<Child>> c = Child::Spawn(
        InNetns(h.ns, launcher_.Agent(config)), h.dir + "/agent.log");
    if (!c.ok()) return c.status();
    h.agent = std::move(*c);
    return absl::OkStatus();
  }

  // rampartctl ARGS --json (from the server's namespace).
  absl::StatusOr<Json> Ctl(const std::vector<std::string>& args) {
    std::vector<std::string> a = args;
    a.push_back("--json");
    absl::StatusOr<Ran> r =
        RunCmd(InNetns(NsName("srv"), launcher_.Ctl(a)), absl::Seconds(20));
    if (!r.ok()) return r.status();
    if (r->exit_code != 0) {
      return absl::UnavailableError(
          absl::StrCat("rampartctl ", absl::StrJoin(args, " "), ": exit ",
                       r->exit_code, ": ", r->output));
    }
    // stderr may carry notes before the JSON document.
    const size_t brace = r->output.find('{');
    if (brace == std::string::npos) {
      return absl::UnavailableError("rampartctl: no JSON: " + r->output);
    }
    Json j = Json::parse(r->output.substr(brace), nullptr, false);
    if (j.is_discarded()) {
      return absl::UnavailableError("rampartctl: bad JSON: " + r->output);
    }
    return j;
  }

  int ConnectedAgents() {
    absl::StatusOr<Json> j = Ctl({"agents", "list"});
    if (!j.ok() || !j->contains("agents")) return -1;
    int n = 0;
    for (const Json& a : (*j)["agents"]) n += a.value("connected", false);
    return n;
  }

  // HTTP GET on the server's side port, from inside its namespace.
  int HttpStatus(const std::string& path, std::string* body = nullptr) {
    absl::StatusOr<Ran> r = RunCmd(InNetns(
        NsName("srv"),
        {"/usr/bin/curl", "-s", "-m", "3", "-o", "-", "-w", "\n%{http_code}",
         absl::StrCat("http://", kServerIp, ":", kHttpPort, path)}));
    if (!r.ok()) return -1;
    const size_t nl = r->output.rfind('\n');
    int code = -1;
    if (nl == std::string::npos ||
        !absl::SimpleAtoi(r->output.substr(nl + 1), &code)) {
      return -1;
    }
    if (body != nullptr) *body = r->output.substr(0, nl);
    return code;
  }

  // TCP connect from `ns` (source `src`) to dst:port: true if answered.
  bool Reachable(const std::string& ns, const std::string& src,
                 const std::string& dst, int port,
                 absl::Duration timeout = absl::Milliseconds(250)) {
    return agent::testing::TcpReachable(Ns(ns), *IpAddress::FromString(src),
                                        *IpAddress::FromString(dst), port,
                                        timeout);
  }
  // How many of the three Domino hosts answer a TCP connect from `src` on
  // their HTTP port (a bare connect writes no console.log line, so probing
  // adds no events; a ban drops every port alike).
  int HostsReachable(const std::string& ns, const std::string& src,
                     absl::Duration timeout = absl::Milliseconds(250)) {
    int n = 0;
    for (const DominoHost& h : hosts_) {
      n += Reachable(ns, src, h.ip, 80, timeout);
    }
    return n;
  }

  // Waits until HostsReachable(ns, src) == want; returns the time taken or
  // nullopt after `limit`. Polls with 100 ms probes (an answer takes well
  // under a millisecond here); "none reachable" is then confirmed with 1 s
  // probes, so a slow answer is never mistaken for a ban.
  std::optional<absl::Duration> WaitHostsReachable(const std::string& ns,
                                                   const std::string& src,
                                                   int want,
                                                   absl::Duration limit) {
    const absl::Time start = absl::Now();
    while (absl::Now() - start < limit) {
      if (HostsReachable(ns, src, absl::Milliseconds(100)) == want) {
        const absl::Duration took = absl::Now() - start;
        if (want != 0 || HostsReachable(ns, src, absl::Seconds(1)) == 0) {
          return took;
        }
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return std::nullopt;
  }

  ScopedNetns& Ns(const std::string& short_name) {
    return *namespaces_.at(short_name);
  }
  std::string NsName(const std::string& short_name) const {
    return absl::StrCat(kNsPrefix, ::getpid(), "-", short_name);
  }
  std::vector<DominoHost>& hosts() { return hosts_; }
  Child& server() { return *server_; }
  Postgres& pg() { return *pg_; }
  const std::string& work() const { return work_; }
  const Launcher& launcher() const { return launcher_; }
  // Keeps a helper process (hydra) owned by the estate.
  Child* Adopt(std::unique_ptr<Child> c) {
    extra_.push_back(std::move(c));
    return extra_.back().get();
  }

 private:
  absl::Status MakeNs(const std::string& short_name) {
    absl::StatusOr<std::unique_ptr<ScopedNetns>> ns =
        ScopedNetns::Create(NsName(short_name));
    if (!ns.ok()) return ns.status();
    namespaces_[short_name] = std::move(*ns);
    return absl::OkStatus();
  }
  absl::Status HubCmd(const std::vector<std::string>& argv) {
    absl::StatusOr<Ran> r = RunCmd(InNetns(NsName("hub"), argv));
    if (!r.ok()) return r.status();
    return r->exit_code == 0 ? absl::OkStatus()
                             : absl::UnavailableError("sysctl: " + r->output);
  }
  absl::Status AddHost(const std::string& name, const std::string& bridge,
                       const std::vector<std::string>& addrs,
                       const std::string& gw) {
    RETURN_IF(MakeNs(name));
    const std::string hub_side = "v-" + name;
    RETURN_IF(Ns(name).Ip({"link", "add", "e0", "type", "veth", "peer", "name",
                           hub_side, "netns", NsName("hub")}));
    RETURN_IF(Ns("hub").Ip({"link", "set", hub_side, "master", bridge}));
    RETURN_IF(Ns("hub").Ip({"link", "set", hub_side, "up"}));
    RETURN_IF(Ns(name).Ip({"link", "set", "lo", "up"}));
    RETURN_IF(Ns(name).Ip({"link", "set", "e0", "up"}));
    for (const std::string& a : addrs) {
      RETURN_IF(Ns(name).Ip({"addr", "add", a, "dev", "e0"}));
    }
    RETURN_IF(Ns(name).Ip({"route", "add", "default", "via", gw}));
    return absl::OkStatus();
  }

  Launcher launcher_;
  std::string work_;
  std::map<std::string, std::unique_ptr<ScopedNetns>> namespaces_;
  std::vector<DominoHost> hosts_;
  std::unique_ptr<Postgres> pg_;
  std::unique_ptr<Child> server_;
  size_t server_log_offset_ = 0;
  std::vector<std::unique_ptr<Child>> extra_;
};

// One failed login over `protocol` from `src` (inside `ns`) to dst. True if
// the responder answered with a failure (so it logged the attempt).
bool FailOnce(ScopedNetns& ns, const std::string& src, const std::string& dst,
              Protocol protocol, const std::string& user) {
  return ns.Call([&]() -> bool {
    const IpAddress s = *IpAddress::FromString(src);
    const IpAddress d = *IpAddress::FromString(dst);
    const int port = protocol == Protocol::kSmtp   ? 25
                     : protocol == Protocol::kImap ? 143
                     : protocol == Protocol::kPop3 ? 110
                                                   : 389;
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(s.v4());
    sockaddr_in b{};
    b.sin_family = AF_INET;
    b.sin_port = htons(static_cast<uint16_t>(port));
    b.sin_addr.s_addr = htonl(d.v4());
    timeval tv{.tv_sec = 1, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    std::string got;
    auto read_until = [&](std::string_view want) {
      char buf[512];
      while (got.find(want) == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return false;
        got.append(buf, static_cast<size_t>(n));
      }
      return true;
    };
    auto send = [&](const std::string& text) {
      return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) ==
             static_cast<ssize_t>(text.size());
    };
    bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
              ::connect(fd, reinterpret_cast<sockaddr*>(&b), sizeof(b)) == 0;
    static std::atomic<int> attempt{0};
    const std::string pw = "wrong-" + std::to_string(++attempt);
    switch (protocol) {
      case Protocol::kSmtp:
        ok = ok && read_until("\r\n") &&
             send("AUTH PLAIN " +
                  std::string(
                      absl::Base64Escape(ToAbsl(std::string("\0", 1) + user +
                                                std::string("\0", 1) + pw))) +
                  "\r\n") &&
             read_until("535 ") && send("QUIT\r\n");
        break;
      case Protocol::kImap:
        ok = ok && read_until("\r\n") &&
             send("a1 LOGIN \"" + user + "\" \"" + pw + "\"\r\n") &&
             read_until("a1 NO") && send("a2 LOGOUT\r\n");
        break;
      case Protocol::kPop3:
        ok = ok && read_until("\r\n") && send("USER " + user + "\r\n") &&
             read_until("+OK\r\n") && send("PASS " + pw + "\r\n") &&
             read_until("-ERR") && send("QUIT\r\n");
        break;
      default: {
        std::string op = {'\x02', '\x01', '\x03', '\x04',
                          static_cast<char>(user.size())};
        op += user;
        op += '\x80';
        op += static_cast<char>(pw.size());
        op += pw;
        std::string msg = {'\x02', '\x01', '\x01', '\x60',
                           static_cast<char>(op.size())};
        msg += op;
        ok = ok &&
             send(std::string{'\x30', static_cast<char>(msg.size())} + msg) &&
             read_until(std::string("\x0a\x01\x31", 3));
        break;
      }
    }
    ::close(fd);
    return ok;
  });
}

// What the agents must have reported, from the responders' logs parsed the
// way the agents parse them (same parser options, A+B pairs counted once).
struct LogCounts {
  std::map<std::string, int64_t> events_per_host;
  // host -> ip -> auth failures
  std::map<std::string, std::map<std::string, int>> failures;
};

LogCounts CountLogs(const std::vector<DominoHost>& hosts) {
  LogCounts out;
  for (const DominoHost& h : hosts) {
    absl::StatusOr<agent::DateOrder> order =
        agent::ParseDateOrder(h.date_style);
    agent::DominoParser parser({.date_order = *order});
    agent::PairDeduplicator dedup;
    int64_t& n = out.events_per_host[h.name];
    for (absl::string_view line :
         absl::StrSplit(ReadFile(h.console_log()), '\n')) {
      agent::ParsedLine p;
      if (!parser.Parse(std::string_view(line.data(), line.size()), &p) ||
          dedup.Observe(p)) {
        continue;
      }
      ++n;
      if (p.kind == EventKind::kAuthFailure && p.ip) {
        ++out.failures[h.name][p.ip->ToString()];
      }
    }
  }
  return out;
}

int FailuresOf(const LogCounts& c, const std::string& host,
               const std::string& ip) {
  auto it = c.failures.find(host);
  if (it == c.failures.end()) return 0;
  auto jt = it->second.find(ip);
  return jt == it->second.end() ? 0 : jt->second;
}

// Server-side stored events per agent (PostgreSQL, the source of truth).
std::map<std::string, int64_t> StoredEvents(Postgres& pg) {
  std::map<std::string, int64_t> out;
  absl::StatusOr<std::string> r =
      pg.Query("SELECT agent_id, count(*) FROM events GROUP BY agent_id");
  if (!r.ok()) return out;
  for (absl::string_view line : absl::StrSplit(*r, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '|');
    int64_t n = 0;
    if (f.size() == 2 && absl::SimpleAtoi(f[1], &n)) out[f[0]] = n;
  }
  return out;
}

// Waits until the server has stored exactly what the logs say.
bool WaitStoredMatchesLogs(Estate& e, absl::Duration limit,
                           std::string* detail) {
  const absl::Time deadline = absl::Now() + limit;
  while (true) {
    const LogCounts c = CountLogs(e.hosts());
    const std::map<std::string, int64_t> stored = StoredEvents(e.pg());
    if (stored == c.events_per_host) {
      *detail =
          absl::StrCat("stored == logged: ",
                       absl::StrJoin(stored, ", ", absl::PairFormatter("=")));
      return true;
    }
    if (absl::Now() > deadline) {
      *detail = absl::StrCat(
          "logged {",
          absl::StrJoin(c.events_per_host, ", ", absl::PairFormatter("=")),
          "} stored {", absl::StrJoin(stored, ", ", absl::PairFormatter("=")),
          "}");
      return false;
    }
    absl::SleepFor(absl::Milliseconds(200));
  }
}

// Failure count of `ip` in host `h`'s console.log so far.
int LoggedFailures(const DominoHost& h, const std::string& ip) {
  const std::string needle =
      absl::StrCat("[", ip, "] authentication failure using internet password");
  const std::string text = ReadFile(h.console_log());
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

std::string Precondition() {
  if (std::string why = agent::testing::NetnsUnavailableReason();
      !why.empty()) {
    return why;
  }
  for (const char* tool :
       {"/usr/bin/hydra", "/usr/bin/curl", "/usr/lib/postgresql/15/bin/initdb",
        "/usr/sbin/nft"}) {
    if (::access(tool, X_OK) != 0) {
      return absl::StrCat(tool, " missing (scripts/install-deps.sh test)");
    }
  }
  return "";
}

#define REQUIRE_ESTATE_ENV()                                            \
  do {                                                                  \
    if (const std::string why = Precondition(); !why.empty()) {         \
      if (std::getenv("CI") != nullptr) {                               \
        FAIL() << "e2e estate needs root, netns, nftables, PostgreSQL " \
                  "15, hydra and curl under CI: "                       \
               << why;                                                  \
      }                                                                 \
      GTEST_SKIP() << why;                                              \
    }                                                                   \
  } while (0)

void Timing(const std::string& text) {
  std::printf("[e2e timing] %s\n", text.c_str());
  std::fflush(stdout);
}

// Runs hydra in attacker1's namespace against host `ip`. Returns the child.
absl::StatusOr<std::unique_ptr<Child>> Hydra(Estate& e, const std::string& ip,
                                             const std::string& service,
                                             int passwords,
                                             const std::string& tag) {
  const std::string list = absl::StrCat(e.work(), "/passwords-", tag, ".txt");
  std::string text;
  for (int i = 0; i < passwords; ++i) absl::StrAppend(&text, "guess", i, "\n");
  WriteFile(list, text);
  const std::string dir = absl::StrCat(e.work(), "/hydra-", tag);
  std::filesystem::create_directories(dir);
  return Child::Spawn(
      InNetns(e.NsName("attacker1"),
              {"/usr/bin/hydra", "-I", "-t", "1", "-w", "5", "-l", "jdoe", "-P",
               list, absl::StrCat(service, "://", ip)}),
      dir + "/hydra.log", dir);
}

#define ASSERT_OK(expr)                                      \
  do {                                                       \
    const absl::Status _st = (expr);                         \
    ASSERT_TRUE(_st.ok()) << #expr << ": " << _st.message(); \
  } while (0)

// Builds the estate and starts every process; the pids go to *pids.
void BringUp(Estate& e, std::vector<pid_t>* pids) {
  const absl::Time start = absl::Now();
  ASSERT_OK(e.Build());
  ASSERT_OK(e.StartPostgres());
  ASSERT_OK(e.StartServer());
  ASSERT_OK(e.StartResponders());
  for (DominoHost& h : e.hosts()) ASSERT_OK(e.StartAgent(h));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (e.ConnectedAgents() != 3) {
    ASSERT_LT(absl::Now(), deadline)
        << "agents did not connect; domino1 agent log:\n"
        << e.hosts()[0].agent->log();
    absl::SleepFor(absl::Milliseconds(100));
  }
  pids->push_back(e.server().pid());
  for (DominoHost& h : e.hosts()) {
    pids->push_back(h.responder->pid());
    pids->push_back(h.agent->pid());
  }
  Timing(
      absl::StrFormat("estate up (8 namespaces, PostgreSQL, server, 3 "
                      "responders, 3 agents connected) in %.2f s",
                      Secs(absl::Now() - start)));
}

// A background load that keeps failing logins from the allowlisted admin
// host on all three Domino hosts (events that must all be stored).
// Thread-safety: WaitForMoreAttempts may be called from any thread.
class AdminLoad {
 public:
  explicit AdminLoad(Estate& e) : e_(e) {
    thread_ = std::thread([this] {
      int i = 0;
      while (!stop_.load()) {
        const DominoHost& h = e_.hosts()[i % 3];
        (void)FailOnce(e_.Ns("admin"), kAdmin, h.ip, Protocol::kPop3,
                       "administrator");
        ++i;
        {
          absl::MutexLock lock(&mu_);
          ++attempts_;
        }
        // The pace of the load (about 10 logins a second), not a wait for
        // anything: the tests wait on WaitForMoreAttempts.
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
  }
  ~AdminLoad() {
    stop_ = true;
    thread_.join();
  }

  // Waits until the load has made `n` more login attempts than it had when
  // called, at most `limit`. Returns whether it did.
  bool WaitForMoreAttempts(int n, absl::Duration limit) {
    absl::MutexLock lock(&mu_);
    const int want = attempts_ + n;
    const auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return attempts_ >= want;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), limit);
  }

 private:
  Estate& e_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  int attempts_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

void ExpectNothingLeft(const std::vector<pid_t>& pids) {
  EXPECT_TRUE(OurNamespaces().empty()) << absl::StrJoin(OurNamespaces(), ", ");
  for (const pid_t pid : pids) {
    EXPECT_NE(::kill(pid, 0), 0) << "process " << pid << " survived";
  }
  absl::StatusOr<Ran> tables = RunCmd({"/usr/sbin/nft", "list", "tables"});
  ASSERT_TRUE(tables.ok());
  EXPECT_FALSE(absl::StrContains(tables->output, "rpe2e_cut"));
}

TEST(EstateTest, AttackDetectBanEverywhereWithRealPackets) {
  REQUIRE_ESTATE_ENV();
  const absl::Time test_start = absl::Now();
  std::vector<pid_t> pids;
  {
    Estate e;
    BringUp(e, &pids);
    if (HasFatalFailure()) return;
    DominoHost& h1 = e.hosts()[0];
    DominoHost& h3 = e.hosts()[2];

    // --- Attacker 1: real hydra against host 1 only, SMTP AUTH then IMAP.
    ASSERT_EQ(e.HostsReachable("attacker1", kAttacker1), 3);
    {
      absl::StatusOr<std::unique_ptr<Child>> smtp =
          Hydra(e, h1.ip, "smtp", 6, "smtp");
      ASSERT_OK(smtp.status());
      Child* c = e.Adopt(std::move(*smtp));
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (c->Running() && absl::Now() < deadline) {
        absl::SleepFor(absl::Milliseconds(50));
      }
      ASSERT_FALSE(c->Running()) << c->log();
      ASSERT_EQ(LoggedFailures(h1, kAttacker1), 6) << c->log();
    }
    // Below the threshold nothing is blocked yet.
    ASSERT_EQ(e.HostsReachable("attacker1", kAttacker1), 3);
    absl::StatusOr<std::unique_ptr<Child>> imap =
        Hydra(e, h1.ip, "imap", 40, "imap");
    ASSERT_OK(imap.status());
    Child* hydra_imap = e.Adopt(std::move(*imap));
    absl::Time crossed;
    {
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (LoggedFailures(h1, kAttacker1) < kThreshold) {
        ASSERT_LT(absl::Now(), deadline) << hydra_imap->log();
        absl::SleepFor(absl::Milliseconds(5));
      }
      crossed = absl::Now();
    }
    {
      const absl::Time waiting = absl::Now();
      std::optional<absl::Duration> blocked =
          e.WaitHostsReachable("attacker1", kAttacker1, 0, absl::Seconds(10));
      ASSERT_TRUE(blocked.has_value())
          << "attacker1 still reaches "
          << e.HostsReachable("attacker1", kAttacker1)
          << " hosts; server log:\n"
          << e.server().log();
      const absl::Duration after = (waiting - crossed) + *blocked;
      Timing(absl::StrFormat(
          "attacker1 (hydra smtp+imap on domino1 only) blocked on all 3 "
          "hosts %.2f s after its failure #%d (threshold)",
          Secs(after), kThreshold));
      EXPECT_LE(after, kPropagationLimit);
    }
    hydra_imap->Kill();
    // Hosts 2 and 3 never saw attacker1.
    {
      const LogCounts c = CountLogs(e.hosts());
      EXPECT_EQ(FailuresOf(c, "domino2", kAttacker1), 0);
      EXPECT_EQ(FailuresOf(c, "domino3", kAttacker1), 0);
    }

    // --- Attacker 2: a slow spread over all three hosts.
    {
      const Protocol protocols[] = {Protocol::kSmtp, Protocol::kPop3,
                                    Protocol::kImap};
      ASSERT_EQ(e.HostsReachable("attacker2", kAttacker2), 3);
      // One failure every 1.5 s, round robin; between them, watch whether
      // attacker2 is blocked everywhere yet.
      absl::Time last;
      int attempts = 0;
      std::optional<absl::Duration> blocked;
      for (int i = 0; i < 9 && !blocked; ++i) {
        const DominoHost& h = e.hosts()[i % 3];
        if (!FailOnce(e.Ns("attacker2"), kAttacker2, h.ip, protocols[i % 3],
                      "jdoe")) {
          break;  // the ban arrived while this attempt was under way
        }
        ++attempts;
        last = absl::Now();
        if (auto w = e.WaitHostsReachable("attacker2", kAttacker2, 0,
                                          absl::Milliseconds(1500))) {
          blocked = *w;
        }
      }
      if (!blocked) {
        const absl::Time waiting = absl::Now();
        if (auto w = e.WaitHostsReachable("attacker2", kAttacker2, 0,
                                          absl::Seconds(10))) {
          blocked = (waiting - last) + *w;
        }
      }
      ASSERT_TRUE(blocked.has_value()) << e.server().log();
      EXPECT_LE(*blocked, kPropagationLimit);
      const LogCounts c = CountLogs(e.hosts());
      int most = 0;
      std::vector<int> per_host;
      for (const DominoHost& h : e.hosts()) {
        per_host.push_back(FailuresOf(c, h.name, kAttacker2));
        most = std::max(most, per_host.back());
      }
      // No single host saw enough to ban: only the estate-wide view does.
      EXPECT_LT(most, kThreshold);
      EXPECT_EQ(attempts, per_host[0] + per_host[1] + per_host[2]);
      Timing(absl::StrFormat(
          "attacker2 (%d failures 1.5 s apart round robin, per host %s, "
          "threshold %d) blocked on all 3 hosts %.2f s after the failure that "
          "crossed the estate-wide threshold",
          attempts, absl::StrJoin(per_host, "/"), kThreshold, Secs(*blocked)));
    }

    // --- The allowlisted admin host fails as often, and more: never blocked.
    {
      for (int i = 0; i < 15; ++i) {
        EXPECT_TRUE(FailOnce(e.Ns("admin"), kAdmin, e.hosts()[i % 3].ip,
                             Protocol::kPop3, "administrator"));
      }
      // A negative check that waits on an event instead of a fixed time:
      // the server commits events and the decisions they cause in one
      // transaction (docs/architecture.md, "The correlator"), so once it
      // has stored every logged event, a ban of the admin host would be in
      // its ban list. The server's answer is then the authoritative "no",
      // and the hosts (which enforce only the server's list while it is
      // reachable) must all still answer.
      std::string stored;
      ASSERT_TRUE(WaitStoredMatchesLogs(e, absl::Seconds(20), &stored))
          << stored;
      absl::StatusOr<Json> ip = e.Ctl({"ip", kAdmin});
      ASSERT_OK(ip.status());
      EXPECT_TRUE((*ip)["active_ban"].is_null()) << ip->dump();
      EXPECT_EQ(e.HostsReachable("admin", kAdmin), 3);
      EXPECT_FALSE((*ip)["allow"].is_null()) << ip->dump();
      Timing(
          absl::StrFormat("admin %s: 15 failures over 3 hosts, score %.1f, "
                          "never blocked (allowlisted)",
                          kAdmin, ip->value("score", 0.0)));
    }

    // --- rampartctl bans remove restores attacker1 everywhere.
    {
      const absl::Time start = absl::Now();
      absl::StatusOr<Json> removed =
          e.Ctl({"bans", "remove", kAttacker1, "--reason", "e2e: unban"});
      ASSERT_OK(removed.status());
      std::optional<absl::Duration> open =
          e.WaitHostsReachable("attacker1", kAttacker1, 3, absl::Seconds(10));
      ASSERT_TRUE(open.has_value());
      const absl::Duration took = absl::Now() - start;
      Timing(absl::StrFormat(
          "rampartctl bans remove %s: reachable on all 3 hosts %.2f s later",
          kAttacker1, Secs(took)));
      EXPECT_LE(took, kPropagationLimit);
      EXPECT_EQ(e.HostsReachable("attacker2", kAttacker2), 0);
    }

    std::string detail;
    ASSERT_TRUE(WaitStoredMatchesLogs(e, absl::Seconds(20), &detail)) << detail;
    Timing("before faults: " + detail);

    // --- Fault 1: SIGKILL the server mid-attack, restart it.
    {
      auto load = std::make_unique<AdminLoad>(e);
      // Kill the server under load: once the load is under way.
      ASSERT_TRUE(load->WaitForMoreAttempts(10, absl::Seconds(30)));
      std::vector<size_t> agent_log_at;
      for (const DominoHost& h : e.hosts()) {
        agent_log_at.push_back(h.agent->log().size());
      }
      const absl::Time killed = absl::Now();
      e.server().Kill();
      // Every agent has seen its stream end (ServerClient logs it)...
      for (size_t k = 0; k < e.hosts().size(); ++k) {
        const DominoHost& h = e.hosts()[k];
        ASSERT_TRUE(
            h.agent->WaitForLog("ended: ", absl::Seconds(30), agent_log_at[k]))
            << h.name << " did not notice the server's death:\n"
            << h.agent->log();
      }
      // ...and bans stay enforced by the agents while the server is gone.
      EXPECT_EQ(e.HostsReachable("attacker2", kAttacker2), 0);
      // The (unbanned) attacker1 strikes domino2 during the outage: 5
      // failures on a second host weigh 2 each, enough for a ban once the
      // server sees the spooled events.
      for (int i = 0; i < 5; ++i) {
        EXPECT_TRUE(FailOnce(e.Ns("attacker1"), kAttacker1, e.hosts()[1].ip,
                             Protocol::kPop3, "jdoe"));
      }
      EXPECT_EQ(e.HostsReachable("attacker1", kAttacker1), 3);
      ASSERT_OK(e.StartServer());
      const absl::Time restarted = absl::Now();
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (e.ConnectedAgents() != 3) {
        ASSERT_LT(absl::Now(), deadline) << e.server().log();
        absl::SleepFor(absl::Milliseconds(100));
      }
      const absl::Time resumed = absl::Now();
      std::optional<absl::Duration> rebanned =
          e.WaitHostsReachable("attacker1", kAttacker1, 0, absl::Seconds(10));
      ASSERT_TRUE(rebanned.has_value()) << e.server().log();
      load.reset();
      EXPECT_EQ(e.HostsReachable("attacker2", kAttacker2), 0);
      ASSERT_TRUE(WaitStoredMatchesLogs(e, absl::Seconds(30), &detail))
          << detail;
      Timing(absl::StrFormat(
          "server SIGKILLed under load: down %.2f s, 3 agents resumed %.2f s "
          "after restart, bans enforced throughout; attacker1's failures "
          "during the outage banned it on all 3 hosts %.2f s after the "
          "restart; no acked event lost (%s)",
          Secs(restarted - killed), Secs(resumed - restarted),
          Secs(resumed - restarted + *rebanned), detail));
    }

    // --- Fault 2: PostgreSQL stops for a while.
    {
      auto load = std::make_unique<AdminLoad>(e);
      ASSERT_TRUE(load->WaitForMoreAttempts(5, absl::Seconds(30)));
      ASSERT_EQ(e.HttpStatus("/readyz"), 200);
      const absl::Time stopped = absl::Now();
      ASSERT_OK(e.pg().Stop());
      absl::Time degraded_at;
      {
        const absl::Time deadline = absl::Now() + absl::Seconds(30);
        while (e.HttpStatus("/readyz") == 200) {
          ASSERT_LT(absl::Now(), deadline) << e.server().log();
          absl::SleepFor(absl::Milliseconds(100));
        }
        degraded_at = absl::Now();
      }
      std::string metrics;
      EXPECT_EQ(e.HttpStatus("/metrics", &metrics), 200);
      EXPECT_TRUE(absl::StrContains(metrics, "\nrampart_degraded 1"))
          << metrics.substr(0, 2000);
      // rampartctl status shows it too.
      absl::StatusOr<Json> status = e.Ctl({"status"});
      ASSERT_OK(status.status());
      const std::string store_state = (*status)["store"].value("state", "?");
      EXPECT_NE(store_state, "ok") << status->dump();
      EXPECT_EQ(e.HostsReachable("attacker2", kAttacker2), 0);
      // The outage spans at least 20 more logins of the load (about 2 s),
      // whose events the server must hold back, and the agents spool, until
      // PostgreSQL returns.
      ASSERT_TRUE(load->WaitForMoreAttempts(20, absl::Seconds(60)));
      ASSERT_OK(e.pg().Resume());
      const absl::Time resumed = absl::Now();
      {
        const absl::Time deadline = absl::Now() + absl::Seconds(60);
        while (e.HttpStatus("/readyz") != 200) {
          ASSERT_LT(absl::Now(), deadline) << e.server().log();
          absl::SleepFor(absl::Milliseconds(100));
        }
      }
      const absl::Time ready = absl::Now();
      load.reset();
      ASSERT_TRUE(WaitStoredMatchesLogs(e, absl::Seconds(60), &detail))
          << detail;
      Timing(absl::StrFormat(
          "PostgreSQL stopped: /readyz not ready %.2f s later (metrics "
          "rampart_degraded 1, rampartctl status: store %s); ready again %.2f "
          "s after PostgreSQL restarted; "
          "nothing lost (%s)",
          Secs(degraded_at - stopped), store_state, Secs(ready - resumed),
          detail));
    }

    // --- Fault 3: domino3 loses its link to the server.
    {
      ASSERT_TRUE(e.Reachable("attacker2", kProbe, h3.ip, 389));
      const std::string rules = e.work() + "/cut.nft";
      WriteFile(
          rules,
          absl::StrFormat("table inet rpe2e_cut {\n"
                          "  chain out { type filter hook output priority 0;"
                          " ip daddr %s tcp dport %d reject with tcp reset; }\n"
                          "  chain in { type filter hook input priority 0;"
                          " ip saddr %s tcp sport %d drop; }\n"
                          "}\n",
                          kServerIp, kGrpcPort, kServerIp, kGrpcPort));
      ASSERT_EQ(
          RunCmd(InNetns(h3.ns, {"/usr/sbin/nft", "-f", rules}))->exit_code, 0);
      const absl::Time cut = absl::Now();
      // The probe fails one LDAP bind per second on domino3 until domino3
      // bans it locally. LDAP weighs 0.1 on the server: the at most 60 binds
      // within the deadline score 6 < 10, so the server never bans the probe
      // and reconciliation must lift the local ban.
      absl::Time banned;
      int probes = 0;
      while (true) {
        ASSERT_LT(absl::Now() - cut, absl::Seconds(60)) << h3.agent->log();
        const absl::Time attempt = absl::Now();
        if (!FailOnce(e.Ns("attacker2"), kProbe, h3.ip, Protocol::kLdap,
                      "cn=probe,o=acme")) {
          banned = attempt;  // the ban was in force when this attempt began
          break;
        }
        ++probes;
        // The probe's pace (one bind a second, see above), not a wait.
        absl::SleepFor(absl::Seconds(1));
      }
      EXPECT_FALSE(e.Reachable("attacker2", kProbe, h3.ip, 80));
      // A local ban is local: the other hosts still answer the probe.
      EXPECT_TRUE(e.Reachable("attacker2", kProbe, e.hosts()[0].ip, 80));
      EXPECT_TRUE(e.Reachable("attacker2", kProbe, e.hosts()[1].ip, 80));
      ASSERT_EQ(RunCmd(InNetns(h3.ns, {"/usr/sbin/nft", "delete", "table",
                                       "inet", "rpe2e_cut"}))
                    ->exit_code,
                0);
      const absl::Time healed = absl::Now();
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (!e.Reachable("attacker2", kProbe, h3.ip, 80)) {
        ASSERT_LT(absl::Now(), deadline) << h3.agent->log();
        absl::SleepFor(absl::Milliseconds(100));
      }
      const absl::Time reconciled = absl::Now();
      ASSERT_TRUE(WaitStoredMatchesLogs(e, absl::Seconds(30), &detail))
          << detail;
      EXPECT_EQ(e.ConnectedAgents(), 3);
      EXPECT_EQ(e.HostsReachable("attacker2", kAttacker2), 0);
      Timing(absl::StrFormat(
          "domino3 cut from the server: local fallback ban of the probe %.2f s "
          "after the cut (%d failed binds; activate_after 10s); reconciled "
          "(local ban lifted, spooled events stored) %.2f s after the link "
          "returned (%s)",
          Secs(banned - cut), probes, Secs(reconciled - healed), detail));
    }
  }
  ExpectNothingLeft(pids);
  Timing(absl::StrFormat("whole estate test %.1f s",
                         Secs(absl::Now() - test_start)));
}

// Run only as a child of TeardownLeavesNothingAfterAFailure (hence
// DISABLED_): builds the estate, prints the pids, then fails an assertion
// mid-test, so the teardown runs on the failure path.
TEST(EstateTest, DISABLED_FailsMidwayForTeardownCheck) {
  if (std::getenv("RAMPART_E2E_FAIL_MIDWAY") == nullptr) {
    GTEST_SKIP() << "only run by TeardownLeavesNothingAfterAFailure";
  }
  Estate e;
  ASSERT_OK(e.Build());
  ASSERT_OK(e.StartPostgres());
  ASSERT_OK(e.StartServer());
  ASSERT_OK(e.StartResponders());
  for (DominoHost& h : e.hosts()) ASSERT_OK(e.StartAgent(h));
  std::printf("[e2e pids] %d", e.server().pid());
  for (DominoHost& h : e.hosts()) {
    std::printf(" %d %d", h.responder->pid(), h.agent->pid());
  }
  std::printf("\n[e2e work] %s\n[e2e ns] %s\n", e.work().c_str(),
              e.NsName("").c_str());
  std::fflush(stdout);
  ASSERT_TRUE(false) << "deliberate failure mid-test";
}

TEST(EstateTest, TeardownLeavesNothingAfterAFailure) {
  REQUIRE_ESTATE_ENV();
  char self[4096];
  const ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  ASSERT_GT(n, 0);
  self[n] = '\0';
  absl::StatusOr<agent::CommandResult> r = agent::RunCommand(
      {self, "--gtest_also_run_disabled_tests",
       "--gtest_filter=EstateTest.DISABLED_FailsMidwayForTeardownCheck"},
      {.timeout = absl::Seconds(120),
       .env = {"RAMPART_E2E_FAIL_MIDWAY=1"},
       .max_output = 1 << 20});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->exit_code, 0) << r->output;
  ASSERT_TRUE(absl::StrContains(r->output, "deliberate failure mid-test"))
      << r->output;
  const size_t at = r->output.find("[e2e pids]");
  ASSERT_NE(at, std::string::npos) << r->output;
  const std::string line =
      r->output.substr(at + 10, r->output.find('\n', at) - at - 10);
  int checked = 0;
  for (absl::string_view f : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    int pid = 0;
    ASSERT_TRUE(absl::SimpleAtoi(f, &pid));
    EXPECT_NE(::kill(pid, 0), 0) << "process " << pid << " survived";
    ++checked;
  }
  EXPECT_EQ(checked, 7);
  const size_t w = r->output.find("[e2e work] ");
  ASSERT_NE(w, std::string::npos);
  const std::string work =
      r->output.substr(w + 11, r->output.find('\n', w) - w - 11);
  EXPECT_FALSE(std::filesystem::exists(work)) << work;
  // The child's namespaces ("rpe2e-<child pid>-*") are gone.
  const size_t p = r->output.find("[e2e ns] ");
  ASSERT_NE(p, std::string::npos);
  const std::string ns_prefix =
      r->output.substr(p + 9, r->output.find('\n', p) - p - 9);
  absl::StatusOr<Ran> list = RunCmd({"/usr/sbin/ip", "netns", "list"});
  ASSERT_TRUE(list.ok());
  EXPECT_FALSE(absl::StrContains(list->output, ns_prefix)) << list->output;
  absl::StatusOr<Ran> pg = RunCmd({"/usr/bin/pgrep", "-f", work});
  ASSERT_TRUE(pg.ok());
  EXPECT_NE(pg->exit_code, 0) << "processes still mention " << work;
}
}  // namespace
}  // namespace rampart::e2e
