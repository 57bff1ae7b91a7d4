#include "agent/firewall/enforcer.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "agent/firewall/prefix_util.h"
#include "common/file_util.h"
#include "common/logging.h"

namespace rampart::agent {
namespace {

constexpr const char* kKindNames[4] = {"snapshot", "delta", "refresh",
                                       "repair"};

std::string Str(const absl::Status& s) { return std::string(s.ToString()); }

// What a prefix counts against EnforcerOptions' caps: IPv4 addresses, IPv6
// /64 subnets. Clamped at 2^50 (above any cap) so sums cannot overflow.
uint64_t Weight(const IpPrefix& p) {
  const int host_bits = p.address().is_v4() ? 32 - p.length() : 64 - p.length();
  if (host_bits <= 0) {
    return 1;
  }
  return host_bits >= 50 ? uint64_t{1} << 50 : uint64_t{1} << host_bits;
}

// Refusal logs: the first 10 of a reason, then every power of two (a hostile
// list of a million bans must not flood the log; the counters are exact).
bool ShouldLogRefusal(uint64_t count) {
  return count <= 10 || (count & (count - 1)) == 0;
}

}  // namespace

Enforcer::Metrics::Metrics(metrics::Registry& r)
    : fallback_snapshots(r.GetCounter(
          "rampart_agent_firewall_fallback_snapshots_total",
          "Backend deltas that failed and were replaced by a full snapshot.")),
      drift_added(r.GetCounter(
          "rampart_agent_firewall_drift_repaired_total",
          "Entries fixed by drift repair: desired but missing from the "
          "backend (added), or present without being desired (removed).",
          {{"direction", "added"}})),
      drift_removed(r.GetCounter(
          "rampart_agent_firewall_drift_repaired_total",
          "Entries fixed by drift repair: desired but missing from the "
          "backend (added), or present without being desired (removed).",
          {{"direction", "removed"}})),
      full_resyncs(r.GetCounter(
          "rampart_agent_firewall_full_resyncs_total",
          "Drift repairs that re-applied the whole set (listing or repair "
          "delta failed).")),
      state_write_errors(r.GetCounter(
          "rampart_agent_firewall_state_write_errors_total",
          "Failed writes of the enforced-bans state file or journal.")),
      bans(r.GetGauge("rampart_agent_firewall_bans",
                      "Bans in the list the agent enforces (all ids).")),
      installed(
          r.GetGauge("rampart_agent_firewall_installed_entries",
                     "Prefixes installed in the backend (merged, covered ones "
                     "excluded).")),
      refused_bans(r.GetGauge("rampart_agent_firewall_refused_bans",
                              "Bans of the list the guard refuses.")),
      revision(r.GetGauge("rampart_agent_firewall_revision",
                          "Ban-list revision the backend enforces.")) {
  for (int k = 0; k < 4; ++k) {
    applies_ok[k] = &r.GetCounter(
        "rampart_agent_firewall_applies_total",
        "Enforcer operations that reached the backend, by kind and result.",
        {{"kind", kKindNames[k]}, {"result", "ok"}});
    applies_failed[k] = &r.GetCounter(
        "rampart_agent_firewall_applies_total",
        "Enforcer operations that reached the backend, by kind and result.",
        {{"kind", kKindNames[k]}, {"result", "error"}});
    apply_seconds[k] = &r.GetHistogram(
        "rampart_agent_firewall_apply_seconds",
        "Time of an enforcer operation including the backend call.",
        {{"kind", kKindNames[k]}});
  }
  for (int i = 0; i < kGuardReasonCount; ++i) {
    refused[i] = &r.GetCounter(
        "rampart_agent_firewall_guard_refused_total",
        "Bans the guard refused to enforce, by reason.",
        {{"reason",
          std::string(GuardReasonName(static_cast<GuardReason>(i)))}});
  }
}

absl::StatusOr<std::unique_ptr<Enforcer>> Enforcer::Create(
    const EnforcerOptions& options, Firewall& firewall, Guard& guard,
    Clock& clock, metrics::Registry& metrics) {
  std::unique_ptr<EnforcedStateStore> store;
  if (!options.state_dir.empty()) {
    if (absl::Status s = file_util::MakeDirs(options.state_dir); !s.ok()) {
      return s;
    }
    store = std::make_unique<EnforcedStateStore>(
        options.state_dir + "/enforced-bans.state", options.sync_state);
  }
  std::unique_ptr<Enforcer> e(
      new Enforcer(options, firewall, guard, clock, metrics, std::move(store)));
  absl::MutexLock lock(&e->mu_);
  if (e->store_ == nullptr) {
    return e;
  }
  absl::StatusOr<EnforcedState> state = e->store_->Load();
  if (!state.ok()) {
    if (!absl::IsNotFound(state.status())) {
      RAMPART_LOG(Error) << "ignoring the enforced-bans state: "
                         << Str(state.status())
                         << "; the server will send a snapshot";
    }
    return e;
  }
  e->epoch_ = state->epoch;
  e->revision_ = state->revision;
  e->persisted_ = {state->epoch, state->revision};
  for (const BanItem& item : state->items) {
    e->InsertItem(item, nullptr);
  }
  e->loaded_ = true;
  RAMPART_LOG(Info) << "loaded " << state->items.size() << " bans at revision "
                    << state->revision << " from " << options.state_dir;
  return e;
}

Enforcer::Enforcer(const EnforcerOptions& options, Firewall& firewall,
                   Guard& guard, Clock& clock, metrics::Registry& metrics,
                   std::unique_ptr<EnforcedStateStore> store)
    : options_(options),
      firewall_(firewall),
      guard_(guard),
      clock_(clock),
      metrics_(metrics),
      store_(std::move(store)) {}

// --- List mutation ----------------------------------------------------------

void Enforcer::ClearList() {
  items_.clear();
  prefixes_.clear();
  active_lengths_ = {};
  active_weight_ = {};
  expiries_.clear();
  refused_.clear();
  installed_count_ = 0;
}

void Enforcer::RecomputeMergedExpiry(PrefixState& state) {
  std::optional<absl::Time> merged;
  bool first = true;
  for (uint64_t id : state.ids) {
    const std::optional<absl::Time>& e = items_.at(id).expires;
    if (!e.has_value()) {
      merged.reset();
      break;
    }
    if (first || *e > *merged) {
      merged = e;
    }
    first = false;
  }
  state.expires = merged;
}

void Enforcer::SetRefused(PrefixMap::iterator it,
                          std::optional<GuardRefusal> refusal) {
  PrefixState& st = it->second;
  const bool was_active = st.active();
  const bool was_refused = st.refused.has_value();
  st.refused = refusal;
  if (!st.ids.empty()) {
    if (refusal.has_value()) {
      refused_.insert(it->first);
      if (!was_refused) {
        metrics::Counter& counter =
            *metrics_.refused[static_cast<int>(refusal->reason)];
        counter.Increment(st.ids.size());
        if (ShouldLogRefusal(counter.Value())) {
          RAMPART_LOG(Warning)
              << "not enforcing " << it->first.ToString() << ": "
              << refusal->ToString() << " (" << counter.Value() << " "
              << GuardReasonName(refusal->reason) << " refusals so far)";
        }
      }
    } else {
      refused_.erase(it->first);
    }
  }
  const int fam = FamilyIndex(it->first.address());
  if (was_active && !st.active()) {
    --active_lengths_[fam][it->first.length()];
    Weigh(it->first, -1);
  } else if (!was_active && st.active()) {
    ++active_lengths_[fam][it->first.length()];
    Weigh(it->first, +1);
  }
}

void Enforcer::Weigh(const IpPrefix& p, int sign) {
  uint64_t& w = active_weight_[FamilyIndex(p.address())];
  const uint64_t d = Weight(p);
  w = sign > 0 ? w + d : (w >= d ? w - d : 0);
}

std::optional<GuardRefusal> Enforcer::Limits(
    PrefixMap::const_iterator it) const {
  const IpPrefix& p = it->first;
  if (std::optional<GuardRefusal> r = guard_.Check(p)) {
    return r;
  }
  const bool v4 = p.address().is_v4();
  const uint64_t cap = v4 ? options_.max_blocked_ipv4_addresses
                          : options_.max_blocked_ipv6_subnets;
  uint64_t others = active_weight_[FamilyIndex(p.address())];
  if (it->second.active()) {
    others -= std::min(others, Weight(p));
  }
  if (others + Weight(p) > cap) {
    return GuardRefusal{
        .reason = GuardReason::kCapacity, .protected_prefix = p, .limit = cap};
  }
  return std::nullopt;
}

void Enforcer::InsertItem(const BanItem& item,
                          absl::btree_set<IpPrefix>* touched) {
  if (items_.contains(item.id)) {
    EraseItem(item.id, touched);
  }
  items_.emplace(item.id, item);
  if (item.expires.has_value()) {
    expiries_.emplace(*item.expires, item.id);
  }
  auto it = prefixes_.try_emplace(item.prefix).first;
  PrefixState& st = it->second;
  if (st.ids.empty()) {
    // First id of this prefix: it becomes active, then the guard decides.
    st.ids.push_back(item.id);
    st.refused.reset();
    ++active_lengths_[FamilyIndex(item.prefix.address())][item.prefix.length()];
    Weigh(item.prefix, +1);
    SetRefused(it, Limits(it));
  } else {
    st.ids.push_back(item.id);
    if (st.refused.has_value()) {
      metrics_.refused[static_cast<int>(st.refused->reason)]->Increment();
    }
  }
  RecomputeMergedExpiry(st);
  if (touched != nullptr) {
    touched->insert(item.prefix);
  }
}

void Enforcer::EraseItem(uint64_t id, absl::btree_set<IpPrefix>* touched) {
  auto item_it = items_.find(id);
  if (item_it == items_.end()) {
    return;
  }
  const BanItem item = item_it->second;
  if (item.expires.has_value()) {
    expiries_.erase({*item.expires, id});
  }
  auto it = prefixes_.find(item.prefix);
  PrefixState& st = it->second;
  const bool was_active = st.active();
  st.ids.erase(std::find(st.ids.begin(), st.ids.end(), id));
  items_.erase(item_it);
  if (was_active && !st.active()) {
    --active_lengths_[FamilyIndex(item.prefix.address())][item.prefix.length()];
    Weigh(item.prefix, -1);
  }
  if (st.ids.empty() && st.refused.has_value()) {
    refused_.erase(item.prefix);
  }
  RecomputeMergedExpiry(st);
  if (touched != nullptr) {
    touched->insert(item.prefix);
  }
}

void Enforcer::PruneExpired(absl::Time now,
                            absl::btree_set<IpPrefix>* touched) {
  while (!expiries_.empty() && expiries_.begin()->first <= now) {
    EraseItem(expiries_.begin()->second, touched);
  }
}

bool Enforcer::Covered(const IpPrefix& p) const {
  const auto& lengths = active_lengths_[FamilyIndex(p.address())];
  for (int len = 0; len < p.length(); ++len) {
    if (lengths[len] == 0) {
      continue;
    }
    auto it = prefixes_.find(IpPrefix::Of(p.address(), len));
    if (it != prefixes_.end() && it->second.active()) {
      return true;
    }
  }
  return false;
}

// --- Derivation -------------------------------------------------------------

void Enforcer::DiffTouched(const absl::btree_set<IpPrefix>& touched,
                           std::vector<FirewallEntry>* adds,
                           std::vector<IpPrefix>* removes) {
  absl::btree_set<IpPrefix> candidates;
  for (const IpPrefix& p : touched) {
    candidates.insert(p);
    if (p.is_host()) {
      continue;
    }
    const IpAddress last = LastAddress(p);
    for (auto it = prefixes_.lower_bound(p);
         it != prefixes_.end() && it->first.address() <= last; ++it) {
      if (p.Contains(it->first)) {
        candidates.insert(it->first);
      }
    }
  }
  for (const IpPrefix& c : candidates) {
    auto it = prefixes_.find(c);
    if (it == prefixes_.end()) {
      continue;
    }
    PrefixState& st = it->second;
    const bool want = st.active() && !Covered(c);
    if (want) {
      if (!st.installed) {
        adds->push_back({c, st.expires});
        st.installed = true;
        st.installed_expires = st.expires;
        ++installed_count_;
      } else if (st.installed_expires != st.expires) {
        removes->push_back(c);
        adds->push_back({c, st.expires});
        st.installed_expires = st.expires;
      }
    } else if (st.installed) {
      removes->push_back(c);
      st.installed = false;
      st.installed_expires.reset();
      --installed_count_;
    }
  }
}

void Enforcer::DropDeadPrefixes(const absl::btree_set<IpPrefix>& touched) {
  for (const IpPrefix& p : touched) {
    auto it = prefixes_.find(p);
    if (it != prefixes_.end() && it->second.ids.empty() &&
        !it->second.installed) {
      prefixes_.erase(it);
    }
  }
}

std::vector<FirewallEntry> Enforcer::RecomputeAll() {
  std::vector<FirewallEntry> out;
  out.reserve(prefixes_.size());
  // Active prefixes enclosing the current position, per family. CIDR blocks
  // nest or are disjoint, and a container sorts before what it contains, so
  // a stack suffices.
  std::vector<IpPrefix> stacks[2];
  installed_count_ = 0;
  for (auto it = prefixes_.begin(); it != prefixes_.end();) {
    PrefixState& st = it->second;
    if (st.ids.empty()) {
      it = prefixes_.erase(it);
      continue;
    }
    std::vector<IpPrefix>& stack = stacks[FamilyIndex(it->first.address())];
    while (!stack.empty() && !stack.back().Contains(it->first)) {
      stack.pop_back();
    }
    const bool want = st.active() && stack.empty();
    if (st.active()) {
      stack.push_back(it->first);
    }
    st.installed = want;
    st.installed_expires = want ? st.expires : std::nullopt;
    if (want) {
      out.push_back({it->first, st.expires});
      ++installed_count_;
    }
    ++it;
  }
  return out;
}

// --- Backend application ----------------------------------------------------

absl::Status Enforcer::PushSnapshot() {
  const std::vector<FirewallEntry> entries = RecomputeAll();
  absl::Status s = firewall_.ApplySnapshot(entries);
  dirty_ = !s.ok();
  if (!s.ok()) {
    RAMPART_LOG(Error) << firewall_.Name() << ": snapshot of " << entries.size()
                       << " entries failed: " << Str(s);
  }
  return s;
}

absl::Status Enforcer::PushDelta(const std::vector<FirewallEntry>& adds,
                                 const std::vector<IpPrefix>& removes,
                                 bool* fell_back) {
  if (dirty_) {
    return PushSnapshot();
  }
  if (adds.empty() && removes.empty()) {
    return absl::OkStatus();
  }
  absl::Status s = firewall_.ApplyDelta(adds, removes);
  if (s.ok()) {
    return s;
  }
  RAMPART_LOG(Warning) << firewall_.Name() << ": delta (+" << adds.size()
                       << " -" << removes.size() << ") failed: " << Str(s)
                       << "; applying a full snapshot instead";
  metrics_.fallback_snapshots.Increment();
  if (fell_back != nullptr) {
    *fell_back = true;
  }
  return PushSnapshot();
}

ApplyReport Enforcer::MakeReport(bool fell_back) const {
  ApplyReport r;
  r.epoch = epoch_;
  r.revision = revision_;
  r.installed = installed_count_;
  r.fell_back_to_snapshot = fell_back;
  for (const IpPrefix& p : refused_) {
    const PrefixState& st = prefixes_.at(p);
    for (uint64_t id : st.ids) {
      r.refused.push_back({.id = id, .prefix = p, .refusal = *st.refused});
    }
  }
  std::sort(
      r.refused.begin(), r.refused.end(),
      [](const RefusedBan& a, const RefusedBan& b) { return a.id < b.id; });
  return r;
}

void Enforcer::PersistSnapshot() {
  if (store_ == nullptr) {
    return;
  }
  EnforcedState state;
  state.epoch = epoch_;
  state.revision = revision_;
  state.items.reserve(items_.size());
  for (const auto& [id, item] : items_) {
    state.items.push_back(item);
  }
  std::sort(state.items.begin(), state.items.end(),
            [](const BanItem& a, const BanItem& b) { return a.id < b.id; });
  if (absl::Status s = store_->WriteSnapshot(state); !s.ok()) {
    // The kernel is enforced; only restart safety suffers (a restart
    // re-applies what was saved before, consistent with its revision).
    persisted_.reset();
    metrics_.state_write_errors.Increment();
    RAMPART_LOG(Error) << "cannot save the enforced-bans state: " << Str(s);
    return;
  }
  persisted_ = {epoch_, revision_};
}

void Enforcer::PersistDelta(uint64_t from_revision,
                            const std::vector<BanChange>& changes) {
  if (store_ == nullptr) {
    return;
  }
  if (!persisted_.has_value() ||
      *persisted_ != std::make_pair(epoch_, from_revision) ||
      store_->ShouldCompact()) {
    PersistSnapshot();
    return;
  }
  if (absl::Status s =
          store_->AppendDelta(epoch_, from_revision, revision_, changes);
      !s.ok()) {
    persisted_.reset();
    metrics_.state_write_errors.Increment();
    RAMPART_LOG(Error) << "cannot journal the ban-list delta: " << Str(s);
    return;
  }
  persisted_ = {epoch_, revision_};
}

void Enforcer::UpdateGauges() {
  metrics_.bans.Set(static_cast<double>(items_.size()));
  metrics_.installed.Set(static_cast<double>(installed_count_));
  size_t refused = 0;
  for (const IpPrefix& p : refused_) {
    refused += prefixes_.at(p).ids.size();
  }
  metrics_.refused_bans.Set(static_cast<double>(refused));
  if (!dirty_) {
    metrics_.revision.Set(static_cast<double>(revision_));
  }
}

void Enforcer::Count(Kind kind, const absl::Status& status,
                     absl::Duration took) {
  (status.ok() ? metrics_.applies_ok : metrics_.applies_failed)[kind]
      ->Increment();
  metrics_.apply_seconds[kind]->ObserveDuration(took);
}

// --- Public operations ------------------------------------------------------

absl::Status Enforcer::Start() {
  if (absl::Status s = guard_.RefreshHostAddresses(); !s.ok()) {
    RAMPART_LOG(Warning) << "cannot read the host's addresses: " << Str(s);
  }
  absl::MutexLock lock(&mu_);
  if (absl::Status s = firewall_.Install(); !s.ok()) {
    return s;
  }
  if (!loaded_) {
    return absl::OkStatus();
  }
  const absl::Time start = clock_.Now();
  for (auto it = prefixes_.begin(); it != prefixes_.end(); ++it) {
    if (!it->second.ids.empty()) {
      SetRefused(it, Limits(it));
    }
  }
  PruneExpired(start, nullptr);
  absl::Status s = PushSnapshot();
  Count(kSnapshot, s, clock_.Now() - start);
  if (s.ok()) {
    loaded_ = false;
    if (store_ != nullptr && store_->ShouldCompact()) {
      PersistSnapshot();
    }
    RAMPART_LOG(Info) << "re-applied " << items_.size()
                      << " saved bans at revision " << revision_ << " ("
                      << installed_count_ << " entries)";
  }
  UpdateGauges();
  return s;
}

absl::StatusOr<ApplyReport> Enforcer::ApplySnapshot(
    uint64_t epoch, uint64_t revision, const std::vector<BanItem>& items) {
  {
    absl::flat_hash_set<uint64_t> ids;
    ids.reserve(items.size());
    for (const BanItem& item : items) {
      if (!ids.insert(item.id).second) {
        return absl::InvalidArgumentError(
            absl::StrFormat("snapshot repeats ban id %d", item.id));
      }
    }
  }
  absl::MutexLock lock(&mu_);
  const absl::Time start = clock_.Now();
  ClearList();
  epoch_ = epoch;
  revision_ = revision;
  loaded_ = false;
  for (const BanItem& item : items) {
    if (item.expires.has_value() && *item.expires <= start) {
      continue;
    }
    InsertItem(item, nullptr);
  }
  absl::Status s = PushSnapshot();
  Count(kSnapshot, s, clock_.Now() - start);
  UpdateGauges();
  if (!s.ok()) {
    return s;
  }
  PersistSnapshot();
  return MakeReport(false);
}

absl::StatusOr<ApplyReport> Enforcer::ApplyDelta(
    uint64_t epoch, uint64_t from_revision, uint64_t to_revision,
    const std::vector<BanChange>& changes) {
  absl::MutexLock lock(&mu_);
  if (epoch_ == 0 && revision_ == 0) {
    return absl::FailedPreconditionError(
        "no ban list yet: a snapshot must come first");
  }
  if (epoch != epoch_) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "delta for ban-list epoch %d, but the list has epoch %d", epoch,
        epoch_));
  }
  if (from_revision != revision_) {
    return absl::FailedPreconditionError(
        absl::StrFormat("delta from revision %d, but the list is at %d",
                        from_revision, revision_));
  }
  if (to_revision <= from_revision) {
    return absl::InvalidArgumentError(
        absl::StrFormat("delta to revision %d does not advance from %d",
                        to_revision, from_revision));
  }
  const absl::Time start = clock_.Now();
  absl::btree_set<IpPrefix> touched;
  PruneExpired(start, &touched);
  // What the journal records: upserts and removals by id.
  std::vector<BanChange> effective;
  effective.reserve(changes.size());
  for (const BanChange& c : changes) {
    const bool remove =
        c.op == BanChange::Op::kRemove ||
        (c.item.expires.has_value() && *c.item.expires <= start);
    if (remove) {
      EraseItem(c.item.id, &touched);
      effective.push_back({BanChange::Op::kRemove, {.id = c.item.id}});
    } else {
      InsertItem(c.item, &touched);
      effective.push_back({BanChange::Op::kUpdate, c.item});
    }
  }
  revision_ = to_revision;
  loaded_ = false;
  std::vector<FirewallEntry> adds;
  std::vector<IpPrefix> removes;
  DiffTouched(touched, &adds, &removes);
  DropDeadPrefixes(touched);
  bool fell_back = false;
  absl::Status s = PushDelta(adds, removes, &fell_back);
  Count(kDelta, s, clock_.Now() - start);
  UpdateGauges();
  if (!s.ok()) {
    return s;
  }
  PersistDelta(from_revision, effective);
  return MakeReport(fell_back);
}

absl::Status Enforcer::Refresh() {
  absl::MutexLock lock(&mu_);
  const absl::Time start = clock_.Now();
  absl::btree_set<IpPrefix> touched;
  PruneExpired(start, &touched);
  if (touched.empty() && !dirty_) {
    return absl::OkStatus();
  }
  std::vector<FirewallEntry> adds;
  std::vector<IpPrefix> removes;
  DiffTouched(touched, &adds, &removes);
  DropDeadPrefixes(touched);
  absl::Status s = PushDelta(adds, removes, nullptr);
  Count(kRefresh, s, clock_.Now() - start);
  UpdateGauges();
  return s;
}

absl::StatusOr<RepairReport> Enforcer::Repair() {
  if (absl::Status s = guard_.RefreshHostAddresses(); !s.ok()) {
    RAMPART_LOG(Warning) << "cannot read the host's addresses: " << Str(s);
  }
  absl::MutexLock lock(&mu_);
  const absl::Time start = clock_.Now();
  RepairReport report;
  absl::Status s = firewall_.Install();
  if (s.ok() && epoch_ == 0 && revision_ == 0) {
    // No list yet: whatever the backend holds stays until the first
    // snapshot (as in Start()).
    Count(kRepair, s, clock_.Now() - start);
    return report;
  }
  if (s.ok()) {
    PruneExpired(start, nullptr);
    for (auto it = prefixes_.begin(); it != prefixes_.end(); ++it) {
      if (!it->second.ids.empty()) {
        SetRefused(it, Limits(it));
      }
    }
    const std::vector<FirewallEntry> want = RecomputeAll();
    absl::StatusOr<std::vector<FirewallEntry>> have =
        dirty_ ? absl::FailedPreconditionError("previous apply failed")
               : firewall_.ListEnforced();
    if (have.ok()) {
      absl::flat_hash_set<IpPrefix> have_set;
      have_set.reserve(have->size());
      for (const FirewallEntry& e : *have) {
        have_set.insert(e.prefix);
      }
      absl::flat_hash_set<IpPrefix> want_set;
      want_set.reserve(want.size());
      std::vector<FirewallEntry> adds;
      for (const FirewallEntry& e : want) {
        want_set.insert(e.prefix);
        if (!have_set.contains(e.prefix)) {
          adds.push_back(e);
        }
      }
      std::vector<IpPrefix> removes;
      for (const IpPrefix& p : have_set) {
        if (!want_set.contains(p)) {
          removes.push_back(p);
        }
      }
      std::sort(removes.begin(), removes.end());
      if (!adds.empty() || !removes.empty()) {
        s = firewall_.ApplyDelta(adds, removes);
        if (s.ok()) {
          report.added = adds.size();
          report.removed = removes.size();
          RAMPART_LOG(Warning)
              << firewall_.Name() << ": drift repaired: re-added "
              << adds.size() << ", removed " << removes.size();
        } else {
          RAMPART_LOG(Warning)
              << firewall_.Name() << ": drift repair delta failed: " << Str(s);
        }
      }
    } else {
      RAMPART_LOG(Warning) << firewall_.Name()
                           << ": cannot compare with the backend ("
                           << Str(have.status())
                           << "); re-applying the whole set";
      s = have.status();
    }
    if (!s.ok()) {
      report.full_resync = true;
      metrics_.full_resyncs.Increment();
      s = firewall_.ApplySnapshot(want);
    }
    dirty_ = !s.ok();
  }
  Count(kRepair, s, clock_.Now() - start);
  UpdateGauges();
  if (!s.ok()) {
    return s;
  }
  metrics_.drift_added.Increment(report.added);
  metrics_.drift_removed.Increment(report.removed);
  return report;
}

absl::Status Enforcer::Stop() {
  absl::MutexLock lock(&mu_);
  if (!options_.remove_on_stop) {
    return absl::OkStatus();
  }
  RAMPART_LOG(Info) << firewall_.Name() << ": removing all rules on stop";
  absl::Status s = firewall_.RemoveAll();
  dirty_ = true;  // whatever happened, a later apply starts with a snapshot
  if (s.ok()) {
    for (auto& [p, st] : prefixes_) {
      st.installed = false;
      st.installed_expires.reset();
    }
    installed_count_ = 0;
    UpdateGauges();
  }
  return s;
}

std::optional<absl::Time> Enforcer::NextWakeup() const {
  absl::MutexLock lock(&mu_);
  if (expiries_.empty()) {
    return std::nullopt;
  }
  return expiries_.begin()->first;
}

std::pair<uint64_t, uint64_t> Enforcer::ListRevision() const {
  absl::MutexLock lock(&mu_);
  return {epoch_, revision_};
}

std::vector<BanItem> Enforcer::Items() const {
  absl::MutexLock lock(&mu_);
  std::vector<BanItem> out;
  out.reserve(items_.size());
  for (const auto& [id, item] : items_) {
    out.push_back(item);
  }
  std::sort(out.begin(), out.end(),
            [](const BanItem& a, const BanItem& b) { return a.id < b.id; });
  return out;
}

std::vector<FirewallEntry> Enforcer::InstalledForTest() const {
  absl::MutexLock lock(&mu_);
  std::vector<FirewallEntry> out;
  for (const auto& [p, st] : prefixes_) {
    if (st.installed) {
      out.push_back({p, st.installed_expires});
    }
  }
  return out;
}

}  // namespace rampart::agent
