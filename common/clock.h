#pragma once

// Time is injected everywhere: domain code reads only a Clock, never the
// system clock, so tests advance a SimulatedClock instead of sleeping.
// Thread-safety: every implementation here is thread-safe.

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rampart {

// Clock is the source of "now" for all domain code.
class Clock {
 public:
  virtual ~Clock() = default;
  // Returns the current time. Never fails.
  virtual absl::Time Now() const = 0;
};

// RealClock reads the system clock. Use only in main() wiring.
class RealClock final : public Clock {
 public:
  // Returns a process-wide instance (never destroyed).
  static RealClock& Get();
  absl::Time Now() const override { return absl::Now(); }
};

// SimulatedClock is advanced explicitly by tests.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::UnixEpoch()) : now_(start) {}

  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_);
  // Moves time forward by `d` (d >= 0; a negative d is ignored).
  void Advance(absl::Duration d) ABSL_LOCKS_EXCLUDED(mu_);
  // Sets the time; it may move backwards, as a wall clock can.
  void Set(absl::Time t) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart
