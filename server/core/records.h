#pragma once

// Records the correlator produces besides bans: accounts under attack,
// compromise alerts, and the audit log of administrative actions.
// Domain types: no protobuf, no SQL. Thread-safety: value types.

#include <cstdint>
#include <string>
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
  friend bool operator==(const AuditRecord&, const AuditRecord&) = default;
};

}  // namespace rampart::server
