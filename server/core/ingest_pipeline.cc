#include "server/core/ingest_pipeline.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/event_types.h"
#include "common/logging.h"

namespace rampart::server {

IngestPipeline::IngestPipeline(const IngestPipelineOptions& options,
                               Correlator& correlator, Clock& clock,
                               metrics::Registry& metrics)
    : options_(options),
      correlator_(correlator),
      clock_(clock),
      batches_total_(metrics.GetCounter(
          "rampart_ingest_batches_total",
          "Agent batches committed by the correlator (duplicates excluded)")),
      duplicate_batches_total_(metrics.GetCounter(
          "rampart_ingest_duplicate_batches_total",
          "Agent batches received again after they had been committed; "
          "acknowledged without reprocessing")),
      failed_batches_total_(metrics.GetCounter(
          "rampart_ingest_failed_batches_total",
          "Agent batches the correlator could not commit (store errors); the "
          "agent resends them")),
      rejected_events_total_(metrics.GetCounter(
          "rampart_ingest_rejected_events_total",
          "Events dropped at the edge as invalid (bad address, kind, user or "
          "time), counted once per committed batch")),
      queue_events_(metrics.GetGauge(
          "rampart_ingest_queue_events",
          "Events waiting in the ingest queue for the correlator")),
      ingest_latency_(metrics.GetHistogram(
          "rampart_ingest_latency_seconds",
          "Time from a batch entering the ingest queue until it is durable")),
      commit_latency_(metrics.GetHistogram(
          "rampart_store_commit_seconds",
          "Duration of one correlator step for a group of batches, store "
          "transaction included")) {
  for (int p = 0; p < kProtocols; ++p) {
    std::string protocol(ProtocolName(static_cast<Protocol>(p)));
    if (protocol.empty()) {
      protocol = "unknown";
    }
    for (int k = 1; k < kKinds; ++k) {
      events_total_[p][k] = &metrics.GetCounter(
          "rampart_events_total",
          "Events ingested (durable, duplicates excluded), by protocol and "
          "kind",
          {{"protocol", protocol},
           {"kind", std::string(EventKindName(static_cast<EventKind>(k)))}});
    }
  }
  const int workers = std::clamp(options_.workers, 1, 8);
  for (int i = 0; i < workers; ++i) {
    workers_.emplace_back([this] { Run(); });
  }
}

IngestPipeline::~IngestPipeline() { Stop(); }

bool IngestPipeline::PushLocked(Item& item) {
  if (stopping_) {
    return false;
  }
  const size_t cost = Cost(item);
  if (queued_events_ > 0 && queued_events_ + cost > options_.capacity_events) {
    return false;
  }
  if (item.enqueued == absl::InfinitePast()) {
    item.enqueued = clock_.Now();
  }
  queued_events_ += cost;
  queue_.push_back(std::move(item));
  queue_events_.Set(static_cast<double>(queued_events_));
  return true;
}

bool IngestPipeline::TryPush(Item&& item) {
  absl::MutexLock lock(&mu_);
  return PushLocked(item);
}

bool IngestPipeline::TryPush(Item&& item, RoomCallback on_room) {
  absl::MutexLock lock(&mu_);
  if (PushLocked(item)) {
    return true;
  }
  if (!stopping_ && on_room) {
    waiters_.push_back(std::move(on_room));
  }
  return false;
}

void IngestPipeline::Stop() {
  absl::MutexLock stop_lock(&stop_mu_);
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& w : workers_) {
    if (w.joinable()) {
      w.join();
    }
  }
  // The worker wakes waiters whenever it takes batches; anything left was
  // registered after its last take. Let them observe stopping().
  std::vector<RoomCallback> wake;
  {
    absl::MutexLock lock(&mu_);
    wake.swap(waiters_);
  }
  for (RoomCallback& w : wake) {
    w();
  }
}

void IngestPipeline::SetCommitObserver(
    std::function<void(const IngestResult&)> observer) {
  observer_ = std::move(observer);
}

bool IngestPipeline::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

bool IngestPipeline::WaitForRoomWaitersForTest(size_t n,
                                               absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  const auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return waiters_.size() >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

size_t IngestPipeline::queued_events() const {
  absl::MutexLock lock(&mu_);
  return queued_events_;
}

size_t IngestPipeline::queued_batches() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void IngestPipeline::Run() {
  for (;;) {
    std::vector<Item> group;
    std::vector<RoomCallback> wake;
    {
      absl::MutexLock lock(&mu_);
      const auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stopping_;
      };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) {
        return;  // stopping, and everything queued has been processed
      }
      const size_t n = std::min(
          queue_.size(), std::max<size_t>(1, options_.max_group_batches));
      group.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        queued_events_ -= Cost(queue_.front());
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queue_events_.Set(static_cast<double>(queued_events_));
      wake.swap(waiters_);
    }
    // There is room now: producers refill the queue while this group
    // commits.
    for (RoomCallback& w : wake) {
      w();
    }
    Process(group);
  }
}

std::vector<absl::StatusOr<IngestResult>> IngestPipeline::IngestGroup(
    std::vector<Item>& group) {
  // One Correlator call, one store transaction, for the whole group.
  std::vector<IngestBatch> batches;
  batches.reserve(group.size());
  for (Item& item : group) {
    batches.push_back(
        IngestBatch{.id = item.id, .events = std::move(item.events)});
  }
  return correlator_.IngestMany(std::move(batches));
}

void IngestPipeline::Process(std::vector<Item>& group) {
  // Per-batch event counts by (protocol, kind), taken before the events are
  // moved into the Correlator; applied only to batches committed now.
  std::vector<std::vector<std::pair<int, int>>> kinds(group.size());
  for (size_t i = 0; i < group.size(); ++i) {
    kinds[i].reserve(group[i].events.size());
    for (const AuthEvent& e : group[i].events) {
      const int p = static_cast<int>(e.protocol);
      const int k = static_cast<int>(e.kind);
      if (p >= 0 && p < kProtocols && k >= 1 && k < kKinds) {
        kinds[i].emplace_back(p, k);
      }
    }
  }
  const absl::Time start = clock_.Now();
  std::vector<absl::StatusOr<IngestResult>> results = IngestGroup(group);
  const absl::Time end = clock_.Now();
  commit_latency_.ObserveDuration(end - start);
  for (size_t i = 0; i < group.size(); ++i) {
    absl::StatusOr<IngestResult>& r = results[i];
    if (!r.ok()) {
      failed_batches_total_.Increment();
      RAMPART_LOG(Warning) << "ingest of batch "
                           << (group[i].id ? group[i].id->agent_id : "-") << "/"
                           << (group[i].id ? group[i].id->sequence : 0)
                           << " failed: " << r.status().ToString();
    } else if (r->duplicate) {
      duplicate_batches_total_.Increment();
    } else {
      batches_total_.Increment();
      rejected_events_total_.Increment(group[i].rejected_events);
      for (const auto& [p, k] : kinds[i]) {
        events_total_[p][k]->Increment();
      }
      ingest_latency_.ObserveDuration(end - group[i].enqueued);
      if (observer_) {
        observer_(*r);
      }
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].done) {
      group[i].done(std::move(results[i]));
    }
  }
}

}  // namespace rampart::server
