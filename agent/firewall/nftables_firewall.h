#pragma once

// NftablesFirewall: enforcement with nftables through libnftables, in a
// table of its own (default `inet rampart`) that no other tool writes.
//
//   table inet rampart {
//     set ban4     { type ipv4_addr; flags timeout; }            # /32
//     set ban4_net { type ipv4_addr; flags interval, timeout; }  # /0../31
//     set ban6     { type ipv6_addr; flags timeout; }            # /128
//     set ban6_64  { type ipv6_addr; flags timeout; }            # /64, by
//     network set ban6_net { type ipv6_addr; flags interval, timeout; }  #
//     other lengths chain input {
//       type filter hook input priority -10; policy accept;
//       [tcp dport { 25, 80, ... }] ip saddr @ban4 counter drop
//       ...                         ip6 saddr & ffff:ffff:ffff:ffff:: @ban6_64
//       ...
//     }
//   }
//
// Why five sets rather than one interval set per family: libnftables 1.0.6
// fetches every element of an interval set from the kernel before it adds
// to or deletes from it (to check overlaps), so with 100k elements a
// 100-address delta took 0.7 s (measured); hash sets have no such cost.
// Single addresses (the vast majority of bans) and IPv6 /64s (the
// correlator's IPv6 key) therefore live in hash sets; only other prefix
// lengths use interval sets, whose size stays small.
//
// Every snapshot, delta and Install is ONE nft transaction (one buffer):
// all of it applies or none. A snapshot deletes and re-creates the whole
// table inside its transaction, so it heals a deleted or tampered table and
// migrates an older layout; Install keeps the elements (and re-creates the
// table empty only if it cannot be updated in place). Elements get `timeout
// <remaining>` so the kernel lifts bans on time even if the agent is down;
// permanent bans have none. A removal is rendered as `add element X; delete
// element X`, so removing an element the kernel already expired cannot fail the
// transaction. Only canonical IpPrefix text, numbers and the validated table
// name ever reach the nft script.
//
// Thread-safety: thread-safe (one nft context under a mutex). libnftables
// acts on the network namespace of the thread that calls it.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/firewall/firewall.h"
#include "common/clock.h"

struct nft_ctx;

namespace rampart::agent {

struct NftablesOptions {
  // Table name in family inet: [a-z][a-z0-9_]{0,31} and not an nft keyword
  // (nft rejects those at Install). Default "rampart".
  std::string table = "rampart";
  // Ports the drop rules match. Default all ports.
  PortScope ports;
  // Base chain priority at the input hook; the default -10 runs just before
  // the usual `filter` (0) chains, so their accepts cannot pre-empt a ban.
  int priority = -10;
};

class NftablesFirewall final : public Firewall {
 public:
  // InvalidArgument for a bad table name or port list; Internal if
  // libnftables cannot create a context. Nothing is installed yet.
  // `clock` (turning expiries into remaining timeouts) must outlive this.
  static absl::StatusOr<std::unique_ptr<NftablesFirewall>> Create(
      const NftablesOptions& options, Clock& clock);
  ~NftablesFirewall() override;

  // Firewall
  std::string_view Name() const override { return "nftables"; }
  absl::Status Install() override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplySnapshot(const std::vector<FirewallEntry>& entries) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RemoveAll() override ABSL_LOCKS_EXCLUDED(mu_);

  // The nft scripts, as run (for tests and debugging).
  std::string RenderInstall() const;
  // "add table; delete table;" + RenderInstall().
  std::string RenderRecreate() const;
  std::string RenderSnapshot(const std::vector<FirewallEntry>& entries,
                             absl::Time now) const;
  std::string RenderDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes,
                          absl::Time now) const;

  // Parses the JSON of `nft -j list table inet <table>` into entries (an
  // element's expiry is `now + expires`). FailedPrecondition for elements
  // Rampart did not write (ranges, misplaced lengths); DataLoss for JSON
  // that does not parse.
  absl::StatusOr<std::vector<FirewallEntry>> ParseListing(std::string_view json,
                                                          absl::Time now) const;

  // Runs any nft script in this backend's context (tests: drift injection).
  absl::Status RunScriptForTest(const std::string& script)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  NftablesFirewall(const NftablesOptions& options, Clock& clock, nft_ctx* ctx);

  // Runs `script` as one transaction; with `json_output`, returns what nft
  // printed.
  absl::StatusOr<std::string> Run(const std::string& script, bool json_output)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const NftablesOptions options_;
  Clock& clock_;

  absl::Mutex mu_;
  nft_ctx* const ctx_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
