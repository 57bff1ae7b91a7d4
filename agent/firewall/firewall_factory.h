#pragma once

// CreateFirewall: the backend named in the agent's configuration.
//
// Thread-safety: CreateFirewall is thread-safe; see each backend.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/firewall/exec_firewall.h"
#include "agent/firewall/firewall.h"
#include "agent/firewall/ipset_firewall.h"
#include "agent/firewall/netsh_firewall.h"
#include "agent/firewall/nftables_firewall.h"
#include "common/clock.h"

namespace rampart::agent {

struct FirewallOptions {
  // "nftables" (default), "ipset", "windows-netsh", "exec" or "dry-run".
  std::string backend = "nftables";
  // Options of each backend; only the chosen one is read.
  NftablesOptions nftables;
  IpsetOptions ipset;
  NetshOptions netsh;
  ExecOptions exec;
};

// The backend names CreateFirewall accepts.
std::vector<std::string> FirewallBackendNames();

// InvalidArgument for an unknown name (the message lists the valid ones) or
// invalid backend options; other errors from the backend's Create. Nothing
// is installed until Firewall::Install(). `clock` must outlive the result.
absl::StatusOr<std::unique_ptr<Firewall>> CreateFirewall(
    const FirewallOptions& options, Clock& clock);

}  // namespace rampart::agent
