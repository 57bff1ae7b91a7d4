#pragma once

// Vocabulary shared by agent, server and CLI: what kind of thing a log line
// (or an agent event) says happened, and over which protocol.

#include <cstdint>
#include <optional>
#include <string_view>

namespace rampart {

// EventKind names are part of the CLI's JSON output and the wire contract;
// never renumber or rename.
enum class EventKind : uint8_t {
  kAuthFailure = 1,   // wrong password (families A and B)
  kLockout = 2,       // internet password lockout (family A-lock)
  kPolicyReject = 3,  // SMTP connection rejected for policy reasons (C)
  kConnect = 4,       // session opened (D)
  kDisconnect = 5,    // session closed (D)
  kTlsFailure = 6,    // TLS handshake failure (E)
  kAuthSuccess = 7,   // successful login (F, opt-in)
};

enum class Protocol : uint8_t {
  kUnknown = 0,
  kSmtp = 1,
  kImap = 2,
  kPop3 = 3,
  kLdap = 4,
  kHttp = 5,
};

// "auth_failure", "lockout", "policy_reject", "connect", "disconnect",
// "tls_failure", "auth_success".
std::string_view EventKindName(EventKind kind);
std::optional<EventKind> ParseEventKind(std::string_view name);

// "smtp", "imap", "pop3", "ldap", "http"; "" for kUnknown.
std::string_view ProtocolName(Protocol protocol);
std::optional<Protocol> ParseProtocol(std::string_view name);

// The protocol normally served on a TCP port (25/465/587 smtp, 143/993 imap,
// 110/995 pop3, 389/636 ldap, 80/443 http), else kUnknown.
Protocol ProtocolForPort(int port);

}  // namespace rampart
