#include "common/clock.h"

namespace rampart {

RealClock& RealClock::Get() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

absl::Time SimulatedClock::Now() const {
  absl::MutexLock lock(&mu_);
  return now_;
}

void SimulatedClock::Advance(absl::Duration d) {
  if (d < absl::ZeroDuration()) {
    return;
  }
  absl::MutexLock lock(&mu_);
  now_ += d;
}

void SimulatedClock::Set(absl::Time t) {
  absl::MutexLock lock(&mu_);
  now_ = t;
}

}  // namespace rampart
