#pragma once

// AgentApp: `rampart-agent run` wired together (docs/agent.md "Client and
// fallback", docs/threading.md "Agent"):
//
//   loop thread:  ChangeNotifier wait -> EventSource::Poll (tail, parse,
//                 dedup, batch, spool, save positions) -> LocalFallback
//                 (activation, reconciliation) -> Enforcer Refresh/Repair
//   client:       ServerClient's connection + reader threads (stream)
//   enforcement:  Enforcer (agent/firewall) behind a BanListKeeper that adds
//                 the local-fallback bans to the server's list
//
// Start() re-applies the last enforced list from the state directory before
// the server is contacted (restart safety). Stop() seals and spools the open
// batch, saves tail positions, closes the spool cleanly and leaves the
// firewall rules in place unless leave_rules_on_stop is false.
//
// Tests create it with run_loop_thread = false and drive PollOnce()
// themselves with a SimulatedClock; the client still uses real sockets.
//
// Thread-safety: Start/Stop/PollOnce from one thread (the owner); accessors
// are thread-safe where the underlying object is.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/daemon/agent_config.h"
#include "agent/daemon/ban_list_keeper.h"
#include "agent/daemon/conversions.h"
#include "agent/daemon/event_source.h"
#include "agent/daemon/local_fallback.h"
#include "agent/daemon/server_client.h"
#include "agent/firewall/enforcer.h"
#include "agent/firewall/firewall.h"
#include "agent/firewall/guard.h"
#include "agent/firewall/host_address_source.h"
#include "agent/firewall/network_address_source.h"
#include "agent/spool/spool.h"
#include "agent/tail/change_notifier.h"
#include "agent/tail/position_store.h"
#include "common/clock.h"
#include "common/metrics.h"

namespace rampart::agent {

// What main() (or a test) injects besides the configuration.
struct AgentEnvironment {
  // Required; must outlive the app.
  Clock* clock = nullptr;
  metrics::Registry* metrics = nullptr;
  // Optional overrides (tests): a backend instead of CreateFirewall(), a
  // host address list instead of getifaddrs. Must outlive the app.
  Firewall* firewall = nullptr;
  HostAddressSource* host_addresses = nullptr;
  // Gateways and DNS resolvers instead of LinuxNetworkAddressSource.
  NetworkAddressSource* network_addresses = nullptr;
  // Backoff jitter source in [0, 1); default: a generator seeded by the OS.
  std::function<double()> uniform01;
  // Run the loop thread (production). Tests set false and call PollOnce().
  bool run_loop_thread = true;
};

class AgentApp {
 public:
  // Opens the spool, positions, enforcer state and tailers under
  // config.state_dir and creates the backend. Nothing is enforced or
  // contacted until Start(). Errors: the state directory or spool cannot be
  // used, bad configuration, backend creation errors.
  static absl::StatusOr<std::unique_ptr<AgentApp>> Create(
      const AgentConfig& config, const AgentEnvironment& env);

  // Stop() if still running.
  ~AgentApp();
  AgentApp(const AgentApp&) = delete;
  AgentApp& operator=(const AgentApp&) = delete;

  // Re-applies the last enforced list (and restored local bans), then
  // starts the client and, if configured, the loop thread. A backend error
  // is logged and retried by the next repair (the agent still spools).
  absl::Status Start();

  // One iteration of the loop thread's work (tests drive it directly).
  // Returns true if a log still has unread data.
  absl::StatusOr<bool> PollOnce();

  // Clean shutdown (SIGTERM). Idempotent.
  absl::Status Stop();

  // For tests and the bench.
  Spool& spool() { return *spool_; }
  ServerClient& client() { return *client_; }
  Enforcer& enforcer() { return *enforcer_; }
  LocalFallback& fallback() { return *fallback_; }
  const EventSourceStats& source_stats() const { return source_->stats(); }

 private:
  AgentApp(const AgentConfig& config, const AgentEnvironment& env);
  void Loop();

  const AgentConfig config_;
  const AgentEnvironment env_;

  std::unique_ptr<Firewall> owned_firewall_;
  std::unique_ptr<HostAddressSource> owned_host_source_;
  std::unique_ptr<NetworkAddressSource> owned_network_source_;
  std::unique_ptr<Guard> guard_;
  std::unique_ptr<Enforcer> enforcer_;
  std::unique_ptr<BanListKeeper> keeper_;
  std::unique_ptr<LocalFallback> fallback_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<PositionStore> positions_;
  ProtoBatchEncoder encoder_;
  std::unique_ptr<EventSource> source_;
  std::unique_ptr<ServerClient> client_;
  std::unique_ptr<ChangeNotifier> notifier_;

  // Written by the client's reader thread (PolicyHint), applied by the loop.
  std::atomic<int> pending_max_events_{0};
  // Counters read by the client's heartbeat.
  std::atomic<uint64_t> lines_{0};
  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> backlog_{0};
  // EventSourceStats::tailer_lag in microseconds.
  std::atomic<int64_t> tailer_lag_micros_{0};

  absl::Time next_repair_;
  bool started_ = false;
  bool stopped_ = false;
  std::thread loop_;
  absl::Mutex mu_;
  bool stop_loop_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rampart::agent
