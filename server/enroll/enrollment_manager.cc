#include "server/enroll/enrollment_manager.h"

#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/json_writer.h"
#include "common/status_macros.h"

namespace rampart::server {
namespace {

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

constexpr size_t kMaxReasonBytes = 256;
constexpr size_t kMaxTokenBytes = 128;

// One answer for every token failure (enrollment.proto: no oracle).
absl::Status BadToken() {
  return absl::UnauthenticatedError(
      "enrollment token is not valid (unknown, expired, already used, or "
      "issued for another agent): ask for a new one with rampartctl agents "
      "enroll");
}

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool AllIdChars(std::string_view s) {
  for (char c : s) {
    if (!IsIdChar(c)) {
      return false;
    }
  }
  return true;
}

// The audit JSON of a record: identity facts, never the token hash.
std::string RecordJson(const AgentEnrollment& e) {
  std::string out = "{\"agent_id\":";
  AppendJsonString(&out, e.agent_id);
  out += ",\"site\":";
  AppendJsonString(&out, e.site);
  out += ",\"state\":";
  AppendJsonString(&out, e.revoked      ? "revoked"
                         : e.enrolled() ? "enrolled"
                                        : "pending");
  if (!e.token_used && !e.token_sha256.empty()) {
    out += ",\"token_expires\":";
    AppendJsonString(&out, FormatRfc3339(e.token_expires));
  }
  if (e.enrolled()) {
    out += ",\"cert_serial\":";
    AppendJsonString(&out, e.cert_serial);
    out += ",\"cert_sha256\":";
    AppendJsonString(&out, e.cert_sha256);
    out += ",\"cert_not_after\":";
    AppendJsonString(&out, FormatRfc3339(e.cert_not_after));
  }
  if (e.revoked) {
    out += ",\"revoke_reason\":";
    AppendJsonString(&out, e.revoke_reason);
  }
  out += "}";
  return out;
}

}  // namespace

absl::Status ValidateAgentId(std::string_view agent_id) {
  if (agent_id.empty() || agent_id.size() > pki::kMaxIdentityBytes ||
      !AllIdChars(agent_id)) {
    return absl::InvalidArgumentError(
        "agent_id must be 1..128 bytes of [A-Za-z0-9._-]");
  }
  return absl::OkStatus();
}

EnrollmentManager::EnrollmentManager(const EnrollmentManagerOptions& options,
                                     EnrollmentStore& records, Store& audit,
                                     const pki::CertificateAuthority* ca,
                                     Clock& clock)
    : options_(options),
      records_(records),
      audit_(audit),
      ca_(ca),
      clock_(clock) {}

absl::Status EnrollmentManager::LoadRecords() {
  ASSIGN_OR_RETURN(std::vector<AgentEnrollment> all,
                   records_.ListEnrollments());
  absl::flat_hash_map<std::string, AgentEnrollment> cache;
  for (AgentEnrollment& e : all) {
    std::string id = e.agent_id;
    cache.emplace(std::move(id), std::move(e));
  }
  absl::MutexLock lock(&mu_);
  cache_ = std::move(cache);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<AgentEnrollment>> EnrollmentManager::Get(
    std::string_view agent_id) {
  if (!cache_.has_value()) {
    return records_.GetEnrollment(agent_id);
  }
  const auto it = cache_->find(std::string(agent_id));
  if (it == cache_->end()) {
    return std::optional<AgentEnrollment>();
  }
  return std::optional<AgentEnrollment>(it->second);
}

absl::Status EnrollmentManager::Put(const AgentEnrollment& e) {
  RETURN_IF_ERROR(records_.PutEnrollment(e));
  if (cache_.has_value()) {
    (*cache_)[e.agent_id] = e;
  }
  return absl::OkStatus();
}

absl::Status EnrollmentManager::Audit(
    std::string_view actor, std::string_view action, std::string_view target,
    const std::optional<AgentEnrollment>& before, const AgentEnrollment& after,
    std::string_view peer) const {
  CommitRecord record;
  record.audit.push_back(AuditRecord{
      .time = clock_.Now(),
      .actor = std::string(actor),
      .action = std::string(action),
      .target = std::string(target),
      .before = before ? RecordJson(*before) : "",
      .after = RecordJson(after),
      .peer = std::string(peer),
  });
  return audit_.Commit(record);
}

absl::StatusOr<IssuedToken> EnrollmentManager::IssueToken(
    std::string_view agent_id, std::string_view site,
    std::optional<absl::Duration> ttl, bool reenroll, std::string_view actor,
    std::string_view peer) {
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  if (site.size() > 63 || !AllIdChars(site)) {
    return absl::InvalidArgumentError(
        "site must be 0..63 bytes of [A-Za-z0-9._-]");
  }
  const absl::Duration lifetime = ttl.value_or(options_.default_token_ttl);
  if (lifetime < options_.min_token_ttl || lifetime > options_.max_token_ttl) {
    return absl::InvalidArgumentError(
        absl::StrFormat("token_ttl must be within [%s, %s]",
                        absl::FormatDuration(options_.min_token_ttl),
                        absl::FormatDuration(options_.max_token_ttl)));
  }
  if (ca_ == nullptr) {
    return absl::FailedPreconditionError(
        "enrollment is disabled on this server: set tls.ca_key_file "
        "(docs/security.md)");
  }
  ASSIGN_OR_RETURN(std::string token, pki::NewEnrollmentToken());
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::optional<AgentEnrollment> before, Get(agent_id));
  if (before && before->enrolled() && !before->revoked && !reenroll) {
    return absl::AlreadyExistsError(absl::StrFormat(
        "agent %s is already enrolled: pass reenroll (rampartctl agents "
        "enroll --reenroll) to replace its certificate",
        std::string(agent_id)));
  }
  const absl::Time now = clock_.Now();
  AgentEnrollment next;
  if (before && before->enrolled() && !before->revoked) {
    next = *before;  // keeps the current certificate until the token is used
  }
  next.agent_id = std::string(agent_id);
  next.site = std::string(site);
  next.token_sha256 = pki::HashEnrollmentToken(token);
  next.token_expires = now + lifetime;
  next.token_used = false;
  next.reenroll = reenroll;
  next.created = now;
  RETURN_IF_ERROR(Put(next));
  RETURN_IF_ERROR(Audit(actor, "agent.enroll", agent_id, before, next, peer));
  return IssuedToken{.token = std::move(token),
                     .expires_at = next.token_expires};
}

bool EnrollmentManager::AllowAttempt(std::string_view peer_view) {
  const std::string peer(peer_view);
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&rate_mu_);
  if (attempts_.size() >= options_.max_tracked_peers &&
      attempts_.find(peer) == attempts_.end()) {
    // Forget windows that have passed; if none has, forget everything
    // rather than grow (a flood of addresses is then limited per address
    // only within the bound).
    std::vector<std::string> stale;
    for (const auto& [p, times] : attempts_) {
      if (times.empty() || times.back() + options_.rate_window <= now) {
        stale.push_back(p);
      }
    }
    for (const std::string& p : stale) {
      attempts_.erase(p);
    }
    if (attempts_.size() >= options_.max_tracked_peers) {
      attempts_.clear();
    }
  }
  std::deque<absl::Time>& times = attempts_[peer];
  while (!times.empty() && times.front() + options_.rate_window <= now) {
    times.pop_front();
  }
  if (times.size() >= static_cast<size_t>(options_.rate_limit)) {
    return false;
  }
  times.push_back(now);
  return true;
}

absl::StatusOr<EnrolledCertificate> EnrollmentManager::Enroll(
    std::string_view token, std::string_view agent_id, std::string_view csr_pem,
    std::string_view peer) {
  if (!AllowAttempt(peer)) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "too many enrollment attempts from this address (at most %d per %s)",
        options_.rate_limit, absl::FormatDuration(options_.rate_window)));
  }
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  if (csr_pem.empty() || csr_pem.size() > pki::kMaxCsrPemBytes) {
    return absl::InvalidArgumentError("csr_pem must be 1 byte to 16 KiB");
  }
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return BadToken();
  }
  if (ca_ == nullptr) {
    return absl::FailedPreconditionError(
        "enrollment is disabled on this server (no tls.ca_key_file)");
  }
  const std::string presented = pki::HashEnrollmentToken(token);
  bool stored = false;  // a certificate was stored for agent_id
  absl::StatusOr<EnrolledCertificate> issued =
      [&]() -> absl::StatusOr<EnrolledCertificate> {
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(std::optional<AgentEnrollment> before, Get(agent_id));
    const absl::Time now = clock_.Now();
    // Compare first (constant time), then decide, so that every failure
    // costs the same.
    const bool hash_ok =
        before.has_value() &&
        pki::ConstantTimeEquals(presented, before->token_sha256);
    if (!hash_ok || before->token_used || before->token_sha256.empty() ||
        now >= before->token_expires) {
      return BadToken();
    }
    if (before->revoked) {
      return absl::PermissionDeniedError(
          absl::StrFormat("agent %s is revoked", std::string(agent_id)));
    }
    ASSIGN_OR_RETURN(pki::SignedCertificate cert,
                     ca_->SignCsr(csr_pem, agent_id, now, options_.cert_ttl));
    AgentEnrollment next = *before;
    next.token_used = true;
    next.cert_serial = cert.info.serial_hex;
    next.cert_sha256 = cert.info.sha256_hex;
    next.cert_not_after = cert.info.not_after;
    next.enrolled_at = now;
    RETURN_IF_ERROR(Put(next));
    stored = true;
    RETURN_IF_ERROR(Audit(std::string("agent:") + std::string(agent_id),
                          "agent.enrolled", agent_id, before, next, peer));
    return EnrolledCertificate{
        .certificate_chain_pem = std::move(cert.certificate_pem),
        .ca_bundle_pem = ca_->ca_pem(),
        .not_after = cert.info.not_after,
    };
  }();
  if (stored) {
    // The certificate it replaced (re-enrollment) is refused from now on:
    // end a stream still using it. Outside mu_: the listener authenticates.
    absl::ReaderMutexLock lock(&listener_mu_);
    if (listener_ != nullptr) {
      listener_(std::string(agent_id));
    }
  }
  return issued;
}

void EnrollmentManager::SetCertificateListener(
    std::function<void(const std::string& agent_id)> listener) {
  absl::MutexLock lock(&listener_mu_);
  listener_ = std::move(listener);
}

absl::Status EnrollmentManager::Authenticate(
    const std::optional<PeerCertificate>& cert, std::string_view agent_id) {
  if (!cert.has_value()) {
    return absl::UnauthenticatedError(
        "a client certificate is required on the agent stream: enroll the "
        "agent (rampart-agent enroll; docs/security.md)");
  }
  if (clock_.Now() >= cert->not_after) {
    return absl::UnauthenticatedError(absl::StrFormat(
        "the client certificate of agent %s expired at %s: re-enroll the "
        "agent (rampartctl agents enroll --reenroll)",
        std::string(agent_id), FormatRfc3339(cert->not_after)));
  }
  if (cert->common_name != agent_id) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "the client certificate names agent \"%s\" but hello.agent_id is "
        "\"%s\"",
        cert->common_name.substr(0, pki::kMaxIdentityBytes),
        std::string(agent_id)));
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::optional<AgentEnrollment> record, Get(agent_id));
  if (!record.has_value() || !record->enrolled()) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "agent %s is not enrolled on this server", std::string(agent_id)));
  }
  if (record->revoked) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "agent %s was revoked at %s: %s", std::string(agent_id),
        FormatRfc3339(record->revoked_at), record->revoke_reason));
  }
  if (!pki::ConstantTimeEquals(cert->sha256_hex, record->cert_sha256)) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "the client certificate is not the one issued to agent %s (replaced "
        "by a re-enrollment?)",
        std::string(agent_id)));
  }
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> EnrollmentManager::Revoke(std::string_view agent_id,
                                                     std::string_view reason,
                                                     std::string_view actor,
                                                     std::string_view peer) {
  RETURN_IF_ERROR(ValidateAgentId(agent_id));
  if (reason.empty() || reason.size() > kMaxReasonBytes) {
    return absl::InvalidArgumentError("reason must be 1..256 bytes");
  }
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::optional<AgentEnrollment> before, Get(agent_id));
  if (!before.has_value()) {
    return absl::NotFoundError(
        absl::StrFormat("agent %s has no enrollment", std::string(agent_id)));
  }
  AgentEnrollment next = *before;
  const absl::Time now = clock_.Now();
  next.revoked = true;
  next.revoked_at = now;
  next.revoke_reason = std::string(reason);
  RETURN_IF_ERROR(Put(next));
  RETURN_IF_ERROR(Audit(actor, "agent.revoke", agent_id, before, next, peer));
  return now;
}

}  // namespace rampart::server
