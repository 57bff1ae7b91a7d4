#pragma once

// ExecFirewall: hands enforcement to user commands, e.g. a script driving a
// perimeter firewall's API. One run of `add_command` per batch of added
// entries and of `remove_command` per batch of removed ones, each with a
// timeout; programs run without a shell (argv only).
//
// How entries are passed (ExecOptions::pass):
//   kStdin (default): one line per entry on stdin,
//                       "<address>/<length> <expiry>\n"
//                     where <expiry> is Unix seconds, or 0 for permanent
//                     (e.g. "203.0.113.0/24 1767225600", "198.51.100.7/32 0");
//   kArgs:            the prefixes ("<address>/<length>") appended to argv.
// Environment: RAMPART_ACTION=add|remove|flush, RAMPART_COUNT=<entries>.
// A batch holds at most `max_batch` entries; a non-zero exit or a timeout
// fails the call (the entries of earlier batches count as applied).
//
// The backend remembers what it added (ListEnforced returns that). A
// snapshot removes what is no longer wanted and adds what is new; with
// `flush_command` set it runs that first and then adds everything. After a
// restart the memory is empty, so the first snapshot re-adds every entry:
// commands must be idempotent. Entries never expire by themselves: the
// Enforcer removes them at expiry.
//
// Thread-safety: thread-safe (calls serialise on a mutex).

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/firewall/firewall.h"

namespace rampart::agent {

struct ExecOptions {
  // argv of the commands; add and remove are required, flush optional.
  std::vector<std::string> add_command;
  std::vector<std::string> remove_command;
  std::vector<std::string> flush_command;
  enum class Pass { kStdin, kArgs };
  Pass pass = Pass::kStdin;
  // Entries per run, 1..100000. Default 1000.
  size_t max_batch = 1000;
  // Per run. Default 30 s.
  absl::Duration timeout = absl::Seconds(30);
};

class ExecFirewall final : public Firewall {
 public:
  // InvalidArgument if add/remove commands are empty or max_batch is out of
  // range.
  static absl::StatusOr<std::unique_ptr<ExecFirewall>> Create(
      const ExecOptions& options);

  // Firewall
  std::string_view Name() const override { return "exec"; }
  absl::Status Install() override { return absl::OkStatus(); }
  absl::Status ApplySnapshot(const std::vector<FirewallEntry>& entries) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status RemoveAll() override ABSL_LOCKS_EXCLUDED(mu_);

  // One stdin line as described above (tests, docs).
  static std::string FormatLine(const FirewallEntry& e);

 private:
  explicit ExecFirewall(const ExecOptions& options) : options_(options) {}

  // Runs `command` for `entries` in batches; updates known_ after each
  // successful batch.
  absl::Status RunBatches(std::string_view action,
                          const std::vector<std::string>& command,
                          const std::vector<FirewallEntry>& entries, bool add)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Flush() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const ExecOptions options_;

  absl::Mutex mu_;
  absl::btree_map<IpPrefix, std::optional<absl::Time>> known_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::agent
