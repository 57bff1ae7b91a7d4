#include "agent/firewall/firewall_factory.h"

#include "absl/strings/str_format.h"
#include "agent/firewall/dry_run_firewall.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

template <typename T>
absl::StatusOr<std::unique_ptr<Firewall>> Upcast(
    absl::StatusOr<std::unique_ptr<T>> r) {
  if (!r.ok()) {
    return r.status();
  }
  return std::unique_ptr<Firewall>(std::move(*r));
}

}  // namespace

std::vector<std::string> FirewallBackendNames() {
  return {"nftables", "ipset", "windows-netsh", "exec", "dry-run"};
}

absl::StatusOr<std::unique_ptr<Firewall>> CreateFirewall(
    const FirewallOptions& options, Clock& clock) {
  const std::string& name = options.backend;
  if (name == "nftables") {
    return Upcast(NftablesFirewall::Create(options.nftables, clock));
  }
  if (name == "ipset") {
    return Upcast(IpsetFirewall::Create(options.ipset, clock));
  }
  if (name == "windows-netsh") {
    return Upcast(NetshFirewall::Create(options.netsh));
  }
  if (name == "exec") {
    return Upcast(ExecFirewall::Create(options.exec));
  }
  if (name == "dry-run") {
    return std::unique_ptr<Firewall>(new DryRunFirewall(clock));
  }
  return absl::InvalidArgumentError(absl::StrFormat(
      "unknown firewall backend \"%s\" (expected nftables, ipset, "
      "windows-netsh, exec or dry-run)",
      Abbreviate(name)));
}

}  // namespace rampart::agent
