#pragma once

// GatedStore wraps a Store and can hold Commit() calls at a gate, so tests
// can keep the correlator busy deterministically (fill the ingest queue,
// drain with batches in flight) without sleeping.
// Thread-safety: thread-safe.

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/store.h"

namespace rampart::server {

class GatedStore final : public Store {
 public:
  explicit GatedStore(Store& inner) : inner_(inner) {}

  // From now on Commit() blocks until Open().
  void Close() {
    absl::MutexLock lock(&mu_);
    closed_ = true;
  }
  void Open() {
    absl::MutexLock lock(&mu_);
    closed_ = false;
  }
  // Only the next Commit() to enter waits (until ReleaseHeld()); the others
  // pass (unless Close()d).
  void HoldNextCommit() {
    absl::MutexLock lock(&mu_);
    hold_next_ = true;
    held_released_ = false;
  }
  void ReleaseHeld() {
    absl::MutexLock lock(&mu_);
    held_released_ = true;
  }
  // Waits until `n` Commit() calls in total have returned from the wrapped
  // store, at most `timeout`. Returns whether they did.
  bool WaitForCommitsDone(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return done_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  }
  // Waits until `n` Commit() calls in total have entered (blocked at the
  // gate or not), at most `timeout`. Returns whether they did.
  bool WaitForCommitsEntered(int n, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    const auto entered = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return entered_ >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&entered), timeout);
  }
  int commits_entered() const {
    absl::MutexLock lock(&mu_);
    return entered_;
  }

  // Store
  absl::Status Commit(const CommitRecord& r) override {
    {
      absl::MutexLock lock(&mu_);
      ++entered_;
      if (hold_next_) {
        hold_next_ = false;
        mu_.Await(absl::Condition(&held_released_));
      }
      mu_.Await(absl::Condition(
          +[](bool* closed) { return !*closed; }, &closed_));
    }
    absl::Status s = inner_.Commit(r);
    absl::MutexLock lock(&mu_);
    ++done_;
    return s;
  }
  absl::StatusOr<std::vector<bool>> HasBatches(
      const std::vector<BatchId>& b) override {
    return inner_.HasBatches(b);
  }
  absl::StatusOr<bool> HasBatch(const BatchId& b) override {
    return inner_.HasBatch(b);
  }
  absl::StatusOr<DurableState> LoadState(absl::Time now) override {
    return inner_.LoadState(now);
  }
  absl::StatusOr<std::vector<JournalEntry>> JournalSince(
      uint64_t after, size_t limit) override {
    return inner_.JournalSince(after, limit);
  }
  absl::StatusOr<uint64_t> BanListEpoch() override {
    return inner_.BanListEpoch();
  }
  absl::StatusOr<uint64_t> OldestRevision() override {
    return inner_.OldestRevision();
  }
  absl::StatusOr<int64_t> PruneJournal(uint64_t keep_from) override {
    return inner_.PruneJournal(keep_from);
  }
  absl::Status ForEachEvent(
      absl::Time from, absl::Time to,
      const std::function<absl::Status(const AuthEvent&)>& fn) override {
    return inner_.ForEachEvent(from, to, fn);
  }
  absl::StatusOr<std::vector<AuthEvent>> EventsForPrefix(
      const IpPrefix& p, absl::Time since, size_t limit) override {
    return inner_.EventsForPrefix(p, since, limit);
  }
  absl::StatusOr<int64_t> PruneEvents(absl::Time before) override {
    return inner_.PruneEvents(before);
  }
  absl::StatusOr<std::vector<Ban>> BansFor(const IpPrefix& p) override {
    return inner_.BansFor(p);
  }
  absl::StatusOr<std::vector<AccountAttack>> ListAccounts(
      absl::Time since, size_t limit) override {
    return inner_.ListAccounts(since, limit);
  }
  absl::StatusOr<std::vector<CompromiseAlert>> ListAlerts(
      absl::Time since, size_t limit) override {
    return inner_.ListAlerts(since, limit);
  }
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(absl::Time since,
                                                     size_t limit) override {
    return inner_.ListAudit(since, limit);
  }

 private:
  Store& inner_;
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_next_ ABSL_GUARDED_BY(mu_) = false;
  bool held_released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rampart::server
