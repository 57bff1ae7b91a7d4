#pragma once

// Records the correlator produces besides bans: accounts under attack,
// compromise alerts, and the audit log of administrative actions.
// Domain types: no protobuf, no SQL. Thread-safety: value types.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "common/event_types.h"
#include "common/ip_address.h"

namespace rampart::server {

// "Account under attack": many addresses and/or servers failing for one user
// within the account window. Rampart never locks the account; this is
// evidence for the administrator.
struct AccountAttack {
  // Normalised user name (ASCII lower case, surrounding blanks removed).
  std::string user;
  absl::Time first_seen = absl::UnixEpoch();
  absl::Time last_seen = absl::UnixEpoch();
  int64_t failures = 0;
  int distinct_ips = 0;
  int distinct_servers = 0;
  // Evidence: up to 16 addresses and the servers seen, canonical text.
  std::vector<std::string> sample_ips;
  std::vector<std::string> servers;
  friend bool operator==(const AccountAttack&, const AccountAttack&) = default;
};

// "Success after failures": a successful login for `user` from an address or
// prefix with recent failures, or while the account is under attack. The
// seed of every SMTP relay-abuse incident.
struct CompromiseAlert {
  uint64_t id = 0;
  absl::Time time = absl::UnixEpoch();
  std::string user;
  IpAddress ip;
  std::string agent_id;
  Protocol protocol = Protocol::kUnknown;
  // Evidence at the time of the success.
  double ip_score = 0;
  int64_t recent_failures = 0;  // failures from ip (or its prefix) in lookback
  bool account_under_attack = false;
  std::string evidence;  // human-readable summary
  friend bool operator==(const CompromiseAlert&,
                         const CompromiseAlert&) = default;
};

// One administrative action (every mutating admin call).
struct AuditRecord {
  uint64_t id = 0;  // assigned by the store
  absl::Time time = absl::UnixEpoch();
  std::string actor;
  std::string action;  // e.g. "ban.add", "ban.remove", "allow.add"
  std::string target;  // e.g. "203.0.113.0/24"
  std::string before;  // JSON, "" if nothing before
  std::string after;   // JSON, "" if nothing after
  // Peer address of the admin connection ("" for the correlator, config).
  std::string peer;
  friend bool operator==(const AuditRecord&, const AuditRecord&) = default;
};

// Admin API roles, weakest first (docs/security.md "Admin authorization"):
// read-only lists and shows; operator also bans/unbans (within the prefix
// limits), allowlists and imports; admin also bans broad prefixes, enrolls
// and revokes agents and manages tokens.
enum class AdminRole : uint8_t { kReadOnly = 1, kOperator = 2, kAdmin = 3 };

// "read-only", "operator", "admin".
inline std::string_view RoleName(AdminRole role) {
  switch (role) {
    case AdminRole::kReadOnly:
      return "read-only";
    case AdminRole::kOperator:
      return "operator";
    case AdminRole::kAdmin:
      return "admin";
  }
  return "unknown";
}

// Inverse of RoleName; nullopt for anything else.
inline std::optional<AdminRole> ParseRole(std::string_view text) {
  for (AdminRole r :
       {AdminRole::kReadOnly, AdminRole::kOperator, AdminRole::kAdmin}) {
    if (text == RoleName(r)) {
      return r;
    }
  }
  return std::nullopt;
}

// A bearer token for the admin API. Only the SHA-256 of the secret is kept;
// the secret is shown once, when the token is created.
struct ApiToken {
  // Unique among tokens that are not revoked; [A-Za-z0-9._-], 1-64 bytes.
  std::string name;
  AdminRole role = AdminRole::kReadOnly;
  // Lower-case hex SHA-256 of the secret (64 characters).
  std::string hash;
  absl::Time created = absl::UnixEpoch();
  // Set once revoked; a revoked token never authenticates again.
  std::optional<absl::Time> revoked;
  friend bool operator==(const ApiToken&, const ApiToken&) = default;
};

}  // namespace rampart::server
