#pragma once

// StoreWrapper: a Store that forwards every call to another Store (leveldb's
// EnvWrapper). A decorator that changes one behaviour (instrumentation,
// fault injection, a gate for tests) derives from it and overrides only the
// calls it changes.
//
// NOTE: every Store method is forwarded, the ones with a default in Store
// (HasBatches, the API-token calls) included, so a wrapper answers what the
// wrapped store answers. A wrapper that wants Store's default for one of them
// calls it explicitly (`return Store::HasBatches(batches);`). When a method
// is added to Store, add its forwarding here.
//
// Thread-safety: as thread-safe as the wrapped store (the wrapper itself has
// no state besides the constant reference).

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/core/store.h"

namespace rampart::server {

class StoreWrapper : public Store {
 public:
  // `target` must outlive this object.
  explicit StoreWrapper(Store& target) : target_(target) {}

  // The store every call is forwarded to.
  Store& target() const { return target_; }

  // Store
  absl::Status Commit(const CommitRecord& record) override {
    return target_.Commit(record);
  }
  absl::StatusOr<bool> HasBatch(const BatchId& batch) override {
    return target_.HasBatch(batch);
  }
  absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& batches) override {
    return target_.HasBatches(batches);
  }
  absl::StatusOr<DurableState> LoadState(absl::Time now) override {
    return target_.LoadState(now);
  }
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(
      uint64_t after, size_t limit) override {
    return target_.JournalSince(after, limit);
  }
  absl::StatusOr<uint64_t> BanListEpoch() override {
    return target_.BanListEpoch();
  }
  absl::StatusOr<uint64_t> OldestRevision() override {
    return target_.OldestRevision();
  }
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override {
    return target_.PruneJournal(keep_from);
  }
  absl::Status ForEachEvent(
      absl::Time from, absl::Time to,
      const std::function<absl::Status(const AuthEvent&)>& fn) override {
    return target_.ForEachEvent(from, to, fn);
  }
  absl::StatusOr<std::vector<AuthEvent>> EventsForPrefix(
      const IpPrefix& prefix, absl::Time since, size_t limit) override {
    return target_.EventsForPrefix(prefix, since, limit);
  }
  absl::StatusOr<int64_t> PruneEvents(absl::Time before) override {
    return target_.PruneEvents(before);
  }
  absl::StatusOr<std::vector<Ban>> BansFor(const IpPrefix& prefix) override {
    return target_.BansFor(prefix);
  }
  absl::StatusOr<std::vector<AccountAttack>> ListAccounts(
      absl::Time since, size_t limit) override {
    return target_.ListAccounts(since, limit);
  }
  absl::StatusOr<std::vector<CompromiseAlert>> ListAlerts(
      absl::Time since, size_t limit) override {
    return target_.ListAlerts(since, limit);
  }
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     size_t limit) override {
    return target_.ListAudit(since, limit);
  }
  absl::Status PutApiToken(const ApiToken& token) override {
    return target_.PutApiToken(token);
  }
  absl::StatusOr<std::optional<ApiToken>> FindApiToken(
      std::string_view hash) override {
    return target_.FindApiToken(hash);
  }
  absl::StatusOr<std::vector<ApiToken>> ListApiTokens() override {
    return target_.ListApiTokens();
  }
  absl::Status RevokeApiToken(std::string_view name, absl::Time at) override {
    return target_.RevokeApiToken(name, at);
  }

 private:
  Store& target_;
};

}  // namespace rampart::server
