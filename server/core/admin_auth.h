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
// Revocation takes effect on the next call: every call looks the hash up in
// the store. While the store is unreachable, a token verified within
// Options::offline_grace is still accepted (so `rampartctl status` can show
// a store outage); a token never seen is refused with kUnavailable.
//
// Token management (create, list, revoke) is used by `rampart-server token`
// and the bootstrap-token start-up path; it works on the store directly.
//
// Thread-safety: thread-safe (the cache has its own mutex; Store is
// thread-safe).

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
  };

  // The references must outlive the authenticator.
  AdminAuthenticator(const Options& options, Store& store, Clock& clock);

  // `authorization` is the metadata value, nullopt if absent. Accepts
  // "Bearer <secret>" (scheme case-insensitive, one space).
  absl::StatusOr<Principal> Authenticate(
      std::optional<std::string_view> authorization);

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
  const Options options_;
  Store& store_;
  Clock& clock_;
  absl::Mutex mu_;
  // hash -> (principal, when last verified against the store)
  absl::flat_hash_map<std::string, std::pair<Principal, absl::Time>> verified_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
