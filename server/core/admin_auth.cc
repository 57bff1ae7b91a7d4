#include "server/core/admin_auth.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace rampart::server {
namespace {

// Longest authorization value looked at; longer ones are refused unread.
constexpr size_t kMaxAuthorizationBytes = 512;
constexpr size_t kMinSecretBytes = 32;
constexpr size_t kMaxTokenNameBytes = 64;
// Most cached verifications (one per distinct token); beyond it the cache is
// cleared (it only matters while the store is down).
constexpr size_t kMaxCached = 1024;

bool SecretChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/' || c == '=' || c == '-';
}

absl::Status ValidateSecret(std::string_view secret) {
  if (secret.size() < kMinSecretBytes || secret.size() > 256) {
    return absl::InvalidArgumentError("token secret must be 32-256 characters");
  }
  for (char c : secret) {
    if (!SecretChar(c)) {
      return absl::InvalidArgumentError(
          "token secret may contain only letters, digits and ._~+/=-");
    }
  }
  return absl::OkStatus();
}

}  // namespace

AdminAuthenticator::AdminAuthenticator(const Options& options, Store& store,
                                       Clock& clock)
    : options_(options),
      store_(store),
      clock_(clock),
      source_lookups_({.events_per_second = options.source_lookups_per_second,
                       .burst = options.source_lookup_burst,
                       .max_agents = options.max_sources}),
      global_lookups_({.events_per_second = options.global_lookups_per_second,
                       .burst = options.global_lookup_burst,
                       .max_agents = 1}) {}

bool AdminAuthenticator::TryLookup(std::string_view source, absl::Time now) {
  // The source first: one address flooding must not drain the global bucket
  // beyond its own share.
  if (source_lookups_.TryAcquire(source, 1, now) > absl::ZeroDuration()) {
    return false;
  }
  return global_lookups_.TryAcquire("", 1, now) == absl::ZeroDuration();
}

absl::StatusOr<Principal> AdminAuthenticator::Refuse(
    absl::Status status, std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
  return status;
}

AdminAuthenticator::LogDecision AdminAuthenticator::ShouldLogRefusal() {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  if (now - log_window_start_ >= options_.log_interval) {
    log_window_start_ = now;
    logged_in_window_ = 0;
  }
  if (logged_in_window_ >= options_.max_logged_refusals) {
    ++suppressed_;
    return {};
  }
  ++logged_in_window_;
  LogDecision d{.log = true, .suppressed = suppressed_};
  suppressed_ = 0;
  return d;
}

AdminAuthenticator::Stats AdminAuthenticator::stats() const {
  return Stats{
      .refused_malformed = refused_malformed_.load(std::memory_order_relaxed),
      .refused_unknown = refused_unknown_.load(std::memory_order_relaxed),
      .refused_throttled = refused_throttled_.load(std::memory_order_relaxed),
      .store_lookups = store_lookups_.load(std::memory_order_relaxed),
  };
}

std::string AdminAuthenticator::HashSecret(std::string_view secret) {
  return Sha256Hex(secret);
}

absl::Status AdminAuthenticator::ValidateTokenName(std::string_view name) {
  if (name.empty() || name.size() > kMaxTokenNameBytes) {
    return absl::InvalidArgumentError("token name must be 1-64 characters");
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' &&
        c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          "token name may contain only letters, digits and ._-");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Principal> AdminAuthenticator::Authenticate(
    std::optional<std::string_view> authorization, std::string_view source) {
  if (!authorization.has_value() || authorization->empty()) {
    return Refuse(absl::UnauthenticatedError(
                      "no admin token (expected \"authorization: Bearer "
                      "<token>\" metadata)"),
                  refused_malformed_);
  }
  std::string_view value = *authorization;
  if (value.size() > kMaxAuthorizationBytes) {
    return Refuse(absl::UnauthenticatedError("authorization value too long"),
                  refused_malformed_);
  }
  constexpr std::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(ToAbsl(value.substr(0, kScheme.size())),
                              ToAbsl(kScheme))) {
    return Refuse(
        absl::UnauthenticatedError("authorization must be \"Bearer <token>\""),
        refused_malformed_);
  }
  const std::string_view secret = value.substr(kScheme.size());
  if (!ValidateSecret(secret).ok()) {
    return Refuse(absl::UnauthenticatedError("malformed admin token"),
                  refused_malformed_);
  }
  const std::string hash = HashSecret(secret);
  const absl::Time now = clock_.Now();
  bool known;
  {
    absl::MutexLock lock(&mu_);
    known = verified_.contains(hash);
  }
  if (!known && !TryLookup(source, now)) {
    return Refuse(absl::ResourceExhaustedError(
                      "too many failed admin authentications; retry later"),
                  refused_throttled_);
  }
  store_lookups_.fetch_add(1, std::memory_order_relaxed);
  absl::StatusOr<std::optional<ApiToken>> found = store_.FindApiToken(hash);
  if (!found.ok()) {
    if (found.status().code() == absl::StatusCode::kUnavailable &&
        options_.offline_grace > absl::ZeroDuration()) {
      absl::MutexLock lock(&mu_);
      if (const auto it = verified_.find(hash);
          it != verified_.end() &&
          now - it->second.second <= options_.offline_grace) {
        return it->second.first;
      }
    }
    return absl::UnavailableError(absl::StrFormat(
        "cannot verify the admin token: %s", found.status().message()));
  }
  if (!found->has_value()) {
    {
      absl::MutexLock lock(&mu_);
      verified_.erase(hash);
    }
    return Refuse(absl::UnauthenticatedError("unknown or revoked admin token"),
                  refused_unknown_);
  }
  Principal who{.actor = "token:" + (*found)->name, .role = (*found)->role};
  absl::MutexLock lock(&mu_);
  if (verified_.size() >= kMaxCached) {
    verified_.clear();
  }
  verified_[hash] = {who, now};
  return who;
}

absl::Status AdminAuthenticator::Authorize(const Principal& who,
                                           AdminRole needed,
                                           std::string_view what) {
  if (static_cast<int>(who.role) >= static_cast<int>(needed)) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(
      absl::StrFormat("%s has role %s; %s needs role %s", who.actor,
                      RoleName(who.role), what, RoleName(needed)));
}

absl::StatusOr<CreatedToken> AdminAuthenticator::CreateToken(
    std::string_view name, AdminRole role) {
  RETURN_IF_ERROR(ValidateTokenName(name));
  ASSIGN_OR_RETURN(std::string random, RandomHex(32));
  CreatedToken out;
  out.secret = "rpt_" + random;
  out.token = ApiToken{.name = std::string(name),
                       .role = role,
                       .hash = HashSecret(out.secret),
                       .created = clock_.Now()};
  RETURN_IF_ERROR(store_.PutApiToken(out.token));
  return out;
}

absl::Status AdminAuthenticator::EnsureToken(std::string_view name,
                                             AdminRole role,
                                             std::string_view secret) {
  RETURN_IF_ERROR(ValidateTokenName(name));
  RETURN_IF_ERROR(ValidateSecret(secret));
  const std::string hash = HashSecret(secret);
  ASSIGN_OR_RETURN(std::optional<ApiToken> found, store_.FindApiToken(hash));
  if (found.has_value()) {
    if (found->name != name || found->role != role) {
      return absl::AlreadyExistsError(
          absl::StrFormat("this secret is already token \"%s\" (%s)",
                          found->name, RoleName(found->role)));
    }
    return absl::OkStatus();
  }
  const absl::Time now = clock_.Now();
  if (absl::Status s = store_.RevokeApiToken(name, now);
      !s.ok() && s.code() != absl::StatusCode::kNotFound) {
    return s;
  }
  return store_.PutApiToken(ApiToken{
      .name = std::string(name), .role = role, .hash = hash, .created = now});
}

absl::StatusOr<std::vector<ApiToken>> AdminAuthenticator::ListTokens() {
  return store_.ListApiTokens();
}

absl::Status AdminAuthenticator::RevokeToken(std::string_view name) {
  RETURN_IF_ERROR(ValidateTokenName(name));
  RETURN_IF_ERROR(store_.RevokeApiToken(name, clock_.Now()));
  absl::MutexLock lock(&mu_);
  verified_.clear();
  return absl::OkStatus();
}

}  // namespace rampart::server
