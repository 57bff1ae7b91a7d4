#pragma once

// NetshFirewall ("windows-netsh"): for Domino on Windows. Maintains a
// PowerShell script, `<output_dir>/rampart-block.ps1`, that creates inbound
// block rules named `Rampart-Block-0001`, `Rampart-Block-0002`, ... (group
// "Rampart"), each holding at most `addresses_per_rule` prefixes (default
// 200: Windows Firewall slows down badly with long -RemoteAddress lists).
//
// The script is idempotent: every rule carries the hash of its address list
// in its Description, and a run only touches rules whose hash differs, then
// deletes Rampart rules that are no longer listed. Re-running it converges
// the firewall from any state. It uses the NetSecurity cmdlets
// (New-/Set-/Remove-NetFirewallRule), or netsh.exe where they are missing.
// Something on the Windows host runs it: `apply_command` (run after every
// write, e.g. `powershell.exe -NoProfile -ExecutionPolicy Bypass -File
// C:\ProgramData\Rampart\rampart-block.ps1`) or a scheduled task.
//
// Stable chunks: a prefix keeps its rule until it is removed; a new prefix
// goes into the lowest-numbered rule with room (or a new rule). So a delta
// changes only the rules of the prefixes it touches and every other rule's
// text and hash stay identical. When removals have left the rules much
// emptier than needed (more than max(2, 25 %) rules above the minimum), all
// prefixes are repacked once. The assignment survives restarts in
// `<output_dir>/rampart-block.state`.
//
// Files are written atomically (temp + fsync + rename). Windows rules do
// not expire: the Enforcer removes expired bans. Only canonical prefixes,
// hex hashes, numbers and validated names reach the script.
//
// Thread-safety: thread-safe (calls serialise on a mutex).

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/firewall/firewall.h"

namespace rampart::agent {

struct NetshOptions {
  // Directory of the script and the state file; created if missing.
  // Required.
  std::string output_dir;
  // Prefixes per rule, 1..10000. Default 200.
  size_t addresses_per_rule = 200;
  // Rule names are "<rule_prefix>-NNNN"; [A-Za-z0-9-]{1,40}. Default
  // "Rampart-Block".
  std::string rule_prefix = "Rampart-Block";
  // Rule group, [A-Za-z0-9-]{1,40}. Default "Rampart".
  std::string group = "Rampart";
  // Ports the rules block. Default all ports.
  PortScope ports;
  // Optional argv run after each write of the script (no shell).
  std::vector<std::string> apply_command;
  absl::Duration apply_timeout = absl::Minutes(5);
  // fsync written files. Default true.
  bool sync = true;
};

class NetshFirewall final : public Firewall {
 public:
  // Validates the options, creates the output directory and loads the
  // chunk assignment (a missing or corrupt state file starts empty).
  // InvalidArgument for bad options; directory errors as ErrnoStatus.
  static absl::StatusOr<std::unique_ptr<NetshFirewall>> Create(
      const NetshOptions& options);

  // Firewall
  std::string_view Name() const override { return "windows-netsh"; }
  // Creates the output directory; once a list is known (state file loaded,
  // or anything applied) rewrites the script and runs apply_command, which
  // converges the Windows side again.
  absl::Status Install() override ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplySnapshot(const std::vector<FirewallEntry>& entries) override
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ApplyDelta(const std::vector<FirewallEntry>& adds,
                          const std::vector<IpPrefix>& removes) override
      ABSL_LOCKS_EXCLUDED(mu_);
  // The prefixes the script blocks (expiries are not tracked: nullopt).
  absl::StatusOr<std::vector<FirewallEntry>> ListEnforced() override
      ABSL_LOCKS_EXCLUDED(mu_);
  // Writes a script with no rules (running it deletes every Rampart rule)
  // and runs apply_command.
  absl::Status RemoveAll() override ABSL_LOCKS_EXCLUDED(mu_);

  std::string script_path() const;
  std::string state_path() const;

  // The script for the current assignment.
  std::string RenderScript() const ABSL_LOCKS_EXCLUDED(mu_);
  // Rule numbers whose content changed (added, rewritten or deleted) in the
  // last write, ascending.
  std::vector<int> LastChangedRulesForTest() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit NetshFirewall(const NetshOptions& options) : options_(options) {}

  using Chunks = absl::btree_map<int, absl::btree_set<IpPrefix>>;

  void Place(const IpPrefix& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unplace(const IpPrefix& p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeRepack() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string RenderLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string EncodeState() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status LoadState() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes script and state, records changed rules, runs apply_command.
  absl::Status Write() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const NetshOptions options_;

  mutable absl::Mutex mu_;
  Chunks chunks_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<IpPrefix, int> where_ ABSL_GUARDED_BY(mu_);
  // Rule numbers with room for another prefix.
  absl::btree_set<int> non_full_ ABSL_GUARDED_BY(mu_);
  // Highest rule number ever written (the netsh.exe path deletes stale
  // rules by number).
  int high_water_ ABSL_GUARDED_BY(mu_) = 0;
  // Rule number -> hash, as last written.
  std::map<int, uint64_t> written_ ABSL_GUARDED_BY(mu_);
  std::vector<int> last_changed_ ABSL_GUARDED_BY(mu_);
  // A state file was loaded or a script written by this process.
  bool have_state_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rampart::agent
