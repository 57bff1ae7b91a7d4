#pragma once

// InstrumentedStore: a Store decorator that records the latency of every call
// (rampart_store_seconds{op}) and its failures (rampart_store_errors_total
// {op,code}) in the metrics registry, and remembers the outcome of the last
// call for readiness. The server wraps its real store in one. A StoreWrapper:
// a call added to Store is forwarded (uninstrumented) until it is listed
// here.
//
// Thread-safety: as thread-safe as the wrapped store (the decorator itself
// only touches atomics).

#include <atomic>
#include <memory>
#include <string>

#include "common/metrics.h"
#include "server/store/store_wrapper.h"

namespace rampart::server {

class InstrumentedStore final : public StoreWrapper {
 public:
  // `inner` and `registry` must outlive this object.
  InstrumentedStore(Store& inner, metrics::Registry& registry);

  // False after a call failed with kUnavailable/kInternal/kUnknown and no
  // call succeeded since.
  bool healthy() const { return healthy_.load(std::memory_order_relaxed); }

  // Store
  absl::Status Commit(const CommitRecord& record) override;
  absl::StatusOr<bool> HasBatch(const BatchId& batch) override;
  // Store's default: one instrumented HasBatch() per batch (as before the
  // StoreWrapper base; the wrapped store's one-query HasBatches is not used).
  absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& batches) override;
  absl::StatusOr<DurableState> LoadState(absl::Time now) override;
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(uint64_t after,
                                                         size_t limit) override;
  absl::StatusOr<uint64_t> BanListEpoch() override;
  absl::StatusOr<uint64_t> OldestRevision() override;
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override;
  absl::Status ForEachEvent(
      absl::Time from, absl::Time to,
      const std::function<absl::Status(const AuthEvent&)>& fn) override;
  absl::StatusOr<std::vector<AuthEvent>> EventsForPrefix(const IpPrefix& prefix,
                                                         absl::Time since,
                                                         size_t limit) override;
  absl::StatusOr<int64_t> PruneEvents(absl::Time before) override;
  absl::StatusOr<std::vector<Ban>> BansFor(const IpPrefix& prefix) override;
  absl::StatusOr<std::vector<AccountAttack>> ListAccounts(
      absl::Time since, size_t limit) override;
  absl::StatusOr<std::vector<CompromiseAlert>> ListAlerts(
      absl::Time since, size_t limit) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     size_t limit) override;
  absl::Status PutApiToken(const ApiToken& token) override;
  absl::StatusOr<std::optional<ApiToken>> FindApiToken(
      std::string_view hash) override;
  absl::StatusOr<std::vector<ApiToken>> ListApiTokens() override;
  absl::Status RevokeApiToken(std::string_view name, absl::Time at) override;

 private:
  class Op;

  metrics::Registry& registry_;
  std::atomic<bool> healthy_{true};
};

}  // namespace rampart::server
