#pragma once

// Policy: every knob of the correlator, with its default. Parsed from the
// server config in main() (or carried by AdminService.DryRunPolicy) and
// passed down by const reference. Thread-safety: value type.

#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/event_types.h"

namespace rampart::server {

struct Policy {
  // --- Scores -------------------------------------------------------------
  // A score halves every half_life without new events.
  absl::Duration half_life = absl::Minutes(30);
  // A score reaching this bans the address (IPv6: its /64).
  double ban_threshold = 10.0;
  // Weight per event kind (connect/disconnect/success never score).
  double weight_auth_failure = 1.0;
  double weight_lockout = 2.0;
  double weight_policy_reject = 0.5;
  double weight_tls_failure = 0.0;  // opt-in scanner signal
  // Multiplier per protocol.
  double protocol_smtp = 1.0;
  double protocol_imap = 1.0;
  double protocol_pop3 = 1.0;
  double protocol_ldap = 1.0;
  double protocol_http = 1.0;
  double protocol_unknown = 1.0;

  // --- Estate-wide correlation -----------------------------------------------
  // Each distinct Domino server the address hit within server_window
  // multiplies an event's weight: multiplier = 1 + server_factor * (n - 1),
  // n capped at max_servers_counted (<= 6).
  absl::Duration server_window = absl::Hours(1);
  double server_factor = 1.0;
  int max_servers_counted = 6;

  // --- Bans -----------------------------------------------------------------
  // Duration of the n-th ban (n = 0 for a first offence):
  // min(ban_base * ban_factor^n, ban_max), then +/- ban_jitter (fraction,
  // deterministic per ban so replays agree).
  absl::Duration ban_base = absl::Minutes(30);
  double ban_factor = 4.0;
  absl::Duration ban_max = absl::Hours(24 * 30);
  double ban_jitter = 0.1;
  // Each full clean period since the end of the last ban forgives one
  // escalation level (history fades instead of being forgotten at once).
  absl::Duration history_clean_period = absl::Hours(24 * 7);

  // --- Prefix aggregation ---------------------------------------------------
  // IPv6 addresses are scored per this prefix (one end site).
  int v6_score_prefix = 64;
  // Aggregation ladders: when prefix_k distinct children of a parent are
  // banned or scoring (>= prefix_member_fraction * ban_threshold) within
  // prefix_window, the parent is banned, and may in turn count towards the
  // next rung. IPv4 children are /32; IPv6 children start at v6_score_prefix.
  std::vector<int> v4_ladder = {24};
  std::vector<int> v6_ladder = {56, 48};
  int prefix_k = 3;
  double prefix_member_fraction = 0.5;
  absl::Duration prefix_window = absl::Hours(24);

  // --- Accounts -------------------------------------------------------------
  // An account is under attack when, within account_window, at least
  // account_min_ips distinct addresses or account_min_servers distinct
  // servers failed for it.
  absl::Duration account_window = absl::Hours(1);
  int account_min_ips = 5;
  int account_min_servers = 3;

  // --- Compromise alerts ----------------------------------------------------
  // A success for user U from an address with a failure within this lookback
  // (or whose prefix was bad, or while U is under attack) raises an alert.
  absl::Duration compromise_lookback = absl::Hours(24);

  // Weight of one event of `kind` over `protocol`, before the server
  // multiplier.
  double Weight(EventKind kind, Protocol protocol) const;
};

// InvalidArgument naming the first bad field, e.g. "policy.half_life must be
// > 0 (got 0s)".
absl::Status ValidatePolicy(const Policy& policy);

}  // namespace rampart::server
