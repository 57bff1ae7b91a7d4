#pragma once

// BanPublisher receives ban-list changes once they are durable, to push them
// to agents. Implemented by the server's distribution layer; tests use a
// recording fake.

#include <vector>

#include "server/core/ban.h"

namespace rampart::server {

class BanPublisher {
 public:
  virtual ~BanPublisher() = default;
  // Called with journal entries in revision order, only after the store
  // committed them. NOTE: called with the Correlator's lock held: enqueue and
  // return, never block or call back into the Correlator.
  virtual void Publish(const std::vector<JournalEntry>& entries) = 0;
};

}  // namespace rampart::server
