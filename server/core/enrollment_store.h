#pragma once

// EnrollmentStore: the agent identity records behind mutual TLS
// (docs/security.md, "Transport and agent identity"). Implemented by
// InMemoryStore, SqliteStore and PgStore next to Store; its own interface
// because only the enrollment service and the agent listener's identity check
// use it. One record per agent id: the pending one-time token (only its
// SHA-256 is kept), then the certificate it was exchanged for, then any
// revocation.
//
// Thread-safety: implementations are thread-safe. Times are stored at
// microsecond resolution (as Store).

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::server {

struct AgentEnrollment {
  std::string agent_id;
  std::string site;
  // Lower-case hex SHA-256 of the one-time token ("" if none was issued).
  std::string token_sha256;
  absl::Time token_expires = absl::UnixEpoch();
  // Set when the token is exchanged; a used token never works again.
  bool token_used = false;
  // The token may replace an existing certificate (EnrollAgent reenroll).
  bool reenroll = false;
  // When the token was issued.
  absl::Time created = absl::UnixEpoch();
  // The certificate issued ("" until enrolled): serial (upper-case hex) and
  // SHA-256 over its DER (lower-case hex). The agent listener accepts
  // exactly this certificate for agent_id.
  std::string cert_serial;
  std::string cert_sha256;
  absl::Time cert_not_after = absl::UnixEpoch();
  absl::Time enrolled_at = absl::UnixEpoch();
  // Revoked by RevokeAgent: every certificate of agent_id is refused.
  bool revoked = false;
  absl::Time revoked_at = absl::UnixEpoch();
  std::string revoke_reason;

  bool enrolled() const { return !cert_sha256.empty(); }

  friend bool operator==(const AgentEnrollment&,
                         const AgentEnrollment&) = default;
};

// An address that protects an agent from bans (server/core/
// protected_addresses.h): the authenticated peer address of its latest
// stream, or one an admin approved (`rampartctl agents protect`). Claimed
// but unproven Hello.host_addresses are never stored: they protect nothing.
struct ProtectedAgentAddress {
  enum class Source { kPeer, kApproved };  // stored as "peer" / "approved"
  std::string agent_id;
  std::string address;  // canonical IP text
  Source source = Source::kPeer;
  absl::Time since = absl::UnixEpoch();
  std::string actor;  // who approved it ("" for kPeer)

  friend bool operator==(const ProtectedAgentAddress&,
                         const ProtectedAgentAddress&) = default;
};

// The checks ReplaceProtectedAddresses makes (one home for the three
// stores): kInvalidArgument as documented there.
inline absl::Status CheckProtectedRows(
    std::string_view agent_id, const std::vector<ProtectedAgentAddress>& rows) {
  if (agent_id.empty()) {
    return absl::InvalidArgumentError("protected addresses without agent id");
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].agent_id != agent_id || rows[i].address.empty()) {
      return absl::InvalidArgumentError(
          "protected address row " + std::to_string(i) + " is not of agent " +
          std::string(agent_id) + " or has no address");
    }
    for (size_t j = 0; j < i; ++j) {
      if (rows[j].address == rows[i].address &&
          rows[j].source == rows[i].source) {
        return absl::InvalidArgumentError("duplicate protected address " +
                                          rows[i].address);
      }
    }
  }
  return absl::OkStatus();
}

class EnrollmentStore {
 public:
  virtual ~EnrollmentStore() = default;

  // The record for `agent_id`, or nullopt.
  virtual absl::StatusOr<std::optional<AgentEnrollment>> GetEnrollment(
      std::string_view agent_id) = 0;
  // Inserts or replaces the record for e.agent_id (non-empty).
  // kInvalidArgument for an empty agent_id.
  virtual absl::Status PutEnrollment(const AgentEnrollment& e) = 0;
  // Every record, by agent_id (bytewise).
  virtual absl::StatusOr<std::vector<AgentEnrollment>> ListEnrollments() = 0;

  // Every protected agent address, by (agent_id, address, source) (bytewise;
  // kPeer before kApproved).
  virtual absl::StatusOr<std::vector<ProtectedAgentAddress>>
  ListProtectedAddresses() = 0;
  // Replaces every row of `agent_id` by `rows` atomically (empty: deletes
  // them). kInvalidArgument for an empty agent_id, a row of another agent or
  // a duplicate (address, source).
  virtual absl::Status ReplaceProtectedAddresses(
      std::string_view agent_id,
      const std::vector<ProtectedAgentAddress>& rows) = 0;
};

}  // namespace rampart::server
