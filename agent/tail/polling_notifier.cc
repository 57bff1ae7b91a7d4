#include "agent/tail/polling_notifier.h"

#include <algorithm>

namespace rampart::agent {

absl::Status PollingNotifier::Watch(const std::string& path) {
  (void)path;  // every Wait reports every file as possibly changed
  return absl::OkStatus();
}

absl::StatusOr<bool> PollingNotifier::Wait(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const absl::Duration wait =
      std::max(absl::ZeroDuration(), std::min(timeout, interval_));
  mu_.AwaitWithTimeout(absl::Condition(&woken_), wait);
  woken_ = false;
  return true;
}

void PollingNotifier::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

}  // namespace rampart::agent
