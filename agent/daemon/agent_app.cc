#include "agent/daemon/agent_app.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <utility>

#include "absl/strings/str_format.h"
#include "agent/firewall/firewall_factory.h"
#include "agent/firewall/linux_network_address_source.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace rampart::agent {
namespace {

std::string HostName() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) {
    return "";
  }
  return host;
}

// The addresses of the configured servers (IP literals as is, DNS names
// resolved now), for the Guard: the agent never bans its server.
std::vector<IpAddress> ServerAddresses(
    const std::vector<std::string>& servers) {
  std::vector<IpAddress> out;
  for (const std::string& s : servers) {
    std::string host = s.substr(0, s.rfind(':'));
    if (!host.empty() && host.front() == '[') {
      host = host.substr(1, host.size() - 2);
    }
    if (std::optional<IpAddress> ip = IpAddress::Parse(host); ip.has_value()) {
      out.push_back(*ip);
      continue;
    }
    addrinfo hints = {};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) {
      RAMPART_LOG(Warning) << "cannot resolve server " << host
                           << " for the guard";
      continue;
    }
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      char text[NI_MAXHOST];
      if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof(text), nullptr, 0,
                      NI_NUMERICHOST) == 0) {
        if (std::optional<IpAddress> ip = IpAddress::Parse(text);
            ip.has_value()) {
          out.push_back(*ip);
        }
      }
    }
    freeaddrinfo(res);
  }
  return out;
}

}  // namespace

AgentApp::AgentApp(const AgentConfig& config, const AgentEnvironment& env)
    : config_(config), env_(env) {}

AgentApp::~AgentApp() {
  if (absl::Status s = Stop(); !s.ok()) {
    RAMPART_LOG(Error) << "agent stop: " << s;
  }
}

absl::StatusOr<std::unique_ptr<AgentApp>> AgentApp::Create(
    const AgentConfig& config, const AgentEnvironment& env) {
  if (env.clock == nullptr || env.metrics == nullptr) {
    return absl::InvalidArgumentError("clock and metrics are required");
  }
  ClientTls tls{.insecure = config.insecure};
  if (!config.insecure) {
    for (auto [path, pem] : {std::pair{&config.tls_ca_file, &tls.ca_pem},
                             std::pair{&config.tls_cert_file, &tls.cert_pem},
                             std::pair{&config.tls_key_file, &tls.key_pem}}) {
      absl::StatusOr<std::string> text =
          path->empty() ? absl::NotFoundError("not set")
                        : file_util::ReadFileBounded(*path, 1024 * 1024);
      if (!text.ok()) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "no TLS material: cannot read %s (%s). Enroll the agent first "
            "(rampart-agent enroll --token ...; docs/security.md), set "
            "tls.ca_file/cert_file/key_file, or pass --insecure for a "
            "server started with --insecure",
            path->empty() ? "a tls file" : *path, text.status().message()));
      }
      *pem = *std::move(text);
    }
  }
  auto app = std::unique_ptr<AgentApp>(new AgentApp(config, env));
  Clock& clock = *env.clock;
  Firewall* firewall = env.firewall;
  if (firewall == nullptr) {
    ASSIGN_OR_RETURN(app->owned_firewall_,
                     CreateFirewall(config.firewall, clock));
    firewall = app->owned_firewall_.get();
  }
  HostAddressSource* hosts = env.host_addresses;
  if (hosts == nullptr) {
    app->owned_host_source_ = std::make_unique<IfaddrsHostAddressSource>();
    hosts = app->owned_host_source_.get();
  }
  NetworkAddressSource* network = env.network_addresses;
  if (network == nullptr) {
    app->owned_network_source_ = std::make_unique<LinuxNetworkAddressSource>();
    network = app->owned_network_source_.get();
  }
  const EnforcementLimitsConfig& limits = config.limits;
  app->guard_ = std::make_unique<Guard>(
      GuardOptions{.allowlist = config.allowlist,
                   .server_addresses = ServerAddresses(config.servers),
                   .protect_gateways = limits.protect_gateway,
                   .protect_dns_resolvers = limits.protect_dns_resolvers,
                   .min_prefix_v4 = limits.min_prefix_v4,
                   .min_prefix_v6 = limits.min_prefix_v6},
      hosts, network);
  ASSIGN_OR_RETURN(
      app->enforcer_,
      Enforcer::Create(
          EnforcerOptions{
              .state_dir = config.state_dir,
              .remove_on_stop = !config.leave_rules_on_stop,
              .max_blocked_ipv4_addresses = limits.max_blocked_ipv4_addresses,
              .max_blocked_ipv6_subnets = limits.max_blocked_ipv6_subnets},
          *firewall, *app->guard_, clock, *env.metrics));
  app->keeper_ = std::make_unique<BanListKeeper>(*app->enforcer_);
  app->fallback_ =
      std::make_unique<LocalFallback>(config.local_fallback, clock);

  ASSIGN_OR_RETURN(app->spool_,
                   Spool::Open(SpoolOptions{.dir = config.state_dir + "/spool",
                                            .max_bytes = config.spool_max_bytes,
                                            .segment_bytes = 4u << 20,
                                            // A full batch (5000 events) is
                                            // at most ~2.1 MB.
                                            .max_record_bytes = 3u << 20,
                                            .fsync = config.spool_fsync}));
  for (const std::string& r : app->spool_->TakeDamageReports()) {
    RAMPART_LOG(Warning) << "spool: " << r;
  }
  ASSIGN_OR_RETURN(app->positions_,
                   PositionStore::Open(config.state_dir + "/positions"));

  absl::TimeZone zone = absl::LocalTimeZone();
  if (!config.time_zone.empty() &&
      !absl::LoadTimeZone(config.time_zone, &zone)) {
    return absl::InvalidArgumentError("unknown time zone " + config.time_zone);
  }
  AgentApp* self = app.get();
  EventSourceOptions so{
      .logs = config.logs,
      .read_existing_logs = config.read_existing_logs,
      .successes = config.successes,
      .tls_failures = config.tls_failures,
      .sessions = config.sessions,
      .time_zone = zone,
      .max_events_per_batch = config.max_events_per_batch,
      .flush_interval = config.batch_flush_interval,
      .observer = [self](const AgentEvent& e,
                         uint64_t seq) { self->fallback_->Observe(e, seq); },
      .on_sealed = [self] { self->client_->Wake(); },
      .metrics = env.metrics,
  };
  ASSIGN_OR_RETURN(app->source_,
                   EventSource::Create(so, *app->spool_, *app->positions_,
                                       app->encoder_, clock));

  ServerClientOptions co;
  co.servers = config.servers;
  co.tls = std::move(tls);
  co.hello.agent_id = config.agent_id;
  co.hello.site = config.site;
  co.hello.hostname = HostName().substr(0, 253);
  co.hello.time_zone =
      config.time_zone.empty() ? std::string(zone.name()) : config.time_zone;
  if (absl::StatusOr<std::vector<IpAddress>> addrs = hosts->HostAddresses();
      addrs.ok()) {
    for (const IpAddress& a : *addrs) {
      co.hello.host_addresses.push_back(a.ToString());
    }
  }
  for (size_t i = 0; i < config.logs.size(); ++i) {
    co.hello.log_sources.emplace_back(static_cast<uint32_t>(i + 1),
                                      config.logs[i].path);
  }
  co.hello.firewall_backend = std::string(firewall->Name());
  co.backoff_min = config.backoff_min;
  co.backoff_max = config.backoff_max;
  co.heartbeat_interval = config.heartbeat_interval;
  co.heartbeat_stats = [self] {
    return HeartbeatStats{
        .lines_read = self->lines_.load(),
        .events_parsed = self->events_.load(),
        .backlog_bytes = self->backlog_.load(),
        .tailer_lag = absl::Microseconds(self->tailer_lag_micros_.load()),
        .local_fallback_bans =
            static_cast<uint32_t>(self->fallback_->bans().size())};
  };
  co.local_bans = [self] { return self->fallback_->bans(); };
  co.on_max_events_per_batch = [self](int n) {
    self->pending_max_events_.store(
        std::min(n, self->config_.max_events_per_batch));
  };
  std::function<double()> uniform = env.uniform01;
  if (!uniform) {
    auto gen = std::make_shared<std::mt19937_64>(std::random_device{}());
    uniform = [gen] {
      return std::uniform_real_distribution<double>(0.0, 1.0)(*gen);
    };
  }
  app->client_ = std::make_unique<ServerClient>(co, *app->spool_, *app->keeper_,
                                                clock, std::move(uniform));
  return app;
}

absl::Status AgentApp::Start() {
  if (started_) {
    return absl::FailedPreconditionError("already started");
  }
  started_ = true;
  // Restart safety: the last enforced list (and local bans) come back before
  // the server is reachable.
  std::vector<LocalBan> restored =
      keeper_->LoadState(spool_->stats().next_sequence);
  if (!restored.empty()) {
    fallback_->Restore(std::move(restored));
  }
  if (absl::Status s = enforcer_->Start(); !s.ok()) {
    RAMPART_LOG(Error) << "firewall start failed (retried by repair): " << s;
  }
  next_repair_ = env_.clock->Now() + config_.repair_interval;
  client_->Start();
  if (env_.run_loop_thread) {
    std::vector<std::string> paths;
    for (const LogSourceConfig& l : config_.logs) {
      paths.push_back(l.path);
    }
    notifier_ = CreateChangeNotifier(paths, ChangeNotifierOptions{});
    loop_ = std::thread([this] { Loop(); });
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> AgentApp::PollOnce() {
  if (const int n = pending_max_events_.exchange(0); n > 0) {
    source_->SetMaxEventsPerBatch(n);
  }
  absl::StatusOr<bool> more = source_->Poll();
  if (!more.ok()) {
    RAMPART_LOG(Error) << "spooling events: " << more.status();
  }
  lines_.store(source_->stats().lines);
  events_.store(source_->stats().events);
  backlog_.store(source_->stats().backlog_bytes);
  tailer_lag_micros_.store(
      absl::ToInt64Microseconds(source_->stats().tailer_lag));

  fallback_->UpdateReachability(client_->unreachable_since());
  if (fallback_->Reconcile(client_->server_list_current(),
                           spool_->stats().acked_through)) {
    if (absl::Status s = keeper_->SetLocalBans(fallback_->bans()); !s.ok()) {
      RAMPART_LOG(Error) << "applying local bans: " << s;
    }
    client_->ReportLocalBans();
  }

  const absl::Time now = env_.clock->Now();
  if (std::optional<absl::Time> t = enforcer_->NextWakeup();
      t.has_value() && *t <= now) {
    if (absl::Status s = enforcer_->Refresh(); !s.ok()) {
      RAMPART_LOG(Error) << "firewall refresh: " << s;
    }
  }
  if (now >= next_repair_) {
    next_repair_ = now + config_.repair_interval;
    if (absl::StatusOr<RepairReport> r = enforcer_->Repair(); !r.ok()) {
      RAMPART_LOG(Error) << "firewall repair: " << r.status();
    }
  }
  if (config_.spool_fsync == FsyncPolicy::kExplicit) {
    if (absl::Status s = spool_->Sync(); !s.ok()) {
      RAMPART_LOG(Error) << "spool sync: " << s;
    }
  }
  return more.ok() ? *more : false;
}

void AgentApp::Loop() {
  const absl::Duration tick =
      std::min(config_.batch_flush_interval, absl::Milliseconds(250));
  bool more = false;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_loop_) {
        return;
      }
    }
    if (!more) {
      (void)notifier_->Wait(tick);
    }
    absl::StatusOr<bool> r = PollOnce();
    more = r.ok() && *r;
  }
}

absl::Status AgentApp::Stop() {
  if (stopped_) {
    return absl::OkStatus();
  }
  stopped_ = true;
  if (loop_.joinable()) {
    {
      absl::MutexLock lock(&mu_);
      stop_loop_ = true;
    }
    notifier_->Wake();
    loop_.join();
  }
  absl::Status status;
  if (source_ != nullptr) {
    status = source_->Close();
    if (!status.ok()) {
      RAMPART_LOG(Error) << "final flush: " << status;
    }
  }
  if (client_ != nullptr) {
    client_->Stop();
  }
  if (spool_ == nullptr) {
    return status;
  }
  if (absl::Status s = spool_->Close(); !s.ok()) {
    RAMPART_LOG(Error) << "spool close: " << s;
    status.Update(s);
  }
  if (started_) {
    if (absl::Status s = enforcer_->Stop(); !s.ok()) {
      RAMPART_LOG(Error) << "firewall stop: " << s;
      status.Update(s);
    }
  }
  return status;
}

}  // namespace rampart::agent
