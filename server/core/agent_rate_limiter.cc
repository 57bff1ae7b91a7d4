#include "server/core/agent_rate_limiter.h"

#include <algorithm>

namespace rampart::server {

AgentRateLimiter::AgentRateLimiter(const Options& options)
    : options_(options) {}

absl::Duration AgentRateLimiter::TryAcquire(std::string_view agent_id,
                                            int64_t events, absl::Time now) {
  const double rate = std::max(options_.events_per_second, 1e-9);
  const double cost = std::min(
      static_cast<double>(std::max<int64_t>(events, 0)), options_.burst);
  absl::MutexLock lock(&mu_);
  auto it = buckets_.find(std::string(agent_id));
  if (it == buckets_.end()) {
    if (buckets_.size() >= options_.max_agents) {
      // Drop buckets that have refilled: their agents are idle or slow.
      absl::erase_if(buckets_, [&](const auto& entry) {
        const Bucket& b = entry.second;
        return b.tokens + absl::ToDoubleSeconds(now - b.updated) * rate >=
               options_.burst;
      });
      if (buckets_.size() >= options_.max_agents) {
        return absl::Seconds(std::max(cost, 1.0) / rate);
      }
    }
    it = buckets_
             .emplace(std::string(agent_id),
                      Bucket{.tokens = options_.burst, .updated = now})
             .first;
  }
  Bucket& b = it->second;
  if (now > b.updated) {
    b.tokens =
        std::min(options_.burst,
                 b.tokens + absl::ToDoubleSeconds(now - b.updated) * rate);
    b.updated = now;
  }
  if (b.tokens >= cost) {
    b.tokens -= cost;
    return absl::ZeroDuration();
  }
  return absl::Seconds((cost - b.tokens) / rate);
}

}  // namespace rampart::server
