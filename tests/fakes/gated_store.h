#pragma once

// GatedStore wraps a Store (StoreWrapper: everything else is forwarded) and
// can hold Commit() calls at a gate, so tests
// can keep the correlator busy deterministically (fill the ingest queue,
// drain with batches in flight) without sleeping.
// Thread-safety: thread-safe.

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/store/store_wrapper.h"

namespace rampart::server {

class GatedStore final : public StoreWrapper {
 public:
  explicit GatedStore(Store& inner) : StoreWrapper(inner) {}

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
    absl::Status s = StoreWrapper::Commit(r);
    absl::MutexLock lock(&mu_);
    ++done_;
    return s;
  }

 private:
  mutable absl::Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  int entered_ ABSL_GUARDED_BY(mu_) = 0;
  int done_ ABSL_GUARDED_BY(mu_) = 0;
  bool hold_next_ ABSL_GUARDED_BY(mu_) = false;
  bool held_released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rampart::server
