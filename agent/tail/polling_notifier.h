#pragma once

// PollingNotifier: a ChangeNotifier that reports "maybe changed" once per
// period. Thread-safety: see ChangeNotifier.

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agent/tail/change_notifier.h"

namespace rampart::agent {

class PollingNotifier final : public ChangeNotifier {
 public:
  // `interval` >= 0; zero makes Wait return at once (tests).
  explicit PollingNotifier(absl::Duration interval) : interval_(interval) {}

  // ChangeNotifier
  absl::Status Watch(const std::string& path) override;
  // Waits min(timeout, interval) or until Wake(); always returns true.
  absl::StatusOr<bool> Wait(absl::Duration timeout) override
      ABSL_LOCKS_EXCLUDED(mu_);
  void Wake() override ABSL_LOCKS_EXCLUDED(mu_);

 private:
  const absl::Duration interval_;
  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace rampart::agent
