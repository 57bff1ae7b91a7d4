#pragma once

// FlakyStore wraps a Store and fails on demand (fault injection for tests).
// Thread-safety: as the wrapped store; the switches are atomics.

#include <atomic>

#include "server/core/ban_publisher.h"
#include "server/store/store_wrapper.h"

namespace rampart::server {

class FlakyStore final : public StoreWrapper {
 public:
  explicit FlakyStore(Store& inner) : StoreWrapper(inner) {}

  // The next n Commit() calls fail with kUnavailable, writing nothing.
  void FailNextCommits(int n) { fail_commits_ = n; }
  // While set, every call fails with kUnavailable (database down).
  void SetDown(bool down) { down_ = down; }
  int commits() const { return commits_; }
  // FindApiToken calls so far (also those failed while down).
  int token_lookups() const { return token_lookups_; }

  // Store
  absl::Status Commit(const CommitRecord& r) override {
    if (down_ || fail_commits_.fetch_sub(1) > 0) {
      return Down();
    }
    ++commits_;
    return StoreWrapper::Commit(r);
  }
  absl::StatusOr<bool> HasBatch(const BatchId& b) override {
    if (down_) return Down();
    return StoreWrapper::HasBatch(b);
  }
  absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& b) override {
    if (down_) return Down();
    return StoreWrapper::HasBatches(b);
  }
  absl::StatusOr<DurableState> LoadState(absl::Time now) override {
    if (down_) return Down();
    return StoreWrapper::LoadState(now);
  }
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(
      uint64_t after, size_t limit) override {
    if (down_) return Down();
    return StoreWrapper::JournalSince(after, limit);
  }
  absl::StatusOr<uint64_t> BanListEpoch() override {
    if (down_) return Down();
    return StoreWrapper::BanListEpoch();
  }
  absl::StatusOr<uint64_t> OldestRevision() override {
    if (down_) return Down();
    return StoreWrapper::OldestRevision();
  }
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override {
    if (down_) return Down();
    return StoreWrapper::PruneJournal(keep_from);
  }
  absl::Status ForEachEvent(
      absl::Time from, absl::Time to,
      const std::function<absl::Status(const AuthEvent&)>& fn) override {
    if (down_) return Down();
    return StoreWrapper::ForEachEvent(from, to, fn);
  }
  absl::StatusOr<std::vector<AuthEvent>> EventsForPrefix(
      const IpPrefix& p, absl::Time since, size_t limit) override {
    if (down_) return Down();
    return StoreWrapper::EventsForPrefix(p, since, limit);
  }
  absl::StatusOr<int64_t> PruneEvents(absl::Time before) override {
    if (down_) return Down();
    return StoreWrapper::PruneEvents(before);
  }
  absl::StatusOr<std::vector<Ban>> BansFor(const IpPrefix& p) override {
    if (down_) return Down();
    return StoreWrapper::BansFor(p);
  }
  absl::StatusOr<std::vector<AccountAttack>> ListAccounts(
      absl::Time since, size_t limit) override {
    if (down_) return Down();
    return StoreWrapper::ListAccounts(since, limit);
  }
  absl::StatusOr<std::vector<CompromiseAlert>> ListAlerts(
      absl::Time since, size_t limit) override {
    if (down_) return Down();
    return StoreWrapper::ListAlerts(since, limit);
  }
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     size_t limit) override {
    if (down_) return Down();
    return StoreWrapper::ListAudit(since, limit);
  }
  absl::Status PutApiToken(const ApiToken& token) override {
    if (down_) return Down();
    return StoreWrapper::PutApiToken(token);
  }
  absl::StatusOr<std::optional<ApiToken>> FindApiToken(
      std::string_view hash) override {
    ++token_lookups_;
    if (down_) return Down();
    return StoreWrapper::FindApiToken(hash);
  }
  absl::StatusOr<std::vector<ApiToken>> ListApiTokens() override {
    if (down_) return Down();
    return StoreWrapper::ListApiTokens();
  }
  absl::Status RevokeApiToken(std::string_view name, absl::Time at) override {
    if (down_) return Down();
    return StoreWrapper::RevokeApiToken(name, at);
  }

 private:
  static absl::Status Down() {
    return absl::UnavailableError("injected: database unavailable");
  }
  std::atomic<int> fail_commits_{0};
  std::atomic<bool> down_{false};
  std::atomic<int> commits_{0};
  std::atomic<int> token_lookups_{0};
};

// Records what a Correlator published.
class RecordingPublisher final : public BanPublisher {
 public:
  void Publish(const std::vector<JournalEntry>& entries) override {
    published.insert(published.end(), entries.begin(), entries.end());
  }
  std::vector<JournalEntry> published;
};

}  // namespace rampart::server
