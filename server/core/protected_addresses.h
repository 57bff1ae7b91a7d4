#pragma once

// ProtectedAddresses: addresses Rampart never bans automatically
// (docs/security.md "Abuse limits"): loopback, the server's own listen and
// interface addresses, and every agent's addresses (the peer address of its
// stream and Hello.host_addresses). A forged flood of failures "from" one of
// them scores but never becomes a ban; the correlator counts the refusal.
//
// The fixed part is given at construction (main's wiring); agents' addresses
// are added by the agent stream as agents connect and kept after they
// disconnect (a restart forgets them until the agent reconnects).
//
// Thread-safety: thread-safe; its mutex is a leaf (it calls nothing while
// holding it), so the correlator may consult it under its own lock.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/ip_address.h"

namespace rampart::server {

class ProtectedAddresses {
 public:
  // Most addresses kept per agent, and most agents; beyond them further
  // addresses are ignored (an agent cannot grow the set without bound).
  static constexpr size_t kMaxPerAgent = 64;
  static constexpr size_t kMaxAgents = 100'000;

  // `fixed`: the server's own prefixes; 127.0.0.0/8 and ::1/128 are always
  // added.
  explicit ProtectedAddresses(std::vector<IpPrefix> fixed);

  // Replaces what is known for `agent_id` (peer address first).
  void SetAgentAddresses(std::string_view agent_id,
                         std::vector<IpAddress> addresses)
      ABSL_LOCKS_EXCLUDED(mu_);

  // Text naming the protected address or prefix that `prefix` overlaps
  // (e.g. "agent mx1's address 192.0.2.10"), or nullopt.
  std::optional<std::string> Overlap(const IpPrefix& prefix) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<IpPrefix>& fixed() const { return fixed_; }

 private:
  const std::vector<IpPrefix> fixed_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<IpAddress>> agents_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
