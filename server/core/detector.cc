#include "server/core/detector.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/strings.h"

namespace rampart::server {
namespace {

int64_t ToUs(absl::Time t) { return absl::ToUnixMicros(t); }
int64_t ToS(absl::Time t) { return absl::ToUnixSeconds(t); }
absl::Time FromUs(int64_t us) { return absl::FromUnixMicros(us); }

bool Overlaps(const IpPrefix& a, const IpPrefix& b) {
  return a.Contains(b) || b.Contains(a);
}

std::array<int, 129>& Lengths(std::array<int, 129>& v4,
                              std::array<int, 129>& v6, const IpPrefix& p) {
  return p.address().is_v4() ? v4 : v6;
}

}  // namespace

std::string NormaliseUser(std::string_view user) {
  while (!user.empty() && (user.front() == ' ' || user.front() == '\t')) {
    user.remove_prefix(1);
  }
  while (!user.empty() && (user.back() == ' ' || user.back() == '\t')) {
    user.remove_suffix(1);
  }
  std::string out(user);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return out;
}

Detector::Detector(const Policy& policy, const DetectorLimits& limits)
    : policy_(policy),
      limits_(limits),
      half_life_us_(absl::ToInt64Microseconds(policy.half_life)),
      rungs_(policy.v4_ladder.size() + policy.v6_ladder.size()) {}

void Detector::Restore(const DurableState& state) {
  revision_ = state.revision;
  next_ban_id_ = state.max_ban_id + 1;
  next_alert_id_ = state.max_alert_id + 1;
  active_.clear();
  v4_lengths_.fill(0);
  v6_lengths_.fill(0);
  for (const Ban& ban : state.active_bans) {
    active_[ban.prefix] = ban;
    ++Lengths(v4_lengths_, v6_lengths_, ban.prefix)[ban.prefix.length()];
  }
  history_.clear();
  for (const BanHistory& h : state.history) {
    history_[h.prefix] = History{.last_level = h.last_level,
                                 .bans = h.bans,
                                 .last_end_us = ToUs(h.last_end)};
  }
  allow_ = state.allowlist;
}

IpPrefix Detector::KeyOf(const IpAddress& ip) const {
  return ip.is_v4() ? IpPrefix::Host(ip)
                    : IpPrefix::Of(ip, policy_.v6_score_prefix);
}

const std::vector<int>& Detector::Ladder(const IpAddress& ip) const {
  return ip.is_v4() ? policy_.v4_ladder : policy_.v6_ladder;
}

uint16_t Detector::ServerIndex(std::string_view agent_id) {
  if (auto it = server_ids_.find(ToAbsl(agent_id)); it != server_ids_.end()) {
    return it->second;
  }
  // Index 0 is reserved for "no server"; past 65535 servers share the last.
  const uint16_t id =
      static_cast<uint16_t>(std::min<size_t>(server_names_.size() + 1, 65535));
  if (server_names_.size() < 65535) {
    server_names_.emplace_back(agent_id);
    server_ids_.emplace(std::string(agent_id), id);
  }
  return id;
}

bool Detector::NewKeyAllowed(uint16_t server, bool account, int64_t now_s) {
  if (limits_.agent_new_keys_per_minute <= 0) {
    return true;
  }
  KeyBudget& b = key_budget_[server];  // bounded: at most 65535 servers
  const int64_t minute = now_s / 60;
  if (b.minute != minute) {
    b = KeyBudget{.minute = minute};
  }
  int& used = account ? b.accounts : b.scores;
  if (used >= limits_.agent_new_keys_per_minute) {
    return false;
  }
  ++used;
  return true;
}

Detector::ScoreEntry* Detector::ScoreSlot(const IpAddress& key, uint16_t server,
                                          int64_t now_s) {
  if (auto it = scores_.find(key); it != scores_.end()) {
    return &it->second;
  }
  if (!NewKeyAllowed(server, /*account=*/false, now_s)) {
    ++stats_.score_keys_refused;
    return nullptr;
  }
  if (limits_.max_score_entries > 0 &&
      scores_.size() >= limits_.max_score_entries) {
    EvictScores(now_s);
  }
  return &scores_[key];
}

Detector::AccountState* Detector::AccountSlot(const std::string& user,
                                              uint16_t server, int64_t now_s) {
  if (auto it = accounts_.find(user); it != accounts_.end()) {
    return &it->second;
  }
  if (!NewKeyAllowed(server, /*account=*/true, now_s)) {
    ++stats_.account_keys_refused;
    return nullptr;
  }
  if (limits_.max_account_entries > 0 &&
      accounts_.size() >= limits_.max_account_entries) {
    EvictAccounts(now_s);
  }
  return &accounts_[user];
}

namespace {

// Erases from `map` the `count` entries of lowest weight(entry) (ties: any).
// O(size) time, one float per entry of scratch.
template <typename Map, typename Weight>
size_t EraseLowest(Map& map, size_t count, const Weight& weight) {
  if (count == 0 || map.empty()) {
    return 0;
  }
  count = std::min(count, map.size());
  std::vector<float> w;
  w.reserve(map.size());
  for (const auto& kv : map) {
    w.push_back(static_cast<float>(weight(kv.second)));
  }
  std::nth_element(w.begin(), w.begin() + static_cast<ptrdiff_t>(count - 1),
                   w.end());
  const float cut = w[count - 1];
  size_t below = 0;  // strictly below the cut: all go
  for (size_t i = 0; i < count; ++i) {
    below += w[i] < cut ? 1 : 0;
  }
  size_t ties = count - below;  // and this many at the cut
  size_t erased = 0;
  absl::erase_if(map, [&](const auto& kv) {
    const float x = static_cast<float>(weight(kv.second));
    if (x < cut || (x == cut && ties > 0)) {
      ties -= x == cut ? 1 : 0;
      ++erased;
      return true;
    }
    return false;
  });
  return erased;
}

size_t EvictionBatch(size_t cap) { return std::max<size_t>(1, cap / 10); }

}  // namespace

void Detector::EvictScores(int64_t now_s) {
  const size_t target =
      limits_.max_score_entries - EvictionBatch(limits_.max_score_entries);
  if (scores_.size() <= target) {
    return;
  }
  stats_.score_evictions +=
      EraseLowest(scores_, scores_.size() - target,
                  [&](const ScoreEntry& e) { return Decayed(e, now_s); });
}

double Detector::AccountWeight(const AccountState& a, int64_t now_us) const {
  // Failures decayed like scores; an account under attack is kept first.
  const double halves =
      static_cast<double>(std::max<int64_t>(0, now_us - a.last_us)) /
      static_cast<double>(half_life_us_);
  const double decayed =
      halves > 1000 ? 0 : static_cast<double>(a.failures) * std::exp2(-halves);
  return decayed + (a.under_attack ? 1e9 : 0);
}

void Detector::EvictAccounts(int64_t now_s) {
  const size_t target =
      limits_.max_account_entries - EvictionBatch(limits_.max_account_entries);
  if (accounts_.size() <= target) {
    return;
  }
  const int64_t now_us = now_s * 1000000;
  stats_.account_evictions += EraseLowest(
      accounts_, accounts_.size() - target,
      [&](const AccountState& a) { return AccountWeight(a, now_us); });
}

double Detector::Decayed(const ScoreEntry& e, int64_t now_s) const {
  if (e.score == 0 || now_s <= static_cast<int64_t>(e.updated_s)) {
    return e.score;
  }
  const double halves = static_cast<double>(now_s - e.updated_s) * 1e6 /
                        static_cast<double>(half_life_us_);
  return halves > 1000 ? 0 : e.score * std::exp2(-halves);
}

int Detector::ServersInWindow(const ScoreEntry& e, int64_t now_s) const {
  const int64_t since = now_s - absl::ToInt64Seconds(policy_.server_window);
  int n = 0;
  for (int i = 0; i < kServerSlots; ++i) {
    if (e.server[i] != 0 && static_cast<int64_t>(e.server_seen_s[i]) >= since) {
      ++n;
    }
  }
  return n;
}

int Detector::NextLevel(const IpPrefix& prefix, absl::Time now) const {
  const auto it = history_.find(prefix);
  if (it == history_.end() || it->second.bans == 0) {
    return 0;
  }
  const int64_t elapsed = ToUs(now) - it->second.last_end_us;
  const int64_t period =
      absl::ToInt64Microseconds(policy_.history_clean_period);
  const int64_t faded = elapsed <= 0 ? 0 : elapsed / period;
  return static_cast<int>(std::max<int64_t>(
      0, it->second.last_level + 1 - std::min<int64_t>(faded, 1 << 20)));
}

absl::Duration Detector::BanDuration(const IpPrefix& prefix, int level,
                                     uint64_t id) const {
  const double base = absl::ToDoubleSeconds(policy_.ban_base);
  const double max = absl::ToDoubleSeconds(policy_.ban_max);
  double secs = base * std::pow(policy_.ban_factor, std::min(level, 64));
  if (!std::isfinite(secs) || secs > max) {
    secs = max;
  }
  if (policy_.ban_jitter > 0) {
    // Deterministic per (prefix, id): replays and tests agree.
    const uint64_t h = absl::HashOf(prefix, id);
    const double unit = static_cast<double>(h >> 11) * 0x1.0p-53;  // [0, 1)
    secs *= 1.0 + policy_.ban_jitter * (2 * unit - 1);
    secs = std::min(secs, max);
  }
  return absl::Seconds(std::round(secs));
}

std::optional<AllowEntry> Detector::AllowedBy(const IpPrefix& prefix,
                                              absl::Time now) const {
  for (const AllowEntry& a : allow_) {
    if (a.ActiveAt(now) && Overlaps(a.prefix, prefix)) {
      return a;
    }
  }
  return std::nullopt;
}

std::optional<Ban> Detector::CoveringBan(const IpAddress& ip,
                                         absl::Time now) const {
  const std::array<int, 129>& lengths = ip.is_v4() ? v4_lengths_ : v6_lengths_;
  // Most specific first.
  for (int len = ip.bits(); len >= 0; --len) {
    if (lengths[len] == 0) {
      continue;
    }
    const auto it = active_.find(IpPrefix::Of(ip, len));
    if (it != active_.end() && it->second.ActiveAt(now)) {
      return it->second;
    }
  }
  return std::nullopt;
}

std::vector<Ban> Detector::ActiveBans(absl::Time now) const {
  std::vector<Ban> out;
  out.reserve(active_.size());
  for (const auto& [prefix, ban] : active_) {
    if (ban.ActiveAt(now)) {
      out.push_back(ban);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Ban& a, const Ban& b) { return a.id < b.id; });
  return out;
}

void Detector::Journal(JournalEntry::Op op, const Ban& ban, absl::Time now,
                       Decisions* out) {
  out->journal.push_back(
      JournalEntry{.revision = ++revision_, .op = op, .ban = ban, .at = now});
}

bool Detector::AutoBan(const IpPrefix& prefix, BanOrigin origin,
                       std::string reason, absl::Time now, Decisions* out) {
  if (AllowedBy(prefix, now)) {
    return false;
  }
  if (auto covering = CoveringBan(prefix.address(), now);
      covering && covering->prefix.length() <= prefix.length()) {
    return false;
  }
  // Abuse limits (docs/security.md): never broader than /16 or /32, never a
  // protected address, at most N uncorroborated new bans per agent minute.
  if (prefix.length() < (prefix.address().is_v4() ? 16 : 32)) {
    ++stats_.bans_refused_broad;
    return false;
  }
  if (limits_.protect != nullptr) {
    if (std::optional<std::string> why = limits_.protect->Overlap(prefix)) {
      ++stats_.bans_refused_protected;
      stats_.last_protected =
          absl::StrFormat("%s (overlaps %s)", prefix.ToString(), *why);
      return false;
    }
  }
  if (limits_.agent_new_bans_per_minute > 0 && cause_alone_ &&
      cause_server_ != 0) {
    const int64_t now_s = ToUs(now) / 1000000;
    std::vector<int64_t>& times = recent_bans_[cause_server_];
    std::erase_if(times, [&](int64_t t) { return t <= now_s - 60; });
    if (times.size() >=
        static_cast<size_t>(limits_.agent_new_bans_per_minute)) {
      ++stats_.bans_capped;
      stats_.last_capped_agent = server_names_[cause_server_ - 1];
      return false;
    }
    times.push_back(now_s);
  }
  const int level = NextLevel(prefix, now);
  const uint64_t id = next_ban_id_++;
  Ban ban{.id = id,
          .prefix = prefix,
          .created = now,
          .expires = now + BanDuration(prefix, level, id),
          .origin = origin,
          .level = level,
          .reason = std::move(reason),
          .actor = "correlator"};
  if (auto it = active_.find(prefix); it != active_.end()) {
    // An expired ban still in the map: replace it.
    --Lengths(v4_lengths_, v6_lengths_, prefix)[prefix.length()];
    active_.erase(it);
  }
  active_[prefix] = ban;
  ++Lengths(v4_lengths_, v6_lengths_, prefix)[prefix.length()];
  History& h = history_[prefix];
  h.last_level = level;
  ++h.bans;
  h.last_end_us = ToUs(ban.expires);
  Journal(JournalEntry::Op::kAdd, ban, now, out);
  return true;
}

void Detector::MarkBadChild(const IpPrefix& child, size_t rung, absl::Time now,
                            bool decide, Decisions* out) {
  const std::vector<int>& ladder = Ladder(child.address());
  if (rung >= ladder.size()) {
    return;
  }
  const size_t registry =
      (child.address().is_v4() ? 0 : policy_.v4_ladder.size()) + rung;
  const IpPrefix parent = IpPrefix::Of(child.address(), ladder[rung]);
  auto& parents = rungs_[registry];
  if (limits_.max_score_entries > 0 &&
      parents.size() >= limits_.max_score_entries &&
      !parents.contains(parent)) {
    // Prefix evidence is keyed by attacker-chosen blocks too (IPv6 has no
    // end of them): the same cap, the stalest parents go first.
    stats_.score_evictions += EraseLowest(
        parents,
        parents.size() - limits_.max_score_entries +
            EvictionBatch(limits_.max_score_entries),
        [t = ToS(now)](const std::vector<ChildMark>& m) {
          int64_t newest = 0;
          for (const ChildMark& c : m) {
            newest = std::max(newest, c.last_bad_s);
          }
          return -static_cast<double>(std::max<int64_t>(t - newest, 0));
        });
  }
  std::vector<ChildMark>& marks = parents[parent];
  const int64_t now_s = ToS(now);
  const int64_t since = now_s - absl::ToInt64Seconds(policy_.prefix_window);
  bool found = false;
  for (ChildMark& m : marks) {
    if (m.child == child) {
      m.last_bad_s = std::max(m.last_bad_s, now_s);
      found = true;
    }
  }
  if (!found) {
    if (marks.size() >= static_cast<size_t>(policy_.prefix_k)) {
      // Bounded: replace the stalest mark.
      auto oldest =
          std::min_element(marks.begin(), marks.end(),
                           [](const ChildMark& a, const ChildMark& b) {
                             return a.last_bad_s < b.last_bad_s;
                           });
      *oldest = ChildMark{child, now_s};
    } else {
      marks.push_back(ChildMark{child, now_s});
    }
  }
  std::vector<IpPrefix> bad;
  for (const ChildMark& m : marks) {
    if (m.last_bad_s >= since) {
      bad.push_back(m.child);
    }
  }
  if (!decide || bad.size() < static_cast<size_t>(policy_.prefix_k)) {
    return;
  }
  std::sort(bad.begin(), bad.end());
  const std::string reason = absl::StrFormat(
      "%d %s in %s banned or scoring within %s: %s",
      static_cast<int>(bad.size()), child.is_host() ? "addresses" : "blocks",
      parent.ToString(), absl::FormatDuration(policy_.prefix_window),
      absl::StrJoin(bad, ", ", [](std::string* text, const IpPrefix& p) {
        text->append(p.ToString());
      }));
  if (AutoBan(parent, BanOrigin::kPrefix, reason, now, out)) {
    MarkBadChild(parent, rung + 1, now, decide, out);
  }
}

bool Detector::PrefixEvidence(const IpAddress& ip, int64_t now_s) const {
  const std::vector<int>& ladder = Ladder(ip);
  const size_t base = ip.is_v4() ? 0 : policy_.v4_ladder.size();
  const int64_t since = now_s - absl::ToInt64Seconds(policy_.prefix_window);
  for (size_t r = 0; r < ladder.size(); ++r) {
    const auto it = rungs_[base + r].find(IpPrefix::Of(ip, ladder[r]));
    if (it == rungs_[base + r].end()) {
      continue;
    }
    for (const ChildMark& m : it->second) {
      if (m.last_bad_s >= since) {
        return true;
      }
    }
  }
  return false;
}

void Detector::Observe(const AuthEvent& e, absl::Time now, bool decide,
                       Decisions* out) {
  if (!e.ip.has_value()) {
    if (e.kind == EventKind::kAuthFailure || e.kind == EventKind::kLockout) {
      ObserveAccount(e, ServerIndex(e.agent_id), ToUs(std::min(e.time, now)),
                     ToS(now), decide, out);
    }
    return;  // non-actionable: never scored, never banned
  }
  if (e.kind == EventKind::kAuthSuccess) {
    if (decide) {
      CheckCompromise(e, now, out);
    }
    return;
  }
  const double weight = policy_.Weight(e.kind, e.protocol);
  if (weight <= 0) {
    return;
  }
  const uint16_t server = ServerIndex(e.agent_id);
  const int64_t now_us = ToUs(now);
  const int64_t event_us = std::min(ToUs(e.time), now_us);
  const int64_t now_s = now_us / 1000000;
  const IpPrefix key = KeyOf(*e.ip);
  ScoreEntry* const entry = ScoreSlot(key.address(), server, now_s);
  if (entry == nullptr) {
    // This agent exceeded its new-key rate: the address is not tracked, its
    // account part still is (within its own budget).
    if (e.kind == EventKind::kAuthFailure || e.kind == EventKind::kLockout) {
      ObserveAccount(e, server, event_us, now_s, decide, out);
    }
    return;
  }
  ScoreEntry& s = *entry;

  // Remember the server (refresh its slot, else take an empty or the
  // stalest one).
  const auto seen =
      static_cast<uint32_t>(std::max<int64_t>(event_us / 1000000, 1));
  int slot = -1;
  int stalest = 0;
  for (int i = 0; i < kServerSlots; ++i) {
    if (s.server[i] == server) {
      slot = i;
      break;
    }
    if (s.server_seen_s[i] < s.server_seen_s[stalest]) {
      stalest = i;
    }
  }
  if (slot < 0) {
    slot = stalest;
    s.server[slot] = server;
    s.server_seen_s[slot] = 0;
  }
  s.server_seen_s[slot] = std::max(s.server_seen_s[slot], seen);

  const int servers_seen = ServersInWindow(s, now_s);
  const int servers =
      std::min(std::max(servers_seen, 1), policy_.max_servers_counted);
  cause_server_ = server;
  cause_alone_ = servers_seen <= 1;
  const double multiplier = 1.0 + policy_.server_factor * (servers - 1);
  const double age_halves = static_cast<double>(now_s - event_us / 1000000) *
                            1e6 / static_cast<double>(half_life_us_);
  const double contribution =
      weight * multiplier * (age_halves > 1000 ? 0 : std::exp2(-age_halves));
  s.score = static_cast<float>(Decayed(s, now_s) + contribution);
  s.updated_s = static_cast<uint32_t>(now_s);
  s.last_failure_s = std::max(s.last_failure_s, seen);
  ++s.events;

  if (e.kind == EventKind::kAuthFailure || e.kind == EventKind::kLockout) {
    ObserveAccount(e, server, event_us, now_s, decide, out);
  }

  const double score = s.score;
  if (score >= policy_.prefix_member_fraction * policy_.ban_threshold) {
    MarkBadChild(key, 0, now, decide, out);
  }
  if (score < policy_.ban_threshold) {
    return;
  }
  if (!decide) {
    // Rebuild: the live run banned here (or the key was covered) and started
    // afresh; mirror that so a restart does not re-ban on the next event.
    if (!AllowedBy(key, now)) {
      s.score = 0;
      s.events = 0;
    }
    return;
  }
  std::vector<std::string> names;
  for (int i = 0; i < kServerSlots; ++i) {
    if (s.server[i] != 0 &&
        static_cast<int64_t>(s.server_seen_s[i]) >=
            now_s - absl::ToInt64Seconds(policy_.server_window)) {
      names.push_back(server_names_[s.server[i] - 1]);
    }
  }
  std::sort(names.begin(), names.end());
  const uint32_t events = s.events;
  const std::string reason = absl::StrFormat(
      "score %.1f >= %g after %d events from %d server(s): %s", score,
      policy_.ban_threshold, static_cast<int>(events),
      static_cast<int>(names.size()), absl::StrJoin(names, ", "));
  if (AutoBan(key, BanOrigin::kAuto, reason, now, out)) {
    // A fresh start after the ban; the history escalates the next one.
    ScoreEntry& again = scores_[key.address()];
    again.score = 0;
    again.events = 0;
  }
}

void Detector::ObserveAccount(const AuthEvent& e, uint16_t server,
                              int64_t event_us, int64_t now_s, bool decide,
                              Decisions* out) {
  std::string user = NormaliseUser(e.user);
  if (user.empty()) {
    return;
  }
  // The rate and the eviction go by the server's clock, never the event's
  // (an agent chooses its event times).
  AccountState* const slot = AccountSlot(user, server, now_s);
  if (slot == nullptr) {
    return;  // this agent exceeded its new-key rate
  }
  AccountState& a = *slot;
  if (a.failures == 0) {
    a.first_us = event_us;
  }
  ++a.failures;
  a.last_us = std::max(a.last_us, event_us);
  const int64_t t_s = event_us / 1000000;
  const int64_t since = t_s - absl::ToInt64Seconds(policy_.account_window);
  const auto touch = [&](auto& slots, const auto& id, size_t cap) {
    for (auto& [k, last] : slots) {
      if (k == id) {
        last = std::max(last, t_s);
        return;
      }
    }
    if (slots.size() < cap) {
      slots.emplace_back(id, t_s);
      return;
    }
    auto oldest = std::min_element(
        slots.begin(), slots.end(),
        [](const auto& x, const auto& y) { return x.second < y.second; });
    if (oldest->second < t_s) {
      *oldest = {id, t_s};
    }
  };
  if (e.ip.has_value()) {
    touch(a.ips, *e.ip, kAccountIpSlots);
  }
  touch(a.servers, server, kAccountServerSlots);
  int ips = 0, servers = 0;
  for (const auto& [ip, last] : a.ips) {
    ips += last >= since ? 1 : 0;
  }
  for (const auto& [srv, last] : a.servers) {
    servers += last >= since ? 1 : 0;
  }
  a.under_attack =
      ips >= policy_.account_min_ips || servers >= policy_.account_min_servers;
  if (!decide || !a.under_attack ||
      (ips <= a.reported_ips && servers <= a.reported_servers)) {
    return;
  }
  a.reported_ips = std::max(a.reported_ips, ips);
  a.reported_servers = std::max(a.reported_servers, servers);
  AccountAttack rec{.user = user,
                    .first_seen = FromUs(a.first_us),
                    .last_seen = FromUs(a.last_us),
                    .failures = a.failures,
                    .distinct_ips = ips,
                    .distinct_servers = servers};
  for (const auto& [ip, last] : a.ips) {
    if (last >= since && rec.sample_ips.size() < 16) {
      rec.sample_ips.push_back(ip.ToString());
    }
  }
  for (const auto& [srv, last] : a.servers) {
    if (last >= since) {
      rec.servers.push_back(server_names_[srv - 1]);
    }
  }
  std::sort(rec.sample_ips.begin(), rec.sample_ips.end());
  std::sort(rec.servers.begin(), rec.servers.end());
  out->accounts.push_back(std::move(rec));
}

void Detector::CheckCompromise(const AuthEvent& e, absl::Time now,
                               Decisions* out) {
  const int64_t now_us = ToUs(now);
  const int64_t lookback =
      absl::ToInt64Microseconds(policy_.compromise_lookback);
  const IpPrefix key = KeyOf(*e.ip);
  std::vector<std::string> why;
  double score = 0;
  int64_t failures = 0;
  if (const auto it = scores_.find(key.address()); it != scores_.end()) {
    const int64_t last_us = int64_t{it->second.last_failure_s} * 1000000;
    score = Decayed(it->second, now_us / 1000000);
    if (it->second.events > 0 && now_us - last_us <= lookback) {
      failures = it->second.events;
      why.push_back(absl::StrFormat(
          "%d failure(s) from %s, last %s ago, score %.1f",
          static_cast<int>(failures), key.ToString(),
          absl::FormatDuration(absl::Seconds((now_us - last_us) / 1000000)),
          score));
    }
  }
  if (PrefixEvidence(*e.ip, now_us / 1000000)) {
    why.push_back("its prefix has banned or scoring addresses");
  }
  const std::string user = NormaliseUser(e.user);
  bool under_attack = false;
  if (const auto it = accounts_.find(user);
      !user.empty() && it != accounts_.end() && it->second.under_attack &&
      now_us - it->second.last_us <=
          absl::ToInt64Microseconds(policy_.account_window)) {
    under_attack = true;
    why.push_back(absl::StrFormat("account under attack (%d failures)",
                                  static_cast<int>(it->second.failures)));
  }
  if (auto ban = CoveringBan(*e.ip, now)) {
    why.push_back(
        absl::StrFormat("address is banned (%s)", ban->prefix.ToString()));
  }
  if (why.empty()) {
    return;
  }
  out->alerts.push_back(CompromiseAlert{
      .id = next_alert_id_++,
      .time = now,
      .user = e.user,
      .ip = *e.ip,
      .agent_id = e.agent_id,
      .protocol = e.protocol,
      .ip_score = score,
      .recent_failures = failures,
      .account_under_attack = under_attack,
      .evidence = absl::StrFormat("successful %s login for \"%s\" from %s: %s",
                                  ProtocolName(e.protocol), user,
                                  e.ip->ToString(), absl::StrJoin(why, "; "))});
}

absl::StatusOr<Ban> Detector::AddBan(const IpPrefix& prefix, absl::Time expires,
                                     BanOrigin origin, std::string reason,
                                     std::string actor, absl::Time now,
                                     Decisions* out) {
  if (expires <= now) {
    return absl::InvalidArgumentError("ban expiry must be in the future");
  }
  if (auto allowed = AllowedBy(prefix, now)) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s overlaps allowlist entry %s (%s); remove it from the allowlist "
        "first",
        prefix.ToString(), allowed->prefix.ToString(), allowed->comment));
  }
  if (auto it = active_.find(prefix);
      it != active_.end() && it->second.ActiveAt(now)) {
    if (it->second.expires >= expires) {
      return absl::AlreadyExistsError(
          absl::StrFormat("%s is already banned until %s", prefix.ToString(),
                          absl::FormatTime(it->second.expires)));
    }
    Ban& ban = it->second;
    ban.expires = expires;
    ban.reason = std::move(reason);
    ban.actor = std::move(actor);
    history_[prefix].last_end_us = ToUs(expires);
    Journal(JournalEntry::Op::kUpdate, ban, now, out);
    return ban;
  }
  const int level = NextLevel(prefix, now);
  Ban ban{.id = next_ban_id_++,
          .prefix = prefix,
          .created = now,
          .expires = expires,
          .origin = origin,
          .level = level,
          .reason = std::move(reason),
          .actor = std::move(actor)};
  if (auto it = active_.find(prefix); it != active_.end()) {
    --Lengths(v4_lengths_, v6_lengths_, prefix)[prefix.length()];
    active_.erase(it);
  }
  active_[prefix] = ban;
  ++Lengths(v4_lengths_, v6_lengths_, prefix)[prefix.length()];
  History& h = history_[prefix];
  h.last_level = level;
  ++h.bans;
  h.last_end_us = expires == absl::InfiniteFuture()
                      ? std::numeric_limits<int64_t>::max()
                      : ToUs(expires);
  Journal(JournalEntry::Op::kAdd, ban, now, out);
  return ban;
}

absl::StatusOr<Ban> Detector::RemoveBan(const IpPrefix& prefix,
                                        std::string reason, std::string actor,
                                        absl::Time now, Decisions* out) {
  const auto it = active_.find(prefix);
  if (it == active_.end() || !it->second.ActiveAt(now)) {
    return absl::NotFoundError(
        absl::StrFormat("no active ban for %s", prefix.ToString()));
  }
  Ban ban = it->second;
  active_.erase(it);
  --Lengths(v4_lengths_, v6_lengths_, prefix)[prefix.length()];
  history_[prefix].last_end_us = ToUs(now);
  ban.reason = std::move(reason);
  ban.actor = std::move(actor);
  Journal(JournalEntry::Op::kRemove, ban, now, out);
  // Forgive: scores and prefix evidence inside the prefix.
  if (prefix.is_host() || (prefix.address().is_v6() &&
                           prefix.length() >= policy_.v6_score_prefix)) {
    scores_.erase(KeyOf(prefix.address()).address());
  } else {
    absl::erase_if(scores_,
                   [&](const auto& kv) { return prefix.Contains(kv.first); });
  }
  for (auto& registry : rungs_) {
    absl::erase_if(registry,
                   [&](const auto& kv) { return Overlaps(prefix, kv.first); });
  }
  return ban;
}

void Detector::PutAllow(const AllowEntry& entry) {
  for (AllowEntry& a : allow_) {
    if (a.prefix == entry.prefix) {
      a = entry;
      return;
    }
  }
  allow_.push_back(entry);
}

absl::StatusOr<AllowEntry> Detector::DeleteAllow(const IpPrefix& prefix) {
  for (auto it = allow_.begin(); it != allow_.end(); ++it) {
    if (it->prefix == prefix) {
      AllowEntry removed = *it;
      allow_.erase(it);
      return removed;
    }
  }
  return absl::NotFoundError(
      absl::StrFormat("%s is not in the allowlist", prefix.ToString()));
}

void Detector::Expire(absl::Time now) {
  for (auto it = active_.begin(); it != active_.end();) {
    if (!it->second.ActiveAt(now)) {
      --Lengths(v4_lengths_, v6_lengths_, it->first)[it->first.length()];
      active_.erase(it++);
    } else {
      ++it;
    }
  }
  std::erase_if(allow_, [&](const AllowEntry& a) { return !a.ActiveAt(now); });
  const int64_t now_us = ToUs(now);
  // A score below 1/1000 of the threshold with no server in the window is
  // forgotten (its evidence is gone).
  absl::erase_if(scores_, [&](const auto& kv) {
    return Decayed(kv.second, now_us / 1000000) <
               policy_.ban_threshold / 1000 &&
           ServersInWindow(kv.second, now_us / 1000000) == 0 &&
           now_us / 1000000 - int64_t{kv.second.last_failure_s} >
               absl::ToInt64Seconds(policy_.compromise_lookback);
  });
  const int64_t account_idle =
      absl::ToInt64Microseconds(policy_.account_window);
  absl::erase_if(accounts_, [&](const auto& kv) {
    return now_us - kv.second.last_us > account_idle;
  });
  const int64_t since =
      now_us / 1000000 - absl::ToInt64Seconds(policy_.prefix_window);
  for (auto& registry : rungs_) {
    absl::erase_if(registry, [&](const auto& kv) {
      for (const ChildMark& m : kv.second) {
        if (m.last_bad_s >= since) {
          return false;
        }
      }
      return true;
    });
  }
  const int64_t period =
      absl::ToInt64Microseconds(policy_.history_clean_period);
  absl::erase_if(history_, [&](const auto& kv) {
    const int64_t end = kv.second.last_end_us;
    return end < now_us && (now_us - end) / period > kv.second.last_level + 1;
  });
}

KeyInfo Detector::Explain(const IpAddress& ip, absl::Time now) const {
  KeyInfo info;
  info.key = KeyOf(ip);
  const int64_t now_us = ToUs(now);
  if (const auto it = scores_.find(info.key.address()); it != scores_.end()) {
    const ScoreEntry& s = it->second;
    info.score = Decayed(s, now_us / 1000000);
    info.events = s.events;
    info.servers_in_window = ServersInWindow(s, now_us / 1000000);
    const int64_t since =
        now_us / 1000000 - absl::ToInt64Seconds(policy_.server_window);
    for (int i = 0; i < kServerSlots; ++i) {
      if (s.server[i] != 0 &&
          static_cast<int64_t>(s.server_seen_s[i]) >= since) {
        info.servers.push_back(server_names_[s.server[i] - 1]);
      }
    }
    std::sort(info.servers.begin(), info.servers.end());
    if (s.last_failure_s > 0) {
      info.last_failure = absl::FromUnixSeconds(s.last_failure_s);
    }
  }
  info.covering_ban = CoveringBan(ip, now);
  info.allowed_by = AllowedBy(IpPrefix::Host(ip), now);
  info.next_ban_level = NextLevel(info.key, now);
  return info;
}

}  // namespace rampart::server
