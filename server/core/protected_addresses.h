#pragma once

// ProtectedAddresses: addresses Rampart never bans automatically
// (docs/security.md "Abuse limits"): loopback, the server's own listen and
// interface addresses, and what is PROVEN to be an agent's: the
// authenticated peer address of its latest stream, and addresses an admin
// approved (`rampartctl agents protect`, audited). A forged flood of
// failures "from" one of them scores but never becomes a ban; the correlator
// counts the refusal. Admin bans of them need the explicit override
// (`bans add --override-protected`, admin role, audited).
//
// Hello.host_addresses are only CLAIMED: anyone holding an agent key can
// claim any address, so they are recorded (shown by `agents list/show` as
// unapproved) but protect nothing until an admin approves them.
//
// Peer and approved entries persist in the EnrollmentStore (table
// agent_protected_addresses), so a restart keeps them; Load() reads them
// back. Revoking an agent drops all of its entries (ForgetAgent).
//
// Thread-safety: thread-safe. mu_ is a leaf (nothing is called while holding
// it), so the correlator may consult Overlap() under its own lock. Mutators
// serialise on write_mu_, which is held across the store write (never taken
// by Overlap()).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "server/core/enrollment_store.h"

namespace rampart::server {

// What is known of one agent's addresses.
struct AgentAddressView {
  std::optional<IpAddress> peer;    // protects (proven by the stream)
  std::vector<IpAddress> approved;  // protects (an admin approved it)
  std::vector<IpAddress> claimed;   // Hello.host_addresses (protect only if
                                    // also approved)
  // Addresses that protect: peer then approved, without duplicates.
  std::vector<IpAddress> Protecting() const;
  // Claimed addresses that protect nothing (neither peer nor approved).
  std::vector<IpAddress> Unapproved() const;
};

class ProtectedAddresses {
 public:
  // Most addresses kept per agent (claimed, and approved, each), and most
  // agents; beyond them further addresses are ignored (approvals refused),
  // so an agent cannot grow the set without bound.
  static constexpr size_t kMaxPerAgent = 64;
  static constexpr size_t kMaxAgents = 100'000;

  // `fixed`: the server's own prefixes; 127.0.0.0/8 and ::1/128 are always
  // added. `store` (not owned, may be null: memory only) persists peer and
  // approved entries.
  explicit ProtectedAddresses(std::vector<IpPrefix> fixed,
                              EnrollmentStore* store = nullptr);

  // Reads the persisted entries (call once at start-up). Entries of agents
  // for which `revoked(agent_id)` is true are dropped and deleted (a
  // revocation made while the server was down).
  absl::Status Load(absl::FunctionRef<bool(std::string_view)> revoked)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // An authenticated stream's Hello: `peer` (its transport peer) protects
  // from now on, replacing the agent's previous peer entry; `claimed`
  // (Hello.host_addresses) replaces what the agent claimed and protects
  // nothing by itself. The store is written only when the peer changed.
  absl::Status AgentConnected(std::string_view agent_id,
                              std::optional<IpAddress> peer,
                              std::vector<IpAddress> claimed, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // Admin approval (they protect from now on) and withdrawal (approved and
  // peer entries of `addresses` are dropped; a reconnecting agent's new
  // stream proves its peer address again). FailedPrecondition if approving
  // would exceed kMaxPerAgent or kMaxAgents.
  absl::Status Approve(std::string_view agent_id,
                       const std::vector<IpAddress>& addresses,
                       std::string_view actor, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);
  absl::Status Unprotect(std::string_view agent_id,
                         const std::vector<IpAddress>& addresses)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  // Drops everything known of `agent_id` (its revocation).
  absl::Status ForgetAgent(std::string_view agent_id)
      ABSL_LOCKS_EXCLUDED(mu_, write_mu_);

  AgentAddressView Of(std::string_view agent_id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Text naming the protected address or prefix that `prefix` overlaps
  // (e.g. "agent mx1's address 192.0.2.10"), or nullopt. Claimed but
  // unapproved addresses never match.
  std::optional<std::string> Overlap(const IpPrefix& prefix) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The same, for the agents' entries only (not the fixed prefixes).
  std::optional<std::string> AgentOverlap(const IpPrefix& prefix) const
      ABSL_LOCKS_EXCLUDED(mu_);

  const std::vector<IpPrefix>& fixed() const { return fixed_; }

 private:
  struct Entry {
    std::optional<IpAddress> peer;
    absl::Time peer_since = absl::UnixEpoch();
    // (address, since, actor)
    struct Approval {
      IpAddress address;
      absl::Time since;
      std::string actor;
    };
    std::vector<Approval> approved;
    std::vector<IpAddress> claimed;
  };

  // The rows of `e` for the store.
  static std::vector<ProtectedAgentAddress> Rows(std::string_view agent_id,
                                                 const Entry& e);
  absl::Status Persist(std::string_view agent_id,
                       const std::vector<ProtectedAgentAddress>& rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_);

  const std::vector<IpPrefix> fixed_;
  EnrollmentStore* const store_;
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> agents_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
