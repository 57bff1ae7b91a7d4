#pragma once

// DryRunFirewall: enforces nothing. Logs what it would do (a summary per
// call at INFO, each entry at DEBUG; each entry of a delta at INFO) and
// keeps the set in memory, so ListEnforced and drift repair behave as with
// a real backend. Entries past their expiry (by the injected Clock) are not
// listed, as a kernel would have dropped them.
//
// Thread-safety: thread-safe.

#include <optional>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/synchronization/mutex.h"
#include "agent/firewall/firewall.h"
#include "common/clock.h"

namespace rampart::agent {

class DryRunFirewall final : public Firewall {
 public:
  // `clock` must outlive the backend.
  explicit DryRunFirewall(Clock& clock) : clock_(clock) {}

  // Firewall
  std::string_view Name() const override { return "dry-run"; }
  absl::Status Install() override;
  absl::Status ApplySnapshot(const std::vector<FirewallEntry>& entries) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RemoveAll() override ABSL_LOCKS_EXCLUDED(mu_);

  // Drift injection for tests: removes or adds an entry behind the
  // Enforcer's back.
  void EraseForTest(const IpPrefix& p) ABSL_LOCKS_EXCLUDED(mu_);
  void InsertForTest(const FirewallEntry& e) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  Clock& clock_;
  absl::Mutex mu_;
  absl::btree_map<IpPrefix, std::optional<absl::Time>> entries_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
