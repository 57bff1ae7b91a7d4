#include "server/app/instrumented_store.h"

#include <chrono>

#include "absl/status/status.h"

namespace rampart::server {

// Times one call. Uses the monotonic clock: this measures the process, not
// domain time, so it does not go through the injected Clock.
class InstrumentedStore::Op {
 public:
  Op(InstrumentedStore& store, const char* name)
      : store_(store), name_(name), start_(std::chrono::steady_clock::now()) {}

  template <typename T>
  T Done(T result) {
    const std::chrono::duration<double> took =
        std::chrono::steady_clock::now() - start_;
    store_.registry_
        .GetHistogram("rampart_store_seconds",
                      "Latency of store calls by operation.", {{"op", name_}})
        .Observe(took.count());
    absl::Status status = StatusOf(result);
    if (!status.ok()) {
      store_.registry_
          .GetCounter("rampart_store_errors_total",
                      "Failed store calls by operation and status code.",
                      {{"op", name_},
                       {"code", absl::StatusCodeToString(status.code())}})
          .Increment();
    }
    const absl::StatusCode code = status.code();
    if (code == absl::StatusCode::kUnavailable ||
        code == absl::StatusCode::kInternal ||
        code == absl::StatusCode::kUnknown) {
      store_.healthy_.store(false, std::memory_order_relaxed);
    } else {
      store_.healthy_.store(true, std::memory_order_relaxed);
    }
    return result;
  }

 private:
  static absl::Status StatusOf(const absl::Status& s) { return s; }
  template <typename U>
  static absl::Status StatusOf(const absl::StatusOr<U>& s) {
    return s.status();
  }

  InstrumentedStore& store_;
  const char* name_;
  const std::chrono::steady_clock::time_point start_;
};

InstrumentedStore::InstrumentedStore(Store& inner, metrics::Registry& registry)
    : StoreWrapper(inner), registry_(registry) {}

absl::Status InstrumentedStore::Commit(const CommitRecord& record) {
  Op op(*this, "commit");
  return op.Done(target().Commit(record));
}
absl::StatusOr<bool> InstrumentedStore::HasBatch(const BatchId& batch) {
  Op op(*this, "has_batch");
  return op.Done(target().HasBatch(batch));
}
absl::StatusOr<std::vector<bool>> InstrumentedStore::HasBatches(
    const std::vector<BatchId>& batches) {
  return Store::HasBatches(batches);
}
absl::StatusOr<DurableState> InstrumentedStore::LoadState(absl::Time now) {
  Op op(*this, "load_state");
  return op.Done(target().LoadState(now));
}
absl::StatusOr<std::vector<JournalEntry>> InstrumentedStore::JournalSince(
    uint64_t after, size_t limit) {
  Op op(*this, "journal_since");
  return op.Done(target().JournalSince(after, limit));
}
absl::StatusOr<uint64_t> InstrumentedStore::BanListEpoch() {
  Op op(*this, "ban_list_epoch");
  return op.Done(target().BanListEpoch());
}
absl::StatusOr<uint64_t> InstrumentedStore::OldestRevision() {
  Op op(*this, "oldest_revision");
  return op.Done(target().OldestRevision());
}
absl::StatusOr<int64_t> InstrumentedStore::PruneJournal(uint64_t keep_from) {
  Op op(*this, "prune_journal");
  return op.Done(target().PruneJournal(keep_from));
}
absl::Status InstrumentedStore::ForEachEvent(
    absl::Time from, absl::Time to,
    const std::function<absl::Status(const AuthEvent&)>& fn) {
  Op op(*this, "for_each_event");
  return op.Done(target().ForEachEvent(from, to, fn));
}
absl::StatusOr<std::vector<AuthEvent>> InstrumentedStore::EventsForPrefix(
    const IpPrefix& prefix, absl::Time since, size_t limit) {
  Op op(*this, "events_for_prefix");
  return op.Done(target().EventsForPrefix(prefix, since, limit));
}
absl::StatusOr<int64_t> InstrumentedStore::PruneEvents(absl::Time before) {
  Op op(*this, "prune_events");
  return op.Done(target().PruneEvents(before));
}
absl::StatusOr<std::vector<Ban>> InstrumentedStore::BansFor(
    const IpPrefix& prefix) {
  Op op(*this, "bans_for");
  return op.Done(target().BansFor(prefix));
}
absl::StatusOr<std::vector<AccountAttack>> InstrumentedStore::ListAccounts(
    absl::Time since, size_t limit) {
  Op op(*this, "list_accounts");
  return op.Done(target().ListAccounts(since, limit));
}
absl::StatusOr<std::vector<CompromiseAlert>> InstrumentedStore::ListAlerts(
    absl::Time since, size_t limit) {
  Op op(*this, "list_alerts");
  return op.Done(target().ListAlerts(since, limit));
}
absl::StatusOr<std::vector<AuditRecord>> InstrumentedStore::ListAudit(
    absl::Time since, size_t limit) {
  Op op(*this, "list_audit");
  return op.Done(target().ListAudit(since, limit));
}
absl::Status InstrumentedStore::PutApiToken(const ApiToken& token) {
  Op op(*this, "put_api_token");
  return op.Done(target().PutApiToken(token));
}
absl::StatusOr<std::optional<ApiToken>> InstrumentedStore::FindApiToken(
    std::string_view hash) {
  Op op(*this, "find_api_token");
  return op.Done(target().FindApiToken(hash));
}
absl::StatusOr<std::vector<ApiToken>> InstrumentedStore::ListApiTokens() {
  Op op(*this, "list_api_tokens");
  return op.Done(target().ListApiTokens());
}
absl::Status InstrumentedStore::RevokeApiToken(std::string_view name,
                                               absl::Time at) {
  Op op(*this, "revoke_api_token");
  return op.Done(target().RevokeApiToken(name, at));
}

}  // namespace rampart::server
