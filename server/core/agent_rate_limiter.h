#pragma once

// AgentRateLimiter: a token bucket of events per agent id (all of an agent's
// streams share it), so one flooding or forged agent cannot monopolise the
// correlator while the rest of the estate keeps flowing (docs/security.md
// "Abuse limits"). Times are passed in (the caller's injected Clock).
//
// Thread-safety: thread-safe (one mutex, held only for the arithmetic).

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace rampart::server {

class AgentRateLimiter {
 public:
  struct Options {
    // Sustained events per second per agent. Default 5000.
    double events_per_second = 5000;
    // Bucket size: the most events accepted at once after a quiet period.
    // Default 50000.
    double burst = 50'000;
    // Most agents tracked; beyond it buckets that are full (idle agents)
    // are dropped first. When none is full, a key not yet tracked is refused
    // (as if its bucket were empty) until one refills, so a flood of
    // distinct keys cannot grow the table. Default 100000.
    size_t max_agents = 100'000;
  };

  explicit AgentRateLimiter(const Options& options);

  // Takes `events` tokens from `agent_id`'s bucket at `now` (a batch larger
  // than the burst costs the whole burst). Returns zero if granted, else how
  // long until that many tokens are available (nothing is taken).
  absl::Duration TryAcquire(std::string_view agent_id, int64_t events,
                            absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  const Options& options() const { return options_; }

 private:
  struct Bucket {
    double tokens = 0;
    absl::Time updated;
  };

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
};

}  // namespace rampart::server
