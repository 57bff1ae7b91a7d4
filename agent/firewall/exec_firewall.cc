#include "agent/firewall/exec_firewall.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "agent/firewall/subprocess.h"

namespace rampart::agent {
namespace {

std::string Cidr(const IpPrefix& p) {
  std::string s;
  p.address().AppendTo(&s);
  s += "/" + std::to_string(p.length());
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExecFirewall>> ExecFirewall::Create(
    const ExecOptions& options) {
  if (options.add_command.empty() || options.remove_command.empty()) {
    return absl::InvalidArgumentError(
        "the exec backend needs an add and a remove command");
  }
  if (options.max_batch == 0 || options.max_batch > 100000) {
    return absl::InvalidArgumentError("exec max_batch must be 1..100000");
  }
  return std::unique_ptr<ExecFirewall>(new ExecFirewall(options));
}

std::string ExecFirewall::FormatLine(const FirewallEntry& e) {
  return absl::StrFormat(
      "%s %d\n", Cidr(e.prefix),
      e.expires.has_value() ? absl::ToUnixSeconds(*e.expires) : 0);
}

absl::Status ExecFirewall::RunBatches(std::string_view action,
                                      const std::vector<std::string>& command,
                                      const std::vector<FirewallEntry>& entries,
                                      bool add) {
  for (size_t i = 0; i < entries.size(); i += options_.max_batch) {
    const size_t end = std::min(entries.size(), i + options_.max_batch);
    std::vector<std::string> argv = command;
    std::string input;
    for (size_t j = i; j < end; ++j) {
      if (options_.pass == ExecOptions::Pass::kArgs) {
        argv.push_back(Cidr(entries[j].prefix));
      } else {
        input += FormatLine(entries[j]);
      }
    }
    absl::Status s = RunCommandChecked(
        argv, {.input = input,
               .timeout = options_.timeout,
               .env = {absl::StrFormat("RAMPART_ACTION=%s", action),
                       absl::StrFormat("RAMPART_COUNT=%d", end - i)}});
    if (!s.ok()) {
      return s;
    }
    for (size_t j = i; j < end; ++j) {
      if (add) {
        known_[entries[j].prefix] = entries[j].expires;
      } else {
        known_.erase(entries[j].prefix);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ExecFirewall::Flush() {
  if (absl::Status s = RunCommandChecked(
          options_.flush_command,
          {.timeout = options_.timeout,
           .env = {"RAMPART_ACTION=flush", "RAMPART_COUNT=0"}});
      !s.ok()) {
    return s;
  }
  known_.clear();
  return absl::OkStatus();
}

absl::Status ExecFirewall::ApplySnapshot(
    const std::vector<FirewallEntry>& entries) {
  absl::MutexLock lock(&mu_);
  if (!options_.flush_command.empty()) {
    if (absl::Status s = Flush(); !s.ok()) {
      return s;
    }
    return RunBatches("add", options_.add_command, entries, true);
  }
  absl::btree_map<IpPrefix, std::optional<absl::Time>> want;
  for (const FirewallEntry& e : entries) {
    want[e.prefix] = e.expires;
  }
  std::vector<FirewallEntry> removes, adds;
  for (const auto& [p, expires] : known_) {
    auto it = want.find(p);
    if (it == want.end() || it->second != expires) {
      removes.push_back({p, expires});
    }
  }
  for (const auto& [p, expires] : want) {
    auto it = known_.find(p);
    if (it == known_.end() || it->second != expires) {
      adds.push_back({p, expires});
    }
  }
  if (absl::Status s =
          RunBatches("remove", options_.remove_command, removes, false);
      !s.ok()) {
    return s;
  }
  return RunBatches("add", options_.add_command, adds, true);
}

absl::Status ExecFirewall::ApplyDelta(const std::vector<FirewallEntry>& adds,
                                      const std::vector<IpPrefix>& removes) {
  absl::MutexLock lock(&mu_);
  std::vector<FirewallEntry> rem;
  rem.reserve(removes.size());
  for (const IpPrefix& p : removes) {
    auto it = known_.find(p);
    rem.push_back({p, it == known_.end() ? std::nullopt : it->second});
  }
  if (absl::Status s =
          RunBatches("remove", options_.remove_command, rem, false);
      !s.ok()) {
    return s;
  }
  return RunBatches("add", options_.add_command, adds, true);
}

absl::StatusOr<std::vector<FirewallEntry>> ExecFirewall::ListEnforced() {
  absl::MutexLock lock(&mu_);
  std::vector<FirewallEntry> out;
  for (const auto& [p, expires] : known_) {
    out.push_back({p, expires});
  }
  return out;
}

absl::Status ExecFirewall::RemoveAll() {
  absl::MutexLock lock(&mu_);
  if (!options_.flush_command.empty()) {
    return Flush();
  }
  std::vector<FirewallEntry> all;
  for (const auto& [p, expires] : known_) {
    all.push_back({p, expires});
  }
  return RunBatches("remove", options_.remove_command, all, false);
}

}  // namespace rampart::agent
