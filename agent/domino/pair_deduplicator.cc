#include "agent/domino/pair_deduplicator.h"

namespace rampart::agent {

bool PairDeduplicator::Observe(const ParsedLine& line) {
  const bool task = line.family == LineFamily::kServerTask;
  if (!task && line.family != LineFamily::kInternetPassword) {
    return false;
  }
  if (!line.has_time) {
    return false;  // without a second there is no pair to recognise
  }
  bool dedup = false;
  // Most recent first.
  for (size_t i = 1; i <= kWindow; ++i) {
    Entry& e = ring_[(next_ + kWindow - i) % kWindow];
    if (!e.used) {
      break;
    }
    if (e.paired || e.task_family == task || e.protocol != line.protocol ||
        e.time != line.time || e.has_ip != line.ip.has_value() ||
        (e.has_ip && e.ip != *line.ip) || e.user != line.user) {
      continue;
    }
    e.paired = true;
    dedup = true;
    break;
  }
  Entry& slot = ring_[next_];
  next_ = (next_ + 1) % kWindow;
  slot.used = true;
  slot.paired = dedup;
  slot.task_family = task;
  slot.protocol = line.protocol;
  slot.has_ip = line.ip.has_value();
  slot.ip = line.ip.value_or(IpAddress());
  slot.time = line.time;
  slot.user.assign(line.user.data(), line.user.size());
  return dedup;
}

void PairDeduplicator::Reset() {
  for (Entry& e : ring_) {
    e.used = false;
  }
  next_ = 0;
}

}  // namespace rampart::agent
