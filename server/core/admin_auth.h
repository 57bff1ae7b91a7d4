#pragma once

// AdminAuthenticator: who is calling the admin API, and may they do this?
// (docs/security.md "Admin authorization").
//
// Callers present a bearer token ("authorization: Bearer <secret>" gRPC
// metadata). The store keeps only the SHA-256 of each secret (ApiToken), so
// a lost database does not reveal usable tokens. Authenticate() maps the
// header to a Principal: actor "token:<name>" and its role. Authorize()
// checks the role a method needs. Both return the canonical codes the admin
// edge passes through: kUnauthenticated (missing, malformed, unknown or
// revoked token), kPermissionDenied (role too weak), kUnavailable (store
// down and the token not seen recently).
//
// Revocation takes effect on the next call, also when another process (the
// `rampart-server token revoke` command) revoked the token in the store:
// every call looks the hash up in the store; nothing is accepted from a
// cache while the store answers. While the store is unreachable, a token
// verified within Options::offline_grace is still accepted (so `rampartctl
// status` can show a store outage); a token never seen is refused with
// kUnavailable. So a revocation the server cannot see yet (store down) is
// in force at most offline_grace after the store went away.
//
// Failed authentications are throttled before they cost a store look-up
// (issue 16 item 8a): a token not verified by this process before (unknown,
// revoked, or new) needs a look-up token from its source address's bucket
// and from a global bucket; without one the call is refused with
// kResourceExhausted and nothing is looked up. Tokens verified before
// (up to 1024 distinct ones) skip both buckets, so an operator
// keeps working while someone floods bad tokens, even from the same
// address. Missing or malformed headers never reach the store. Refusals
// are counted (stats(), exported as metrics) and ShouldLogRefusal() limits
// how many of them the caller logs.
//
// Token management (create, list, revoke) is used by `rampart-server token`
// and the bootstrap-token start-up path; it works on the store directly.
//
// Thread-safety: thread-safe (the cache and log budget share one mutex, the
// buckets have their own, counters are atomic; Store is thread-safe).

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/core/agent_rate_limiter.h"
#include "server/core/records.h"
#include "server/core/store.h"

namespace rampart::server {

// An authenticated admin caller.
struct Principal {
  // Recorded as the audit actor, e.g. "token:alice".
  std::string actor;
  AdminRole role = AdminRole::kReadOnly;
};

// A token as created: the secret is shown once and never stored.
struct CreatedToken {
  ApiToken token;
  std::string secret;
};

class AdminAuthenticator {
 public:
  struct Options {
    // While the store is unavailable, tokens verified this recently are
    // still accepted. Default 5 minutes; zero disables.
    absl::Duration offline_grace = absl::Minutes(5);
    // Look-ups of not-yet-verified tokens per source address: sustained
    // rate and burst. Default 1 per second, burst 20.
    double source_lookups_per_second = 1;
    double source_lookup_burst = 20;
    // The same over all sources together. Default 20 per second, burst 200.
    double global_lookups_per_second = 20;
    double global_lookup_burst = 200;
    // Most source addresses tracked; when all are busy a new source is
    // throttled. Default 10000.
    size_t max_sources = 10'000;
    // Refusals the caller may log per log_interval; the rest are counted
    // and reported with the next logged one. Default 20 per minute.
    int max_logged_refusals = 20;
    absl::Duration log_interval = absl::Minutes(1);
  };

  // Monotonic counters since start (exported as metrics).
  struct Stats {
    uint64_t refused_malformed = 0;  // missing, too long, not Bearer, bad form
    uint64_t refused_unknown = 0;    // looked up: unknown or revoked
    uint64_t refused_throttled = 0;  // refused before the look-up
    uint64_t store_lookups = 0;      // FindApiToken calls
  };

  // Whether the caller should log a refusal now, and how many refusals were
  // not logged since the last one that was.
  struct LogDecision {
    bool log = false;
    uint64_t suppressed = 0;
  };

  // The references must outlive the authenticator.
  AdminAuthenticator(const Options& options, Store& store, Clock& clock);

  // `authorization` is the metadata value, nullopt if absent. Accepts
  // "Bearer <secret>" (scheme case-insensitive, one space). `source` keys
  // the per-source throttle (the caller's IP address; "" shares one bucket).
  // kResourceExhausted when the source or the server has used up its
  // look-ups of unverified tokens (see the class comment).
  absl::StatusOr<Principal> Authenticate(
      std::optional<std::string_view> authorization,
      std::string_view source = "");

  // Call once per refusal the caller would log; at most
  // Options::max_logged_refusals per Options::log_interval answer log=true.
  LogDecision ShouldLogRefusal();

  Stats stats() const;

  // OK if `who` has at least `needed`; else kPermissionDenied naming the
  // actor, its role, `what` and the role needed.
  static absl::Status Authorize(const Principal& who, AdminRole needed,
                                std::string_view what);

  // --- Token management (store-level; no role check) ----------------------
  // Creates a token `name` with `role` and a fresh 32-byte secret.
  // kInvalidArgument for a bad name, kAlreadyExists if an active token of
  // that name exists.
  absl::StatusOr<CreatedToken> CreateToken(std::string_view name,
                                           AdminRole role);
  // Ensures `secret` is an active token named `name` with `role` (used for
  // admin.bootstrap_token_file): if the secret's hash is already stored,
  // nothing changes; otherwise an active token `name` is revoked and the
  // secret stored under it. kInvalidArgument for a secret shorter than 32
  // characters or with characters outside [A-Za-z0-9._~+/=-].
  absl::Status EnsureToken(std::string_view name, AdminRole role,
                           std::string_view secret);
  absl::StatusOr<std::vector<ApiToken>> ListTokens();
  absl::Status RevokeToken(std::string_view name);

  // kInvalidArgument unless `name` is 1-64 bytes of [A-Za-z0-9._-].
  static absl::Status ValidateTokenName(std::string_view name);
  // The stored form of a secret: lower-case hex SHA-256.
  static std::string HashSecret(std::string_view secret);

 private:
  // Takes one look-up token for `source` (and the global bucket); false if
  // either is empty.
  bool TryLookup(std::string_view source, absl::Time now);
  absl::StatusOr<Principal> Refuse(absl::Status status,
                                   std::atomic<uint64_t>& counter);

  const Options options_;
  Store& store_;
  Clock& clock_;
  AgentRateLimiter source_lookups_;
  AgentRateLimiter global_lookups_;
  std::atomic<uint64_t> refused_malformed_{0};
  std::atomic<uint64_t> refused_unknown_{0};
  std::atomic<uint64_t> refused_throttled_{0};
  std::atomic<uint64_t> store_lookups_{0};
  mutable absl::Mutex mu_;
  // hash -> (principal, when last verified against the store)
  absl::flat_hash_map<std::string, std::pair<Principal, absl::Time>> verified_
      ABSL_GUARDED_BY(mu_);
  // Refusal log budget.
  absl::Time log_window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int logged_in_window_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t suppressed_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rampart::server
