#include "agent/firewall/firewall.h"

#include "absl/strings/str_format.h"

namespace rampart::agent {

absl::Status PortScope::Validate() const {
  if (all_ports) {
    return absl::OkStatus();
  }
  if (tcp_ports.empty() || tcp_ports.size() > 64) {
    return absl::InvalidArgumentError(
        "a port scope needs 1..64 TCP ports (or all ports)");
  }
  for (uint16_t p : tcp_ports) {
    if (p == 0) {
      return absl::InvalidArgumentError("port 0 in the port scope");
    }
  }
  return absl::OkStatus();
}

}  // namespace rampart::agent
