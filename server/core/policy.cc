#include "server/core/policy.h"

#include <cmath>
#include <string>

#include "absl/strings/str_format.h"

namespace rampart::server {

double Policy::Weight(EventKind kind, Protocol protocol) const {
  double w = 0;
  switch (kind) {
    case EventKind::kAuthFailure:
      w = weight_auth_failure;
      break;
    case EventKind::kLockout:
      w = weight_lockout;
      break;
    case EventKind::kPolicyReject:
      w = weight_policy_reject;
      break;
    case EventKind::kTlsFailure:
      w = weight_tls_failure;
      break;
    case EventKind::kConnect:
    case EventKind::kDisconnect:
    case EventKind::kAuthSuccess:
      return 0;
  }
  switch (protocol) {
    case Protocol::kSmtp:
      return w * protocol_smtp;
    case Protocol::kImap:
      return w * protocol_imap;
    case Protocol::kPop3:
      return w * protocol_pop3;
    case Protocol::kLdap:
      return w * protocol_ldap;
    case Protocol::kHttp:
      return w * protocol_http;
    case Protocol::kUnknown:
      return w * protocol_unknown;
  }
  return w;
}

namespace {

absl::Status Bad(const char* field, const std::string& rule,
                 const std::string& got) {
  return absl::InvalidArgumentError(
      absl::StrFormat("policy.%s must be %s (got %s)", field, rule, got));
}

absl::Status Positive(const char* field, absl::Duration d) {
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) {
    return Bad(field, "> 0 and finite", absl::FormatDuration(d));
  }
  return absl::OkStatus();
}

absl::Status NonNegative(const char* field, double v, double max = 1e9) {
  if (!(v >= 0) || v > max || !std::isfinite(v)) {
    return Bad(field, absl::StrFormat("between 0 and %g", max),
               absl::StrFormat("%g", v));
  }
  return absl::OkStatus();
}

absl::Status Ladder(const char* field, const std::vector<int>& ladder,
                    int child, int width) {
  int prev = child;
  for (int len : ladder) {
    if (len >= prev || len < 8 || len > width) {
      return Bad(field,
                 absl::StrFormat("strictly decreasing prefix lengths below "
                                 "/%d and >= /8",
                                 child),
                 absl::StrFormat("/%d", len));
    }
    prev = len;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePolicy(const Policy& p) {
#define RAMPART_CHECK(expr) \
  if (absl::Status s = (expr); !s.ok()) return s
  RAMPART_CHECK(Positive("half_life", p.half_life));
  if (!(p.ban_threshold > 0) || !std::isfinite(p.ban_threshold)) {
    return Bad("ban_threshold", "> 0", absl::StrFormat("%g", p.ban_threshold));
  }
  RAMPART_CHECK(NonNegative("weight_auth_failure", p.weight_auth_failure));
  RAMPART_CHECK(NonNegative("weight_lockout", p.weight_lockout));
  RAMPART_CHECK(NonNegative("weight_policy_reject", p.weight_policy_reject));
  RAMPART_CHECK(NonNegative("weight_tls_failure", p.weight_tls_failure));
  RAMPART_CHECK(NonNegative("protocol_smtp", p.protocol_smtp));
  RAMPART_CHECK(NonNegative("protocol_imap", p.protocol_imap));
  RAMPART_CHECK(NonNegative("protocol_pop3", p.protocol_pop3));
  RAMPART_CHECK(NonNegative("protocol_ldap", p.protocol_ldap));
  RAMPART_CHECK(NonNegative("protocol_http", p.protocol_http));
  RAMPART_CHECK(NonNegative("protocol_unknown", p.protocol_unknown));
  RAMPART_CHECK(Positive("server_window", p.server_window));
  RAMPART_CHECK(NonNegative("server_factor", p.server_factor, 100));
  if (p.max_servers_counted < 1 || p.max_servers_counted > 6) {
    return Bad("max_servers_counted", "between 1 and 6",
               std::to_string(p.max_servers_counted));
  }
  RAMPART_CHECK(Positive("ban_base", p.ban_base));
  if (!(p.ban_factor >= 1) || p.ban_factor > 1000) {
    return Bad("ban_factor", "between 1 and 1000",
               absl::StrFormat("%g", p.ban_factor));
  }
  RAMPART_CHECK(Positive("ban_max", p.ban_max));
  if (p.ban_max < p.ban_base) {
    return Bad("ban_max", ">= ban_base", absl::FormatDuration(p.ban_max));
  }
  if (!(p.ban_jitter >= 0 && p.ban_jitter < 1)) {
    return Bad("ban_jitter", "in [0, 1)", absl::StrFormat("%g", p.ban_jitter));
  }
  RAMPART_CHECK(Positive("history_clean_period", p.history_clean_period));
  if (p.v6_score_prefix < 32 || p.v6_score_prefix > 128) {
    return Bad("v6_score_prefix", "between 32 and 128",
               std::to_string(p.v6_score_prefix));
  }
  RAMPART_CHECK(Ladder("v4_ladder", p.v4_ladder, 32, 32));
  RAMPART_CHECK(Ladder("v6_ladder", p.v6_ladder, p.v6_score_prefix, 128));
  if (p.prefix_k < 2 || p.prefix_k > 64) {
    return Bad("prefix_k", "between 2 and 64", std::to_string(p.prefix_k));
  }
  if (!(p.prefix_member_fraction > 0 && p.prefix_member_fraction <= 1)) {
    return Bad("prefix_member_fraction", "in (0, 1]",
               absl::StrFormat("%g", p.prefix_member_fraction));
  }
  RAMPART_CHECK(Positive("prefix_window", p.prefix_window));
  RAMPART_CHECK(Positive("account_window", p.account_window));
  if (p.account_min_ips < 2 || p.account_min_ips > 32) {
    return Bad("account_min_ips", "between 2 and 32",
               std::to_string(p.account_min_ips));
  }
  if (p.account_min_servers < 2 || p.account_min_servers > 16) {
    return Bad("account_min_servers", "between 2 and 16",
               std::to_string(p.account_min_servers));
  }
  RAMPART_CHECK(Positive("compromise_lookback", p.compromise_lookback));
#undef RAMPART_CHECK
  return absl::OkStatus();
}

}  // namespace rampart::server
