#pragma once

// EnrollmentManager: agent identity for mutual TLS (docs/security.md,
// "Transport and agent identity"). Domain logic only: no gRPC, no protos;
// the OpenSSL work is in common/pki.
//
//   IssueToken   (AdminService.EnrollAgent)  one-time token, only its SHA-256
//                                            stored, audited
//   Enroll       (EnrollmentService.Enroll)  token + CSR -> certificate
//   Authenticate (AgentService Hello)        client certificate -> agent
//   Revoke       (AdminService.RevokeAgent)  refuse the agent from now on
//
// Enroll answers UNAUTHENTICATED with one message for every token failure
// (unknown, expired, used, other agent), so the answer is no oracle; the
// token hash is compared in constant time; attempts are limited per peer
// address (rate_limit per rate_window).
//
// Thread-safety: thread-safe; enrollment state changes are serialised by one
// mutex (one server process owns the records). Lifetime: the stores, the CA
// and the clock must outlive the manager.

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pki/pki.h"
#include "server/core/enrollment_store.h"
#include "server/core/store.h"

namespace rampart::server {

struct EnrollmentManagerOptions {
  // Lifetime of issued certificates (tls.cert_ttl).
  absl::Duration cert_ttl = absl::Hours(24 * 90);
  // Token lifetime bounds and default (admin.proto EnrollAgentRequest).
  absl::Duration min_token_ttl = absl::Minutes(1);
  absl::Duration max_token_ttl = absl::Hours(24 * 7);
  absl::Duration default_token_ttl = absl::Hours(24);
  // Enroll attempts per peer address per rate_window (enrollment.proto).
  int rate_limit = 10;
  absl::Duration rate_window = absl::Minutes(1);
  // Most peer addresses tracked by the rate limiter; beyond it the oldest
  // windows are forgotten.
  size_t max_tracked_peers = 10'000;
};

// What a client certificate says, as the TLS layer verified it.
struct PeerCertificate {
  std::string common_name;
  std::string sha256_hex;
  // The end of its validity; Authenticate refuses it from then on (by the
  // injected clock) and AgentService ends a live stream at that time.
  absl::Time not_after = absl::InfiniteFuture();
};

struct IssuedToken {
  std::string token;  // shown once; never stored
  absl::Time expires_at;
};

struct EnrolledCertificate {
  std::string certificate_chain_pem;
  std::string ca_bundle_pem;
  absl::Time not_after;
};

// Agent ids: 1..128 bytes of [A-Za-z0-9._-] (Hello.agent_id syntax).
absl::Status ValidateAgentId(std::string_view agent_id);

class EnrollmentManager {
 public:
  // `ca` may be null: then IssueToken and Enroll answer FAILED_PRECONDITION
  // (enrollment disabled: no tls.ca_key_file) and Authenticate still works.
  EnrollmentManager(const EnrollmentManagerOptions& options,
                    EnrollmentStore& records, Store& audit,
                    const pki::CertificateAuthority* ca, Clock& clock);

  // Reads every record into memory, so that Authenticate (called from the
  // agent stream's gRPC reaction) never waits for the store. Call once
  // before serving; without it Authenticate reads the store. Records change
  // only through this manager (one server process owns them).
  absl::Status LoadRecords() ABSL_LOCKS_EXCLUDED(mu_);

  EnrollmentManager(const EnrollmentManager&) = delete;
  EnrollmentManager& operator=(const EnrollmentManager&) = delete;

  // A new one-time token for `agent_id` at `site` (0..63 bytes of
  // [A-Za-z0-9._-]); `ttl` nullopt = default, else within the bounds. An
  // enrolled, non-revoked agent needs `reenroll` (its certificate is
  // replaced when the token is used). Replaces any pending token. Audited
  // as "agent.enroll" by `actor`. Errors: INVALID_ARGUMENT,
  // ALREADY_EXISTS (enrolled, no reenroll), FAILED_PRECONDITION (disabled),
  // store errors.
  absl::StatusOr<IssuedToken> IssueToken(std::string_view agent_id,
                                         std::string_view site,
                                         std::optional<absl::Duration> ttl,
                                         bool reenroll, std::string_view actor,
                                         std::string_view peer = {})
      ABSL_LOCKS_EXCLUDED(mu_);

  // Exchanges a token and CSR for a certificate (enrollment.proto).
  // `peer` keys the rate limit (an address). The token is consumed only when
  // the certificate is issued and stored, so retrying after an error other
  // than UNAUTHENTICATED is safe. Audited as "agent.enrolled".
  absl::StatusOr<EnrolledCertificate> Enroll(std::string_view token,
                                             std::string_view agent_id,
                                             std::string_view csr_pem,
                                             std::string_view peer)
      ABSL_LOCKS_EXCLUDED(mu_);

  // The agent listener's check for a Hello claiming `agent_id`:
  // UNAUTHENTICATED without a client certificate or once the certificate's
  // not_after has passed (by the injected clock); PERMISSION_DENIED when the
  // certificate's CN is not agent_id, the agent has no enrollment, is
  // revoked, or the certificate is not the one issued to it.
  absl::Status Authenticate(const std::optional<PeerCertificate>& cert,
                            std::string_view agent_id) ABSL_LOCKS_EXCLUDED(mu_);

  // `listener(agent_id)` runs after every Enroll that stored a certificate
  // for agent_id, so that a stream still using the certificate it replaced
  // can be ended (AgentService). It runs on the enrolling thread, after the
  // record is stored and without mu_ held; it must not block. Null removes
  // it; when this returns, no call of the previous listener is running.
  void SetCertificateListener(
      std::function<void(const std::string& agent_id)> listener)
      ABSL_LOCKS_EXCLUDED(listener_mu_);

  // Marks the agent revoked (reason 1..256 bytes). NOT_FOUND if it has no
  // record. Returns the revocation time. Audited as "agent.revoke".
  absl::StatusOr<absl::Time> Revoke(std::string_view agent_id,
                                    std::string_view reason,
                                    std::string_view actor,
                                    std::string_view peer = {})
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // `peer`: the audit record's peer column (the caller's connection).
  absl::Status Audit(std::string_view actor, std::string_view action,
                     std::string_view target,
                     const std::optional<AgentEnrollment>& before,
                     const AgentEnrollment& after, std::string_view peer) const;
  bool AllowAttempt(std::string_view peer) ABSL_LOCKS_EXCLUDED(rate_mu_);
  absl::StatusOr<std::optional<AgentEnrollment>> Get(std::string_view agent_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Put(const AgentEnrollment& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const EnrollmentManagerOptions options_;
  EnrollmentStore& records_;
  Store& audit_;
  const pki::CertificateAuthority* const ca_;
  Clock& clock_;

  absl::Mutex mu_;  // serialises read-modify-write of records
  // Every record by agent id, once LoadRecords() ran (write-through).
  std::optional<absl::flat_hash_map<std::string, AgentEnrollment>> cache_
      ABSL_GUARDED_BY(mu_);
  // Held (shared) while the listener runs, exclusively to replace it.
  absl::Mutex listener_mu_;
  std::function<void(const std::string&)> listener_
      ABSL_GUARDED_BY(listener_mu_);
  absl::Mutex rate_mu_;
  absl::flat_hash_map<std::string, std::deque<absl::Time>> attempts_
      ABSL_GUARDED_BY(rate_mu_);
};

}  // namespace rampart::server
