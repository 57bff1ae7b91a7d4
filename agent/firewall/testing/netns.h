#pragma once

// Test and benchmark support (not linked into rampart-agent): named network
// namespaces that a test creates and always deletes, with a worker thread
// inside each, and a TCP reachability probe between them.
//
// Everything that talks to the kernel's networking (libnftables, ipset
// child processes, sockets) acts on the namespace of the calling thread, so
// tests run backends through ScopedNetns::Call and never touch the host's
// own ruleset.
//
// Thread-safety: ScopedNetns is thread-safe; Call() blocks until the
// closure has run on the namespace's thread (one at a time).

#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"

namespace rampart::agent::testing {

class ScopedNetns {
 public:
  // Runs `ip netns add <name>` and starts a thread that enters it. Also
  // deletes leftovers "rampart-fw-<pid>-*" of processes that no longer
  // exist. Unavailable if `ip` fails (not root, no netns support).
  static absl::StatusOr<std::unique_ptr<ScopedNetns>> Create(
      const std::string& name);
  // Stops the thread and deletes the namespace (and with it every
  // interface, socket binding and nftables table inside).
  ~ScopedNetns();
  ScopedNetns(const ScopedNetns&) = delete;
  ScopedNetns& operator=(const ScopedNetns&) = delete;

  const std::string& name() const { return name_; }

  // Runs `fn` on the thread inside the namespace and returns its result.
  template <typename F>
  std::invoke_result_t<F> Call(F&& fn) {
    using R = std::invoke_result_t<F>;
    if constexpr (std::is_void_v<R>) {
      RunOnThread([&] { fn(); });
    } else {
      std::optional<R> result;
      RunOnThread([&] { result.emplace(fn()); });
      return std::move(*result);
    }
  }

  // `ip -n <name> <args...>`; Unavailable with ip's output on failure.
  absl::Status Ip(const std::vector<std::string>& args) const;

  // "rampart-fw-<pid>-<suffix>".
  static std::string UniqueName(const std::string& suffix);

 private:
  explicit ScopedNetns(std::string name) : name_(std::move(name)) {}
  void RunOnThread(std::function<void()> fn) ABSL_LOCKS_EXCLUDED(mu_);
  void Loop() ABSL_LOCKS_EXCLUDED(mu_);
  bool HasWorkOrStop() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stop_ || !queue_.empty();
  }

  const std::string name_;
  std::thread thread_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status enter_status_ ABSL_GUARDED_BY(mu_);
  bool entered_ ABSL_GUARDED_BY(mu_) = false;
};

// Two namespaces joined by a veth pair, for enforcement tests:
//   fw:   198.51.100.1/24, 2001:db8:100::1/64; routes to 203.0.113.0/24 and
//         2001:db8:200::/64 via the peer
//   peer: 198.51.100.2/24, 198.51.100.3/24, 203.0.113.5/32,
//         203.0.113.200/32, 2001:db8:100::2/64, 2001:db8:200::5/128
// Only documentation addresses. Create() returns once the peer reaches the
// fw namespace from 198.51.100.2, 203.0.113.5 and 2001:db8:200::5.
class TwoHostTopology {
 public:
  static absl::StatusOr<std::unique_ptr<TwoHostTopology>> Create();
  ScopedNetns& fw() { return *fw_; }
  ScopedNetns& peer() { return *peer_; }
  // From `src` (a peer address) to 198.51.100.1 or 2001:db8:100::1.
  bool Reachable(std::string_view src, int port = 25,
                 absl::Duration timeout = absl::Milliseconds(300));

 private:
  TwoHostTopology() = default;
  std::unique_ptr<ScopedNetns> fw_;
  std::unique_ptr<ScopedNetns> peer_;
};

// From inside `from`, opens a TCP connection from `src` to `dst`:`port`.
// True if the peer answered (connected, or refused with a RST) within
// `timeout`; false if nothing came back (the SYN was dropped).
bool TcpReachable(ScopedNetns& from, const IpAddress& src, const IpAddress& dst,
                  int port, absl::Duration timeout);

// Reason the calling test cannot use namespaces (not root, `ip` or netns
// support missing), or "" if it can.
std::string NetnsUnavailableReason();

}  // namespace rampart::agent::testing
