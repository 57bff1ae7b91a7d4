#pragma once

// BanDistributor: what every agent must enforce, and how to bring one up to
// date. It is the Correlator's BanPublisher: it keeps the active ban list
// (with the revision that last changed each ban) and a bounded window of the
// most recent journal entries, plans each agent's catch-up (the missing
// delta when the window still holds the agent's revision, else a full
// snapshot), fans new entries out to connected agents, and tracks which
// revision each agent enforces, so the server can say "live on 13 of 14".
//
// Domain code: no gRPC. The server's stream reactors subscribe to it.
// Thread-safety: thread-safe. Subscriber callbacks run with no lock held,
// on the publishing thread; they must only enqueue.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "server/core/ban.h"
#include "server/core/ban_publisher.h"

namespace rampart::server {

struct VersionedBan {
  Ban ban;
  uint64_t revision = 0;  // revision of the ban's latest add/update
  friend bool operator==(const VersionedBan&, const VersionedBan&) = default;
};

// How to bring an agent from its enforced revision to the current one.
struct CatchUpPlan {
  enum class Kind { kUpToDate, kDelta, kSnapshot };
  Kind kind = Kind::kUpToDate;
  uint64_t from_revision = 0;
  uint64_t to_revision = 0;
  std::vector<JournalEntry> delta;     // kDelta: entries (from, to]
  std::vector<VersionedBan> snapshot;  // kSnapshot: active at plan time
};

struct AgentStatus {
  std::string agent_id;
  bool connected = false;
  uint64_t enforced_revision = 0;
  absl::Time last_seen = absl::UnixEpoch();
  // Current revision minus enforced revision.
  uint64_t lag_revisions = 0;
  // Time since the oldest change the agent has not enforced; zero if none.
  absl::Duration lag_time = absl::ZeroDuration();
};

class BanDistributor final : public BanPublisher {
 public:
  struct Options {
    // Journal entries kept for deltas; older agents get a snapshot.
    size_t journal_window = 100000;
    // Changes above which a delta is replaced by a snapshot (a snapshot is
    // cheaper than replaying a huge history).
    size_t max_delta = 20000;
  };
  using Listener = std::function<void(const std::vector<JournalEntry>&)>;

  BanDistributor(const Options& options, Clock& clock);

  // Start-up state from the store: the current revision, the active bans
  // with their revisions, and the most recent journal entries (ascending).
  void Reset(uint64_t revision, std::vector<VersionedBan> active,
             std::vector<JournalEntry> recent);

  // BanPublisher
  void Publish(const std::vector<JournalEntry>& entries) override;

  // The plan for an agent that enforces `enforced`: the exact delta while the
  // window holds it (and it is not huge), else a snapshot. 0 (a fresh agent)
  // and unknown future revisions (a restored database) get a snapshot.
  CatchUpPlan PlanFor(uint64_t enforced) const;

  // A connected agent. `listener` receives every later Publish() batch.
  // Returns a handle for Disconnect(). Connecting again replaces the older
  // session of the same agent.
  uint64_t Connect(const std::string& agent_id, Listener listener);
  void Disconnect(uint64_t handle);
  // The agent reports that `revision` is enforced in its kernel.
  void ReportEnforced(const std::string& agent_id, uint64_t revision);

  uint64_t revision() const;
  std::vector<VersionedBan> Active() const;
  // Known agents, connected or not, sorted by id.
  std::vector<AgentStatus> Agents() const;
  // How many known agents enforce a ban introduced at `revision`, and how
  // many agents are known.
  std::pair<int, int> LiveOn(uint64_t revision) const;

 private:
  struct Agent {
    uint64_t handle = 0;  // 0: not connected
    Listener listener;
    uint64_t enforced = 0;
    absl::Time last_seen;
  };

  const Options options_;
  Clock& clock_;

  mutable absl::Mutex mu_;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<IpPrefix, VersionedBan> active_ ABSL_GUARDED_BY(mu_);
  std::vector<JournalEntry> window_ ABSL_GUARDED_BY(mu_);  // ascending
  std::map<std::string, Agent> agents_ ABSL_GUARDED_BY(mu_);
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace rampart::server
