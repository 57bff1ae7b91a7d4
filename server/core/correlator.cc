#include "server/core/correlator.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "nlohmann/json.hpp"

namespace rampart::server {
namespace {

absl::Duration DerivedHorizon(const CorrelatorOptions& o) {
  if (o.rebuild_horizon > absl::ZeroDuration()) {
    return o.rebuild_horizon;
  }
  const Policy& p = o.policy;
  return std::max({p.half_life * 16, p.server_window, p.account_window,
                   p.prefix_window, p.compromise_lookback});
}

std::string TimeText(absl::Time t) {
  return t == absl::InfiniteFuture()
             ? "never"
             : absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string BanJson(const Ban& b) {
  return nlohmann::json{{"id", b.id},
                        {"prefix", b.prefix.ToString()},
                        {"created", TimeText(b.created)},
                        {"expires", TimeText(b.expires)},
                        {"origin", std::string(BanOriginName(b.origin))},
                        {"level", b.level},
                        {"reason", b.reason},
                        {"actor", b.actor}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string AllowJson(const AllowEntry& a) {
  return nlohmann::json{{"prefix", a.prefix.ToString()},
                        {"expires", a.expires ? TimeText(*a.expires) : "never"},
                        {"comment", a.comment},
                        {"actor", a.actor}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Correlator::Correlator(const CorrelatorOptions& options, Store& store,
                       Clock& clock, BanPublisher& publisher)
    : options_(options),
      horizon_(DerivedHorizon(options)),
      store_(store),
      clock_(clock),
      publisher_(publisher) {}

absl::StatusOr<std::unique_ptr<Correlator>> Correlator::Create(
    const CorrelatorOptions& options, Store& store, Clock& clock,
    BanPublisher& publisher) {
  RETURN_IF_ERROR(ValidatePolicy(options.policy));
  std::unique_ptr<Correlator> c(
      new Correlator(options, store, clock, publisher));
  absl::MutexLock lock(&c->mu_);
  RETURN_IF_ERROR(c->RebuildLocked());
  return c;
}

void Correlator::WarnAboutLimitsLocked(const DetectorStats& before,
                                       absl::Time now) {
  const DetectorStats& after = detector_->stats();
  // At most one warning of each kind per minute: a flood must not flood the
  // log too.
  if (after.bans_capped > before.bans_capped &&
      now - last_cap_warning_ >= absl::Minutes(1)) {
    last_cap_warning_ = now;
    RAMPART_LOG(Warning)
        << "ALERT: agent " << after.last_capped_agent
        << " alone caused more than " << options_.agent_new_bans_per_minute
        << " new bans in a minute; further bans from its evidence alone are "
           "withheld (limits.agent_new_bans_per_minute; "
           "rampart_correlator_bans_withheld_total). A compromised or "
           "misconfigured agent?";
  }
  if (after.bans_refused_protected > before.bans_refused_protected &&
      now - last_protected_warning_ >= absl::Minutes(1)) {
    last_protected_warning_ = now;
    RAMPART_LOG(Warning) << "ALERT: refused to ban " << after.last_protected
                         << ": protected address (a forged flood?)";
  }
}

DetectorStats Correlator::abuse_stats() const {
  absl::MutexLock lock(&mu_);
  DetectorStats s = carried_;
  if (detector_ != nullptr) {
    s.bans_capped += detector_->stats().bans_capped;
    s.bans_refused_protected += detector_->stats().bans_refused_protected;
    s.bans_refused_broad += detector_->stats().bans_refused_broad;
    s.score_evictions += detector_->stats().score_evictions;
    s.account_evictions += detector_->stats().account_evictions;
    s.score_keys_refused += detector_->stats().score_keys_refused;
    s.account_keys_refused += detector_->stats().account_keys_refused;
  }
  return s;
}

TrackedEntries Correlator::tracked_entries() const {
  absl::MutexLock lock(&mu_);
  if (detector_ == nullptr) {
    return {};
  }
  return {.scores = detector_->tracked_keys(),
          .accounts = detector_->tracked_accounts()};
}

absl::Status Correlator::RebuildLocked() {
  const absl::Time now = clock_.Now();
  ASSIGN_OR_RETURN(DurableState state, store_.LoadState(now));
  auto detector = std::make_unique<Detector>(
      options_.policy,
      DetectorLimits{
          .agent_new_bans_per_minute = options_.agent_new_bans_per_minute,
          .protect = options_.protected_addresses,
          .max_score_entries = options_.max_score_entries,
          .max_account_entries = options_.max_account_entries,
          .agent_new_keys_per_minute = options_.agent_new_keys_per_minute});
  detector->Restore(state);
  Decisions ignored;
  size_t replayed = 0;
  RETURN_IF_ERROR(store_.ForEachEvent(
      now - horizon_, absl::InfiniteFuture(), [&](const AuthEvent& e) {
        // Replay each event at its own time (clamped to now): decay is
        // time-invariant, so scores come back exactly, and a score resets at
        // the same event where the live run banned.
        detector->Observe(e, std::min(e.time, now), /*decide=*/false, &ignored);
        ++replayed;
        return absl::OkStatus();
      }));
  RAMPART_LOG(Info) << "correlator rebuilt: revision " << state.revision << ", "
                    << state.active_bans.size() << " active bans, " << replayed
                    << " events replayed over "
                    << absl::FormatDuration(horizon_);
  if (detector_ != nullptr) {
    const DetectorStats& old = detector_->stats();
    carried_.bans_capped += old.bans_capped;
    carried_.bans_refused_protected += old.bans_refused_protected;
    carried_.bans_refused_broad += old.bans_refused_broad;
    carried_.score_evictions += old.score_evictions;
    carried_.account_evictions += old.account_evictions;
    carried_.score_keys_refused += old.score_keys_refused;
    carried_.account_keys_refused += old.account_keys_refused;
  }
  detector_ = std::move(detector);
  needs_rebuild_ = false;
  return absl::OkStatus();
}

void Correlator::AwaitNoGroupInFlightLocked() {
  absl::MutexLock lock(&seq_mu_);
  const auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(seq_mu_) {
    return finished_below_ == next_ticket_;
  };
  seq_mu_.Await(absl::Condition(&idle));
}

absl::Status Correlator::EnsureHealthyLocked() {
  bool group_failed = false;
  {
    absl::MutexLock lock(&seq_mu_);
    group_failed = group_failed_;
  }
  if (!needs_rebuild_ && !group_failed) {
    return absl::OkStatus();
  }
  // Groups in flight were observed on the state being thrown away; let them
  // settle against the store first.
  AwaitNoGroupInFlightLocked();
  needs_rebuild_ = true;
  if (absl::Status s = RebuildLocked(); !s.ok()) {
    return absl::UnavailableError(absl::StrFormat(
        "correlator degraded, store unavailable: %s", s.ToString()));
  }
  absl::MutexLock lock(&seq_mu_);
  group_failed_ = false;
  failed_tickets_.clear();
  return absl::OkStatus();
}

absl::Status Correlator::CommitLocked(CommitRecord record,
                                      Decisions decisions) {
  // Journal revisions must reach the store in order: after every group
  // observed before this call.
  AwaitNoGroupInFlightLocked();
  record.journal = std::move(decisions.journal);
  record.alerts = std::move(decisions.alerts);
  record.accounts = std::move(decisions.accounts);
  if (absl::Status s = store_.Commit(record); !s.ok()) {
    // The detector is ahead of the durable state: rebuild before the next
    // step so nothing unpersisted is ever published or counted twice.
    needs_rebuild_ = true;
    return s;
  }
  if (!record.journal.empty()) {
    publisher_.Publish(record.journal);
  }
  return absl::OkStatus();
}

absl::StatusOr<IngestResult> Correlator::Ingest(
    const std::optional<BatchId>& batch, std::vector<AuthEvent> events) {
  std::vector<IngestBatch> batches;
  batches.push_back(IngestBatch{.id = batch, .events = std::move(events)});
  return std::move(IngestMany(std::move(batches)).front());
}

std::vector<absl::StatusOr<IngestResult>> Correlator::IngestMany(
    std::vector<IngestBatch> batches) {
  const size_t n = batches.size();
  const auto fail_all = [n](const absl::Status& s) {
    return std::vector<absl::StatusOr<IngestResult>>(n, s);
  };
  if (n == 0) {
    return {};
  }
  using Key = std::tuple<std::string, uint64_t, uint64_t>;
  const auto key_of = [](const BatchId& id) {
    return Key(id.agent_id, id.spool_epoch, id.sequence);
  };
  constexpr uint64_t kNoTicket = static_cast<uint64_t>(-1);
  // Phase 1, under mu_: duplicates, observation, a ticket.
  std::vector<bool> duplicate(n, false);
  // For a batch whose id an earlier group is still committing: that group.
  std::vector<uint64_t> settled_by(n, kNoTicket);
  std::vector<IngestResult> results(n);
  CommitRecord record;
  // Position of batch i's id in record.batches (kNone: no id, duplicate).
  constexpr size_t kNone = static_cast<size_t>(-1);
  std::vector<size_t> commit_pos(n, kNone);
  uint64_t ticket = 0;
  uint64_t revision = 0;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = EnsureHealthyLocked(); !s.ok()) {
      return fail_all(s);
    }
    // 1a. Repeated within the call (the first occurrence wins), being
    // committed by an earlier group, then already committed (one store call
    // for all the ids).
    std::vector<size_t> with_id;  // indexes of batches to look up
    std::vector<BatchId> ids;
    {
      absl::flat_hash_set<std::tuple<std::string_view, uint64_t, uint64_t>>
          seen;
      absl::MutexLock seq_lock(&seq_mu_);
      for (size_t i = 0; i < n; ++i) {
        if (!batches[i].id.has_value()) {
          continue;
        }
        const BatchId& id = *batches[i].id;
        if (!seen.emplace(id.agent_id, id.spool_epoch, id.sequence).second) {
          duplicate[i] = true;
          continue;
        }
        if (auto it = pending_ids_.find(key_of(id)); it != pending_ids_.end()) {
          duplicate[i] = true;
          settled_by[i] = it->second;
          continue;
        }
        with_id.push_back(i);
        ids.push_back(id);
      }
    }
    if (!ids.empty()) {
      absl::StatusOr<std::vector<bool>> stored = store_.HasBatches(ids);
      if (!stored.ok()) {
        return fail_all(stored.status());
      }
      if (stored->size() != ids.size()) {
        return fail_all(absl::InternalError(
            "Store::HasBatches returned the wrong number of results"));
      }
      for (size_t k = 0; k < with_id.size(); ++k) {
        duplicate[with_id[k]] = (*stored)[k];
      }
    }
    // 1b. Observe every new batch, in order, and count what each decided.
    const absl::Time now = clock_.Now();
    Decisions decisions;
    for (size_t i = 0; i < n; ++i) {
      IngestResult& r = results[i];
      if (duplicate[i]) {
        r.duplicate = true;
        continue;
      }
      const size_t journal_before = decisions.journal.size();
      const size_t alerts_before = decisions.alerts.size();
      const size_t accounts_before = decisions.accounts.size();
      const DetectorStats before = detector_->stats();
      for (const AuthEvent& e : batches[i].events) {
        detector_->Observe(e, now, /*decide=*/true, &decisions);
      }
      WarnAboutLimitsLocked(before, now);
      r.events = batches[i].events.size();
      for (size_t j = journal_before; j < decisions.journal.size(); ++j) {
        r.new_bans += decisions.journal[j].op == JournalEntry::Op::kAdd ? 1 : 0;
      }
      r.alerts = decisions.alerts.size() - alerts_before;
      r.accounts = decisions.accounts.size() - accounts_before;
      if (batches[i].id.has_value()) {
        commit_pos[i] = record.batches.size();
        record.batches.push_back(*batches[i].id);
      }
      if (record.events.empty()) {
        record.events = std::move(batches[i].events);
      } else {
        record.events.insert(record.events.end(),
                             std::make_move_iterator(batches[i].events.begin()),
                             std::make_move_iterator(batches[i].events.end()));
      }
    }
    record.journal = std::move(decisions.journal);
    record.alerts = std::move(decisions.alerts);
    record.accounts = std::move(decisions.accounts);
    revision = detector_->revision();
    absl::MutexLock seq_lock(&seq_mu_);
    ticket = next_ticket_++;
    for (const BatchId& id : record.batches) {
      pending_ids_.emplace(key_of(id), ticket);
    }
  }

  // Phase 2, without mu_: the transaction. A group that changes the ban list
  // waits for every earlier group (revisions reach the store in order) and
  // gives up if one of them failed (its revisions would not follow).
  const auto turn = [this, ticket]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(seq_mu_) {
    return finished_below_ == ticket;
  };
  const bool has_journal = !record.journal.empty();
  absl::Status committed = absl::OkStatus();
  bool earlier_failed = false;
  {
    absl::MutexLock seq_lock(&seq_mu_);
    if (has_journal) {
      seq_mu_.Await(absl::Condition(&turn));
    }
    earlier_failed = group_failed_;
  }
  if (earlier_failed) {
    committed = absl::UnavailableError(
        "an earlier group failed to commit; the correlator rebuilds from the "
        "store (retry)");
  } else if (!record.empty()) {  // else all were duplicates
    committed = store_.Commit(record);
  }
  // Another process may have committed one of these batches between our
  // check and our commit (or some other unique key clashed). Nothing of ours
  // was written; only the store can tell which batches are now duplicates.
  std::optional<absl::StatusOr<std::vector<bool>>> conflict_check;
  std::vector<BatchId> to_check;
  const bool had_ids = !record.batches.empty();
  if (!committed.ok() && committed.code() == absl::StatusCode::kAlreadyExists &&
      had_ids) {
    for (size_t i = 0; i < n; ++i) {
      if (commit_pos[i] != kNone) {
        to_check.push_back(*batches[i].id);
      }
    }
    conflict_check = store_.HasBatches(to_check);
  }

  // Phase 3, in ticket order: settle, publish, release.
  std::vector<bool> earlier_group_failed(n, false);
  {
    absl::MutexLock seq_lock(&seq_mu_);
    seq_mu_.Await(absl::Condition(&turn));
    for (size_t i = 0; i < n; ++i) {
      if (settled_by[i] != kNoTicket) {
        earlier_group_failed[i] = failed_tickets_.contains(settled_by[i]);
      }
    }
    for (const BatchId& id : record.batches) {
      pending_ids_.erase(key_of(id));
    }
    if (!committed.ok()) {
      // The detector is ahead of the durable state: the next group rebuilds
      // first, so nothing unpersisted is ever published or counted twice.
      group_failed_ = true;
      failed_tickets_.insert(ticket);
    }
  }
  // Still this group's turn (later groups wait for finished_below_), so
  // publications stay in revision order; no lock held while publishing.
  if (committed.ok() && has_journal) {
    publisher_.Publish(record.journal);
  }
  {
    absl::MutexLock seq_lock(&seq_mu_);
    ++finished_below_;
    if (finished_below_ == next_ticket_) {
      failed_tickets_.clear();
    }
  }

  std::vector<absl::StatusOr<IngestResult>> out;
  out.reserve(n);
  if (!committed.ok()) {
    const absl::Status retry =
        conflict_check.has_value()
            ? absl::AbortedError(absl::StrFormat(
                  "commit conflict, batch not stored (retry): %s",
                  committed.ToString()))
            : committed;
    for (size_t i = 0; i < n; ++i) {
      const bool now_duplicate =
          (duplicate[i] && !earlier_group_failed[i]) ||
          (commit_pos[i] != kNone && conflict_check.has_value() &&
           conflict_check->ok() &&
           (*conflict_check)->size() == to_check.size() &&
           (**conflict_check)[commit_pos[i]]);
      if (now_duplicate && conflict_check.has_value()) {
        out.push_back(IngestResult{.duplicate = true});
      } else {
        out.push_back(retry);
      }
    }
    return out;
  }
  for (size_t i = 0; i < n; ++i) {
    if (earlier_group_failed[i]) {
      out.push_back(absl::UnavailableError(
          "the group that was committing this batch failed (retry)"));
      continue;
    }
    results[i].revision = revision;
    out.push_back(std::move(results[i]));
  }
  return out;
}

absl::StatusOr<Ban> Correlator::AddBan(const IpPrefix& prefix,
                                       std::optional<absl::Duration> duration,
                                       std::string reason, std::string actor,
                                       BanOrigin origin, std::string peer) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureHealthyLocked());
  const absl::Time now = clock_.Now();
  if (duration.has_value() && *duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("ban duration must be positive");
  }
  const absl::Time expires =
      duration.has_value() ? now + *duration : absl::InfiniteFuture();
  return AddBanLocked(prefix, now, expires, std::move(reason), std::move(actor),
                      origin, std::move(peer));
}

absl::StatusOr<Ban> Correlator::AddBanUntil(const IpPrefix& prefix,
                                            absl::Time expires,
                                            std::string reason,
                                            std::string actor, BanOrigin origin,
                                            std::string peer) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureHealthyLocked());
  const absl::Time now = clock_.Now();
  if (expires <= now) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "ban expiry %s is not in the future",
        absl::FormatTime(absl::RFC3339_full, expires, absl::UTCTimeZone())));
  }
  return AddBanLocked(prefix, now, expires, std::move(reason), std::move(actor),
                      origin, std::move(peer));
}

absl::StatusOr<Ban> Correlator::AddBanLocked(
    const IpPrefix& prefix, absl::Time now, absl::Time expires,
    std::string reason, std::string actor, BanOrigin origin, std::string peer) {
  std::optional<Ban> before;
  if (auto covering = detector_->CoveringBan(prefix.address(), now);
      covering && covering->prefix == prefix) {
    before = covering;
  }
  Decisions decisions;
  ASSIGN_OR_RETURN(Ban ban, detector_->AddBan(prefix, expires, origin, reason,
                                              actor, now, &decisions));
  CommitRecord record;
  record.audit.push_back(AuditRecord{.time = now,
                                     .actor = actor,
                                     .action = "ban.add",
                                     .target = prefix.ToString(),
                                     .before = before ? BanJson(*before) : "",
                                     .after = BanJson(ban),
                                     .peer = peer});
  RETURN_IF_ERROR(CommitLocked(std::move(record), std::move(decisions)));
  return ban;
}

absl::StatusOr<Ban> Correlator::RemoveBan(const IpPrefix& prefix,
                                          std::string reason, std::string actor,
                                          std::string peer) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureHealthyLocked());
  const absl::Time now = clock_.Now();
  Decisions decisions;
  ASSIGN_OR_RETURN(
      Ban ban, detector_->RemoveBan(prefix, reason, actor, now, &decisions));
  CommitRecord record;
  record.audit.push_back(AuditRecord{.time = now,
                                     .actor = actor,
                                     .action = "ban.remove",
                                     .target = prefix.ToString(),
                                     .before = BanJson(ban),
                                     .after = "",
                                     .peer = peer});
  RETURN_IF_ERROR(CommitLocked(std::move(record), std::move(decisions)));
  return ban;
}

absl::Status Correlator::AddAllow(AllowEntry entry, std::string actor,
                                  std::string peer, bool broad) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureHealthyLocked());
  const absl::Time now = clock_.Now();
  entry.actor = actor;
  entry.created = now;
  std::string before;
  for (const AllowEntry& a : detector_->allowlist()) {
    if (a.prefix == entry.prefix) {
      before = AllowJson(a);
    }
  }
  detector_->PutAllow(entry);
  CommitRecord record;
  record.allow_put.push_back(entry);
  record.audit.push_back(
      AuditRecord{.time = now,
                  .actor = actor,
                  .action = broad ? "allow.add.broad" : "allow.add",
                  .target = entry.prefix.ToString(),
                  .before = before,
                  .after = AllowJson(entry),
                  .peer = peer});
  return CommitLocked(std::move(record), Decisions{});
}

absl::Status Correlator::RemoveAllow(const IpPrefix& prefix, std::string actor,
                                     std::string peer) {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(EnsureHealthyLocked());
  const absl::Time now = clock_.Now();
  ASSIGN_OR_RETURN(AllowEntry removed, detector_->DeleteAllow(prefix));
  CommitRecord record;
  record.allow_delete.push_back(prefix);
  record.audit.push_back(AuditRecord{.time = now,
                                     .actor = actor,
                                     .action = "allow.remove",
                                     .target = prefix.ToString(),
                                     .before = AllowJson(removed),
                                     .after = "",
                                     .peer = peer});
  return CommitLocked(std::move(record), Decisions{});
}

void Correlator::Expire() {
  absl::MutexLock lock(&mu_);
  if (!needs_rebuild_) {
    detector_->Expire(clock_.Now());
  }
}

absl::StatusOr<int64_t> Correlator::PruneEvents(absl::Duration retention) {
  const absl::Duration keep = std::max(retention, horizon_);
  return store_.PruneEvents(clock_.Now() - keep);
}

uint64_t Correlator::revision() const {
  absl::MutexLock lock(&mu_);
  return detector_->revision();
}

std::vector<Ban> Correlator::ActiveBans() const {
  absl::MutexLock lock(&mu_);
  return detector_->ActiveBans(clock_.Now());
}

std::vector<AllowEntry> Correlator::Allowlist() const {
  absl::MutexLock lock(&mu_);
  return detector_->allowlist();
}

KeyInfo Correlator::Explain(const IpAddress& ip) const {
  absl::MutexLock lock(&mu_);
  return detector_->Explain(ip, clock_.Now());
}

bool Correlator::degraded() const {
  absl::MutexLock lock(&mu_);
  absl::MutexLock seq_lock(&seq_mu_);
  return needs_rebuild_ || group_failed_;
}

absl::StatusOr<ReplayReport> ReplayPolicies(
    Store& store, absl::Time from, absl::Time to, const Policy& live,
    const Policy& candidate, const std::vector<AllowEntry>& allowlist) {
  RETURN_IF_ERROR(ValidatePolicy(live));
  RETURN_IF_ERROR(ValidatePolicy(candidate));
  if (to <= from) {
    return absl::InvalidArgumentError("replay range is empty (to <= from)");
  }
  Detector a(live), b(candidate);
  for (const AllowEntry& e : allowlist) {
    a.PutAllow(e);
    b.PutAllow(e);
  }
  Decisions da, db;
  ReplayReport report;
  absl::Time last_expire = from;
  RETURN_IF_ERROR(store.ForEachEvent(from, to, [&](const AuthEvent& e) {
    a.Observe(e, e.time, true, &da);
    b.Observe(e, e.time, true, &db);
    ++report.events;
    if (e.time - last_expire > absl::Hours(1)) {
      a.Expire(e.time);
      b.Expire(e.time);
      last_expire = e.time;
    }
    return absl::OkStatus();
  }));
  absl::flat_hash_map<IpPrefix, Ban> live_bans, candidate_bans;
  for (const JournalEntry& j : da.journal) {
    if (j.op == JournalEntry::Op::kAdd) live_bans.emplace(j.ban.prefix, j.ban);
  }
  for (const JournalEntry& j : db.journal) {
    if (j.op == JournalEntry::Op::kAdd) {
      candidate_bans.emplace(j.ban.prefix, j.ban);
    }
  }
  for (const auto& [prefix, ban] : candidate_bans) {
    if (live_bans.contains(prefix)) {
      ++report.both;
    } else {
      report.only_candidate.push_back(ban);
    }
  }
  for (const auto& [prefix, ban] : live_bans) {
    if (!candidate_bans.contains(prefix)) {
      report.only_live.push_back(ban);
    }
  }
  const auto by_prefix = [](const Ban& x, const Ban& y) {
    return x.prefix < y.prefix;
  };
  std::sort(report.only_candidate.begin(), report.only_candidate.end(),
            by_prefix);
  std::sort(report.only_live.begin(), report.only_live.end(), by_prefix);
  return report;
}

}  // namespace rampart::server
