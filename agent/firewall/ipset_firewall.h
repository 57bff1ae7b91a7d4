#pragma once

// IpsetFirewall: enforcement for hosts without nftables support in their
// tooling: two ipset `hash:net` sets with timeouts (IPv4 and IPv6) and
// iptables/ip6tables rules that drop their members.
//
//   ipset:     create rampart4 hash:net family inet  maxelem 1048576 timeout 0
//              create rampart6 hash:net family inet6 maxelem 1048576 timeout 0
//   iptables:  -N RAMPART; -A RAMPART [-p tcp -m multiport --dports ...]
//                -m set --match-set rampart4 src -j DROP; -I INPUT 1 -j RAMPART
//   (ip6tables the same with rampart6)
//
// Programs run without a shell (argv only, RunCommand) with a timeout;
// element lists go to `ipset -exist restore` on stdin.
//
// Atomicity: a snapshot fills `<set>-new`, then swaps it with the live set
// (one atomic `swap` per family) and destroys it. A delta is one `ipset
// restore` of `del`/`add` lines: not transactional (a failure in the middle
// leaves the lines before it applied; the Enforcer then re-applies a
// snapshot), but with -exist neither a missing `del` nor a repeated `add`
// fails, and `add` replaces the timeout of an existing element.
//
// Timeouts: ipset's limit is 2147483 s (24.8 days). Longer bans are
// installed without timeout and removed by the Enforcer at expiry.
//
// Thread-safety: thread-safe (calls serialise on a mutex). Commands run in
// the network namespace of the calling thread.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/firewall/firewall.h"
#include "common/clock.h"

namespace rampart::agent {

struct IpsetOptions {
  // Set names, [A-Za-z0-9_-]{1,26} ("-new" is appended for snapshots).
  // Defaults "rampart4", "rampart6".
  std::string set_v4 = "rampart4";
  std::string set_v6 = "rampart6";
  // iptables chain, [A-Za-z0-9_-]{1,28}. Default "RAMPART".
  std::string chain = "RAMPART";
  // Ports the DROP rules match. Default all ports.
  PortScope ports;
  // Capacity of each set (ipset's default of 65536 is too small for a
  // 100k-entry list). Default 1048576.
  uint32_t maxelem = 1u << 20;
  // Programs (searched in PATH). Defaults: ipset, iptables, ip6tables,
  // iptables-restore, ip6tables-restore.
  std::string ipset = "ipset";
  std::string iptables = "iptables";
  std::string ip6tables = "ip6tables";
  std::string iptables_restore = "iptables-restore";
  std::string ip6tables_restore = "ip6tables-restore";
  // Per command. Default 60 s.
  absl::Duration command_timeout = absl::Seconds(60);
};

// Longest element timeout ipset accepts.
inline constexpr absl::Duration kIpsetMaxTimeout = absl::Seconds(2147483);

class IpsetFirewall final : public Firewall {
 public:
  // InvalidArgument for bad names or ports. Runs nothing yet. `clock` must
  // outlive the backend.
  static absl::StatusOr<std::unique_ptr<IpsetFirewall>> Create(
      const IpsetOptions& options, Clock& clock);

  // Firewall
  std::string_view Name() const override { return "ipset"; }
  absl::Status Install() override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplySnapshot(const std::vector<FirewallEntry>& entries) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RemoveAll() override ABSL_LOCKS_EXCLUDED(mu_);

  // The `ipset restore` scripts (tests).
  std::string RenderSnapshot(const std::vector<FirewallEntry>& entries,
                             absl::Time now) const;
  std::string RenderDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes,
                          absl::Time now) const;
  // The iptables-restore script for one family (tests).
  std::string RenderRules(bool v6) const;
  // Parses `ipset save <set>` output. FailedPrecondition for lines Rampart
  // did not write.
  absl::StatusOr<std::vector<FirewallEntry>> ParseSave(std::string_view text,
                                                       std::string_view set,
                                                       absl::Time now) const;

 private:
  IpsetFirewall(const IpsetOptions& options, Clock& clock)
      : options_(options), clock_(clock) {}

  std::string CreateLines() const;
  absl::Status Restore(const std::string& script)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status InstallRules() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const IpsetOptions options_;
  Clock& clock_;

  // Serialises command sequences.
  absl::Mutex mu_;
};

}  // namespace rampart::agent
