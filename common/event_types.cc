#include "common/event_types.h"

#include <array>
#include <utility>

namespace rampart {
namespace {

constexpr std::array<std::pair<EventKind, std::string_view>, 7> kKinds = {{
    {EventKind::kAuthFailure, "auth_failure"},
    {EventKind::kLockout, "lockout"},
    {EventKind::kPolicyReject, "policy_reject"},
    {EventKind::kConnect, "connect"},
    {EventKind::kDisconnect, "disconnect"},
    {EventKind::kTlsFailure, "tls_failure"},
    {EventKind::kAuthSuccess, "auth_success"},
}};

constexpr std::array<std::pair<Protocol, std::string_view>, 5> kProtocols = {{
    {Protocol::kSmtp, "smtp"},
    {Protocol::kImap, "imap"},
    {Protocol::kPop3, "pop3"},
    {Protocol::kLdap, "ldap"},
    {Protocol::kHttp, "http"},
}};

}  // namespace

std::string_view EventKindName(EventKind kind) {
  for (const auto& [k, name] : kKinds) {
    if (k == kind) {
      return name;
    }
  }
  return "unknown";
}

std::optional<EventKind> ParseEventKind(std::string_view name) {
  for (const auto& [k, n] : kKinds) {
    if (n == name) {
      return k;
    }
  }
  return std::nullopt;
}

std::string_view ProtocolName(Protocol protocol) {
  for (const auto& [p, name] : kProtocols) {
    if (p == protocol) {
      return name;
    }
  }
  return "";
}

std::optional<Protocol> ParseProtocol(std::string_view name) {
  for (const auto& [p, n] : kProtocols) {
    if (n == name) {
      return p;
    }
  }
  return std::nullopt;
}

Protocol ProtocolForPort(int port) {
  switch (port) {
    case 25:
    case 465:
    case 587:
      return Protocol::kSmtp;
    case 143:
    case 993:
      return Protocol::kImap;
    case 110:
    case 995:
      return Protocol::kPop3;
    case 389:
    case 636:
      return Protocol::kLdap;
    case 80:
    case 443:
      return Protocol::kHttp;
    default:
      return Protocol::kUnknown;
  }
}

}  // namespace rampart
