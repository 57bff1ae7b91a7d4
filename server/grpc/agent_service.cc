#include "server/grpc/agent_service.h"

#include <algorithm>
#include <deque>
#include <limits>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "common/ip_address.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/tsan_annotations.h"
#include "common/version.h"
#include "grpcpp/grpcpp.h"
#include "server/grpc/conversions.h"
#include "server/grpc/peer_identity.h"

namespace rampart::server {
namespace {

// The IP of a gRPC peer string ("ipv4:192.0.2.1:5000",
// "ipv6:[2001:db8::1]:5000", possibly with %5B/%5D for the brackets); nullopt
// for anything else (unix sockets).
std::optional<IpAddress> PeerIp(std::string_view peer) {
  std::string text(peer);
  for (const auto& [from, to] :
       {std::pair<std::string_view, char>{"%5B", '['},
        std::pair<std::string_view, char>{"%5D", ']'}}) {
    for (size_t at = text.find(from); at != std::string::npos;
         at = text.find(from)) {
      text.replace(at, from.size(), 1, to);
    }
  }
  std::string_view v = text;
  if (v.substr(0, 5) == "ipv4:") {
    v.remove_prefix(5);
    v = v.substr(0, v.rfind(':'));
  } else if (v.substr(0, 5) == "ipv6:") {
    v.remove_prefix(5);
    if (!v.empty() && v.front() == '[') {
      v = v.substr(1,
                   v.find(']') == std::string_view::npos ? 0 : v.find(']') - 1);
    }
  } else {
    return std::nullopt;
  }
  return IpAddress::Parse(v);
}

using Op = JournalEntry::Op;

// Text for the agent: printable ASCII only (proto3 strings must be UTF-8,
// and reasons may quote hostile input), at most `max` bytes.
std::string SanitizeText(std::string_view text, size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max));
  for (char c : text) {
    if (out.size() + 3 > max) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    out += (u >= 0x20 && u < 0x7F) ? c : '?';
  }
  return out;
}

constexpr size_t kMaxRejectionText = 256;  // BatchRejection.message
constexpr size_t kMaxNoticeText = 1024;    // Notice.message

// Batch errors the agent cannot fix by resending: the batch is rejected
// (settled, deleted by the agent). Any other error ends the stream so the
// agent resends its unacknowledged batches after reconnecting.
bool IsPermanentBatchError(absl::StatusCode code) {
  return code == absl::StatusCode::kInvalidArgument ||
         code == absl::StatusCode::kOutOfRange;
}

std::string_view PayloadName(v1::AgentMessage::PayloadCase c) {
  switch (c) {
    case v1::AgentMessage::kHello:
      return "Hello";
    case v1::AgentMessage::kEventBatch:
      return "EventBatch";
    case v1::AgentMessage::kHeartbeat:
      return "Heartbeat";
    case v1::AgentMessage::kEnforcedRevision:
      return "EnforcedRevision";
    case v1::AgentMessage::kLocalBanReport:
      return "LocalBanReport";
    case v1::AgentMessage::PAYLOAD_NOT_SET:
      break;
  }
  return "an empty message";
}

absl::Status HelloError(std::string_view field, std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrFormat("hello.%s: %s", field, problem));
}

bool AgentIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool SiteChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

bool ZoneChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '+' || c == '-';
}

}  // namespace

absl::Status ValidateHello(const v1::Hello& hello) {
  if (const size_t bytes = hello.ByteSizeLong(); bytes > kMaxHelloBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("hello: %d bytes, at most %d", bytes, kMaxHelloBytes));
  }
  const std::string& id = hello.agent_id();
  if (id.empty() || id.size() > 63) {
    return HelloError(
        "agent_id", absl::StrFormat("must be 1..63 bytes, got %d", id.size()));
  }
  if (!std::all_of(id.begin(), id.end(), AgentIdChar) || id[0] == '.' ||
      id[0] == '_' || id[0] == '-') {
    return HelloError(
        "agent_id",
        absl::StrFormat("'%s' is not [a-z0-9._-] starting with a letter or "
                        "digit",
                        SanitizeText(id, 80)));
  }
  if (hello.site().size() > 63 ||
      !std::all_of(hello.site().begin(), hello.site().end(), SiteChar)) {
    return HelloError("site", "must be 0..63 bytes of [A-Za-z0-9._-]");
  }
  if (hello.agent_version().size() > 64) {
    return HelloError("agent_version", "longer than 64 bytes");
  }
  if (hello.hostname().size() > 253) {
    return HelloError("hostname", "longer than 253 bytes");
  }
  if (hello.domino_server().size() > 256) {
    return HelloError("domino_server", "longer than 256 bytes");
  }
  if (hello.host_addresses_size() > 64) {
    return HelloError("host_addresses",
                      absl::StrFormat("%d addresses, at most 64",
                                      hello.host_addresses_size()));
  }
  for (int i = 0; i < hello.host_addresses_size(); ++i) {
    if (!IpAddress::Parse(hello.host_addresses(i)).has_value()) {
      return HelloError(
          absl::StrFormat("host_addresses[%d]", i),
          absl::StrFormat("'%s' is not an IP address",
                          SanitizeText(hello.host_addresses(i), 64)));
    }
  }
  const std::string& zone = hello.time_zone();
  if (zone.size() > 64 || !std::all_of(zone.begin(), zone.end(), ZoneChar)) {
    return HelloError("time_zone",
                      absl::StrFormat("'%s' is not an IANA time zone name",
                                      SanitizeText(zone, 64)));
  }
  if (hello.spool_epoch() == 0) {
    return HelloError("spool_epoch", "must be non-zero");
  }
  const v1::Capabilities& caps = hello.capabilities();
  if (caps.firewall_backend().size() > 32) {
    return HelloError("capabilities.firewall_backend", "longer than 32 bytes");
  }
  if (caps.features_size() > 64) {
    return HelloError("capabilities.features", "more than 64 tokens");
  }
  for (const std::string& f : caps.features()) {
    if (f.size() > 64) {
      return HelloError("capabilities.features", "token longer than 64 bytes");
    }
  }
  if (hello.log_sources_size() > 16) {
    return HelloError("log_sources", absl::StrFormat("%d sources, at most 16",
                                                     hello.log_sources_size()));
  }
  std::set<uint32_t> ids;
  for (const v1::LogSource& s : hello.log_sources()) {
    if (s.path().size() > 1024) {
      return HelloError("log_sources.path", "longer than 1024 bytes");
    }
    if (!ids.insert(s.id()).second) {
      return HelloError("log_sources.id",
                        absl::StrFormat("id %d used twice", s.id()));
    }
  }
  return absl::OkStatus();
}

std::vector<JournalEntry> CoalesceJournal(
    std::vector<JournalEntry> queued, const std::vector<JournalEntry>& more) {
  std::vector<std::optional<JournalEntry>> merged;
  merged.reserve(queued.size() + more.size());
  absl::flat_hash_map<uint64_t, size_t> index;  // ban id -> merged position
  std::optional<JournalEntry> last_cancelled;
  const auto add = [&](JournalEntry e) {
    const auto it = index.find(e.ban.id);
    if (it == index.end()) {
      index.emplace(e.ban.id, merged.size());
      merged.push_back(std::move(e));
      return;
    }
    std::optional<JournalEntry>& prev = merged[it->second];
    if (prev->op == Op::kAdd && e.op == Op::kRemove) {
      // The agent never saw the ADD: drop both.
      last_cancelled = std::move(e);
      prev.reset();
      index.erase(it);
      return;
    }
    // ADD+UPDATE stays an ADD (of the new content); otherwise the later op
    // wins (UPDATE+UPDATE, UPDATE+REMOVE). Ids are never reused, so nothing
    // follows a REMOVE.
    const Op op = prev->op == Op::kAdd ? Op::kAdd : e.op;
    prev = std::move(e);
    prev->op = op;
  };
  for (JournalEntry& e : queued) {
    add(std::move(e));
  }
  for (const JournalEntry& e : more) {
    add(e);
  }
  std::vector<JournalEntry> out;
  out.reserve(index.size());
  for (std::optional<JournalEntry>& e : merged) {
    if (e.has_value()) {
      out.push_back(std::move(*e));
    }
  }
  if (out.empty() && last_cancelled.has_value()) {
    out.push_back(std::move(*last_cancelled));
  }
  return out;
}

// ---------------------------------------------------------------------------
// Stream: one agent stream. Every member below mu_ is guarded by it; in_ is
// the read buffer, owned by whoever holds the single outstanding read.
//
// Threads that enter a Stream: gRPC reactions (OnReadDone, OnWriteDone,
// OnCancel, OnDone), the pipeline worker (OnIngested, OnRoom), the
// publishing thread (OnPublished, via the BanDistributor listener), and the
// service's callers (Drain, Terminate, CheckIdle). Non-reaction callers hold a
// shared_ptr, so the object outlives their call even if OnDone runs
// meanwhile; after OnDone (done_) they return without touching the service.
//
// gRPC runs OnDone only after every other reaction has returned; it counts
// them in libgrpc++, which is not instrumented, so each reaction ends with a
// TsanRelease that OnDone acquires (ReactionScope): ThreadSanitizer then sees
// the order gRPC guarantees (common/tsan_annotations.h; nothing without
// TSan).
//
// gRPC operations are decided under mu_ (TakeOpsLocked) and issued without it
// (Execute). `issuing_` counts decided-but-not-yet-issued operations; Finish
// waits for it to drop to zero, so no StartRead/StartWrite can follow Finish
// (the call may be destroyed right after Finish completes).
class AgentService::Stream final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>,
      public std::enable_shared_from_this<Stream> {
 public:
  Stream(AgentService& service, grpc::CallbackServerContext* context)
      : service_(service), context_(context) {}

  // Called once by Connect() right after construction: starts the first read,
  // or finishes at once with `reject`.
  void Start(std::optional<grpc::Status> reject);

  // Ends the stream with `status` as soon as the write in flight completes;
  // nothing queued is sent.
  void Terminate(const grpc::Status& status);
  // Stops reading; once the batches handed to the pipeline are acknowledged,
  // sends a Notice with retry_after and ends with UNAVAILABLE.
  void Drain();
  // Terminates the stream if it received nothing for heartbeat_timeout, sent
  // no Hello within hello_timeout, or its certificate's not_after passed.
  void CheckIdle(absl::Time now);
  // Authenticates the registered stream's certificate again (after its
  // agent enrolled anew) and terminates it if that fails.
  void RecheckIdentity();
  // Hands a batch held back by the agent's rate limit to HandleBatch again
  // once `now` reaches the time its tokens are due.
  void RetryThrottled(absl::Time now);

  // grpc::ServerBidiReactor
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Put at the top of every reaction but OnDone: its end happens before
  // OnDone (TsanRelease; see the class comment).
  class ReactionScope {
   public:
    explicit ReactionScope(const Stream* stream) : stream_(stream) {}
    ~ReactionScope() { TsanRelease(stream_); }
    ReactionScope(const ReactionScope&) = delete;
    ReactionScope& operator=(const ReactionScope&) = delete;

   private:
    const Stream* const stream_;
  };

  enum class Phase { kAwaitHello, kCatchingUp, kActive };
  // A snapshot replacing queued deltas: kPending until the write path gets to
  // it (changes published meanwhile are in it anyway), kPlanning while the
  // plan is taken outside the lock (changes published meanwhile are kept in
  // early_ and filtered by revision afterwards).
  enum class SnapshotState { kNone, kPending, kPlanning };

  // One queued ban-list message source: a delta or a snapshot (chunked
  // lazily as it is written).
  struct BanListItem {
    bool is_snapshot = false;
    // Delta: changes turning from_revision into to_revision (ascending).
    uint64_t from_revision = 0;
    uint64_t to_revision = 0;
    std::vector<JournalEntry> changes;
    // Merged by CoalesceJournal: revisions may have gaps and it must be sent
    // whole (it never exceeds kMaxDeltaChanges). Uncoalesced deltas are split
    // into kMaxDeltaChanges pieces.
    bool coalesced = false;
    // Earliest Publish time of the changes (live pushes only), for the push
    // latency histogram.
    std::optional<absl::Time> published_at;
    // Snapshot: null until planned.
    std::shared_ptr<const Snapshot> snapshot;
    uint64_t snapshot_id = 0;
    size_t next_entry = 0;
    uint32_t next_chunk = 0;
  };

  // gRPC operations decided under mu_, issued by Execute() without it. At
  // most one of {read/write/plan} or finish.
  struct Ops {
    bool read = false;
    const v1::ServerMessage* write = nullptr;
    bool plan = false;  // take a snapshot for the front ban-list item
    std::optional<grpc::Status> finish;
    bool any() const { return read || write != nullptr || plan; }
  };

  void HandleHello(const v1::Hello& hello);
  void HandleBatch(const v1::EventBatch& batch);
  void HandleEnforced(const v1::EnforcedRevision& enforced);
  // agent_id_ (empty before the Hello), read under mu_.
  std::string AgentId() const ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return agent_id_;
  }
  void ProtocolError(grpc::StatusCode code, const std::string& message,
                     std::string_view reason);
  void ReadNext();
  // Pushes `item` into the pipeline; on success reads on, else parks it in
  // deferred_ until the pipeline's room callback (OnRoom). Only one Offer
  // runs at a time: no read is outstanding while a batch is being offered.
  void Offer(IngestPipeline::Item item);
  void OnRoom();
  void OnIngested(uint64_t sequence, absl::StatusOr<IngestResult> result);
  void OnPublished(const std::vector<JournalEntry>& entries);
  void Execute(Ops ops);

  Ops TakeOpsLocked(bool want_read) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NextWriteLocked(Ops& ops) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool FinishDueLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestFinishLocked(grpc::Status status, bool graceful)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ForgetBatchLocked(uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SettleLocked(uint64_t sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RejectBatchLocked(uint64_t sequence, absl::StatusCode code,
                         std::string_view message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NoticeLocked(absl::StatusCode code, std::string_view message,
                    uint64_t batch_sequence) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t DurableThroughLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::ServerMessage TakeAckLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::ServerMessage NextBanListMessageLocked(BanListItem& item, bool* exhausted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AppendLiveLocked(std::vector<JournalEntry> entries, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReplaceWithSnapshotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void InstallSnapshotLocked(std::shared_ptr<const Snapshot> snapshot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  AgentService& service_;
  grpc::CallbackServerContext* const context_;
  // Keeps the reactor alive from Start() until OnDone (gRPC holds a raw
  // pointer). Touched only by Start() and OnDone().
  std::shared_ptr<Stream> self_;
  // Read buffer; only touched by the holder of the single outstanding read.
  v1::AgentMessage in_;

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kAwaitHello;
  std::string agent_id_ ABSL_GUARDED_BY(mu_);
  uint64_t spool_epoch_ ABSL_GUARDED_BY(mu_) = 0;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;  // RegisterAgent() done
  absl::Time opened_ ABSL_GUARDED_BY(mu_);        // Start() (hello_timeout)
  // The client certificate the Hello was authenticated with (mutual TLS),
  // and the peer it came from (for logs; the call may be gone later).
  std::optional<PeerCertificate> cert_ ABSL_GUARDED_BY(mu_);
  std::string peer_ ABSL_GUARDED_BY(mu_);
  uint64_t distributor_handle_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_seen_ ABSL_GUARDED_BY(mu_);

  // Ingest: batches read but not settled (deferred_ or in the pipeline).
  std::multiset<uint64_t> pending_sequences_ ABSL_GUARDED_BY(mu_);
  int inflight_batches_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<IngestPipeline::Item> deferred_ ABSL_GUARDED_BY(mu_);
  // A batch over the agent's event rate: held (no read outstanding, so
  // HTTP/2 flow control holds the agent back) until throttled_until_.
  std::optional<v1::EventBatch> throttled_ ABSL_GUARDED_BY(mu_);
  absl::Time throttled_until_ ABSL_GUARDED_BY(mu_);
  bool throttle_logged_ ABSL_GUARDED_BY(mu_) = false;
  bool room_signalled_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t max_settled_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t watermark_ ABSL_GUARDED_BY(mu_) = 0;  // last durable_through
  v1::BatchAck ack_ ABSL_GUARDED_BY(mu_);        // being accumulated
  bool ack_dirty_ ABSL_GUARDED_BY(mu_) = false;

  // Outbound: control messages (Welcome, Notices) before the pending ack,
  // before ban-list messages.
  std::deque<v1::ServerMessage> control_ ABSL_GUARDED_BY(mu_);
  std::deque<BanListItem> banlist_ ABSL_GUARDED_BY(mu_);
  // The revision the agent has once everything queued is applied.
  uint64_t queued_revision_ ABSL_GUARDED_BY(mu_) = 0;
  SnapshotState snapshot_state_ ABSL_GUARDED_BY(mu_) = SnapshotState::kNone;
  std::vector<JournalEntry> early_ ABSL_GUARDED_BY(mu_);
  absl::Time early_published_ ABSL_GUARDED_BY(mu_);
  uint64_t next_snapshot_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Time notice_window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int notices_in_window_ ABSL_GUARDED_BY(mu_) = 0;

  // The write in flight (valid until OnWriteDone).
  v1::ServerMessage current_write_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Time> current_published_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  int issuing_ ABSL_GUARDED_BY(mu_) = 0;

  // Ending: the status, whether to flush acks first, the last Notice.
  std::optional<grpc::Status> finish_status_ ABSL_GUARDED_BY(mu_);
  bool graceful_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<v1::ServerMessage> final_notice_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

void AgentService::Stream::Start(std::optional<grpc::Status> reject) {
  self_ = shared_from_this();
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    last_seen_ = service_.clock_.Now();
    opened_ = last_seen_;
    if (reject.has_value()) {
      RequestFinishLocked(std::move(*reject), /*graceful=*/false);
    }
    ops = TakeOpsLocked(/*want_read=*/!reject.has_value());
  }
  Execute(std::move(ops));
}

void AgentService::Stream::Terminate(const grpc::Status& status) {
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    if (done_) {
      return;
    }
    RequestFinishLocked(status, /*graceful=*/false);
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::Drain() {
  static constexpr std::string_view kDraining = "server draining";
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    if (done_ || finish_status_.has_value()) {
      return;
    }
    if (phase_ != Phase::kActive) {
      RequestFinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(kDraining)),
          /*graceful=*/false);
    } else {
      RequestFinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(kDraining)),
          /*graceful=*/true);
      v1::ServerMessage m;
      v1::Notice* n = m.mutable_notice();
      n->set_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
      n->set_message(absl::StrFormat(
          "%s: reconnect in %s", kDraining,
          absl::FormatDuration(service_.options_.drain_retry_after)));
      SetDuration(n->mutable_retry_after(),
                  service_.options_.drain_retry_after);
      final_notice_ = std::move(m);
    }
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::CheckIdle(absl::Time now) {
  Ops ops;
  bool hello_late = false;
  {
    absl::MutexLock lock(&mu_);
    if (done_ || finish_status_.has_value()) {
      return;
    }
    std::optional<grpc::Status> end;
    if (phase_ == Phase::kAwaitHello &&
        now - opened_ >= service_.options_.hello_timeout) {
      hello_late = true;
      end = grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrFormat(
              "no Hello within %s of the stream's start",
              absl::FormatDuration(service_.options_.hello_timeout)));
    } else if (registered_ && cert_.has_value() && now >= cert_->not_after) {
      end = grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          absl::StrFormat("the client certificate of agent %s expired at %s: "
                          "re-enroll the agent",
                          agent_id_,
                          absl::FormatTime(absl::RFC3339_sec, cert_->not_after,
                                           absl::UTCTimeZone())));
    } else if (!throttled_.has_value() && !deferred_.has_value() &&
               now - last_seen_ >= service_.options_.heartbeat_timeout) {
      // A stream whose batch is held back (rate limit, full ingest queue) is
      // not read, so its heartbeats wait in flow control: not idle.
      end = grpc::Status(
          grpc::StatusCode::UNAVAILABLE,
          absl::StrFormat("heartbeat timeout: nothing received for %s",
                          absl::FormatDuration(now - last_seen_)));
    }
    if (!end.has_value()) {
      return;
    }
    RequestFinishLocked(std::move(*end), /*graceful=*/false);
    ops = TakeOpsLocked(false);
  }
  if (hello_late) {
    service_.Rejected("hello_timeout").Increment();
  }
  Execute(std::move(ops));
}

void AgentService::Stream::RecheckIdentity() {
  std::optional<PeerCertificate> cert;
  std::string agent_id;
  std::string peer;
  {
    absl::MutexLock lock(&mu_);
    if (done_ || finish_status_.has_value() || !registered_) {
      return;
    }
    cert = cert_;
    agent_id = agent_id_;
    peer = peer_;
  }
  if (grpc::Status auth = service_.AuthenticatePeer(cert, agent_id, peer);
      !auth.ok()) {
    service_.Rejected("unauthenticated").Increment();
    Terminate(auth);
  }
}

void AgentService::Stream::OnReadDone(bool ok) {
  const ReactionScope reaction(this);
  if (!ok) {
    // The agent closed its side, sent a message that does not parse, or the
    // stream broke (OnCancel follows). Acknowledge what is in flight, then
    // end; before a Hello that is a protocol error.
    Ops ops;
    bool before_hello = false;
    {
      absl::MutexLock lock(&mu_);
      before_hello =
          phase_ == Phase::kAwaitHello && !finish_status_.has_value();
      RequestFinishLocked(
          before_hello
              ? grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                             "the stream ended, or sent a message that does "
                             "not parse, before its Hello")
              : grpc::Status::OK,
          /*graceful=*/!before_hello);
      ops = TakeOpsLocked(false);
    }
    if (before_hello) {
      service_.Rejected("no_hello").Increment();
    }
    Execute(std::move(ops));
    return;
  }
  Phase phase;
  bool ending = false;
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    last_seen_ = service_.clock_.Now();
    phase = phase_;
    if (finish_status_.has_value()) {
      // Ending (drain, superseded, ...): nothing more is processed or read.
      ending = true;
      ops = TakeOpsLocked(false);
    }
  }
  if (ending) {
    Execute(std::move(ops));
    return;
  }
  if (phase == Phase::kAwaitHello) {
    if (!in_.has_hello()) {
      ProtocolError(grpc::StatusCode::FAILED_PRECONDITION,
                    absl::StrFormat("the first message must be Hello, got %s",
                                    PayloadName(in_.payload_case())),
                    "no_hello");
      return;
    }
    HandleHello(in_.hello());
    return;
  }
  switch (in_.payload_case()) {
    case v1::AgentMessage::kHello:
      ProtocolError(grpc::StatusCode::FAILED_PRECONDITION,
                    "Hello sent twice on one stream", "duplicate_hello");
      return;
    case v1::AgentMessage::kEventBatch:
      HandleBatch(in_.event_batch());  // reads on, or defers the read
      return;
    case v1::AgentMessage::kEnforcedRevision:
      HandleEnforced(in_.enforced_revision());
      break;
    case v1::AgentMessage::kHeartbeat:  // liveness: last_seen_ above
      service_.RecordHeartbeat(AgentId(), in_.heartbeat());
      break;
    case v1::AgentMessage::kLocalBanReport:  // not recorded yet
    case v1::AgentMessage::PAYLOAD_NOT_SET:  // unknown variant: ignored
      break;
  }
  ReadNext();
}

void AgentService::Stream::ReadNext() {
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    ops = TakeOpsLocked(/*want_read=*/true);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::ProtocolError(grpc::StatusCode code,
                                         const std::string& message,
                                         std::string_view reason) {
  service_.Rejected(reason).Increment();
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(grpc::Status(code, message), /*graceful=*/false);
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::HandleHello(const v1::Hello& hello) {
  if (absl::Status valid = ValidateHello(hello); !valid.ok()) {
    ProtocolError(grpc::StatusCode::INVALID_ARGUMENT,
                  std::string(valid.message()), "invalid_hello");
    return;
  }
  const std::string agent_id = hello.agent_id();
  const std::string peer = context_->peer();
  std::optional<PeerCertificate> cert;
  if (service_.identity_ != nullptr) {
    cert = PeerCertificateOf(*context_);
  }
  if (grpc::Status auth = service_.AuthenticatePeer(cert, agent_id, peer);
      !auth.ok()) {
    ProtocolError(auth.error_code(), auth.error_message(), "unauthenticated");
    return;
  }
  const uint64_t spool_epoch = hello.spool_epoch();
  {
    absl::MutexLock lock(&mu_);
    agent_id_ = agent_id;
    spool_epoch_ = spool_epoch;
    cert_ = cert;
    peer_ = peer;
    phase_ = Phase::kCatchingUp;
  }
  // Only now does the stream count as an agent (max_agents).
  absl::StatusOr<std::weak_ptr<Stream>> older =
      service_.RegisterAgent(agent_id, shared_from_this());
  if (!older.ok()) {
    ProtocolError(grpc::StatusCode::RESOURCE_EXHAUSTED,
                  std::string(older.status().message()), "agent_limit");
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    registered_ = true;
  }
  // Supersede an older stream of this agent (a half-dead connection must
  // never block a reconnect).
  if (std::shared_ptr<Stream> s = older->lock()) {
    s->Terminate(grpc::Status(
        grpc::StatusCode::ABORTED,
        absl::StrFormat("superseded by a newer stream of agent %s", agent_id)));
  }
  // Check again now that the stream is registered: a revocation or a
  // re-enrollment stored after the first check found no stream to end
  // (RevokeAgent's EndAgentStream, the certificate listener); from here on
  // they find this one.
  if (grpc::Status again = service_.AuthenticatePeer(cert, agent_id, peer);
      !again.ok()) {
    ProtocolError(again.error_code(), again.error_message(), "unauthenticated");
    return;
  }
  service_.RecordHello(hello, peer);
  // Subscribe first, then plan: a change published in between reaches both
  // the plan and the listener; early_ is filtered by revision below.
  BanDistributor& distributor = service_.distributor_;
  const uint64_t handle = distributor.Connect(
      agent_id,
      [weak = weak_from_this()](const std::vector<JournalEntry>& entries) {
        if (std::shared_ptr<Stream> s = weak.lock()) {
          s->OnPublished(entries);
        }
      });
  const uint64_t epoch = service_.options_.ban_list_epoch;
  const bool same_epoch = hello.ban_list_epoch() == epoch;
  v1::ResyncMode mode = v1::RESYNC_MODE_UP_TO_DATE;
  uint64_t from = hello.enforced_revision();
  uint64_t current = 0;
  std::vector<JournalEntry> delta;
  std::shared_ptr<const Snapshot> snapshot;
  // A fresh agent (epoch 0) gets a snapshot even of an empty list, so that
  // it adopts this lineage before any delta arrives.
  if (same_epoch) {
    CatchUpPlan plan = distributor.PlanFor(hello.enforced_revision());
    current = plan.to_revision;
    switch (plan.kind) {
      case CatchUpPlan::Kind::kUpToDate:
        mode = v1::RESYNC_MODE_UP_TO_DATE;
        break;
      case CatchUpPlan::Kind::kDelta:
        mode = v1::RESYNC_MODE_DELTA;
        from = plan.from_revision;
        delta = std::move(plan.delta);
        break;
      case CatchUpPlan::Kind::kSnapshot:
        mode = v1::RESYNC_MODE_SNAPSHOT;
        snapshot = service_.SnapshotFromPlan(std::move(plan));
        current = snapshot->revision;
        break;
    }
    distributor.ReportEnforced(agent_id, hello.enforced_revision());
  } else {
    // Another lineage: whatever the agent enforces must be replaced.
    mode = v1::RESYNC_MODE_SNAPSHOT;
    snapshot = service_.CurrentSnapshot();
    current = snapshot->revision;
  }
  const uint64_t oldest = hello.oldest_unacked_sequence();
  const uint64_t durable_through =
      std::max(service_.RememberedWatermark(agent_id, spool_epoch),
               oldest > 0 ? oldest - 1 : 0);

  v1::ServerMessage welcome;
  v1::Welcome* w = welcome.mutable_welcome();
  w->set_server_id(service_.options_.server_id);
  w->set_server_version(std::string(kVersion));
  SetTime(w->mutable_server_time(), service_.clock_.Now());
  w->set_ban_list_epoch(epoch);
  w->set_current_revision(current);
  w->set_resync(mode);
  w->set_durable_through(durable_through);
  v1::StreamLimits* limits = w->mutable_limits();
  limits->set_max_message_bytes(
      static_cast<uint32_t>(service_.options_.max_message_bytes));
  limits->set_max_events_per_batch(std::clamp(
      service_.options_.max_events_per_batch, 1, v1::kMaxEventsPerBatch));
  limits->set_max_user_bytes(v1::kMaxUserBytes);
  v1::PolicyHint* hint = w->mutable_policy_hint();
  SetDuration(hint->mutable_heartbeat_interval(),
              service_.options_.heartbeat_interval);
  hint->set_max_unacked_batches(service_.options_.max_unacked_batches);

  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    distributor_handle_ = handle;
    if (finish_status_.has_value()) {
      // Superseded or drained while catching up.
      ops = TakeOpsLocked(false);
    } else {
      watermark_ = durable_through;
      control_.push_back(std::move(welcome));
      queued_revision_ = current;
      if (!delta.empty()) {
        banlist_.push_back(BanListItem{.from_revision = from,
                                       .to_revision = current,
                                       .changes = std::move(delta)});
      }
      if (snapshot != nullptr) {
        banlist_.push_back(BanListItem{.is_snapshot = true,
                                       .snapshot = std::move(snapshot),
                                       .snapshot_id = next_snapshot_id_++});
      }
      phase_ = Phase::kActive;
      std::vector<JournalEntry> early = std::move(early_);
      early_.clear();
      if (!early.empty()) {
        AppendLiveLocked(std::move(early), early_published_);
      }
      ops = TakeOpsLocked(/*want_read=*/true);
    }
  }
  RAMPART_LOG(Info) << "agent " << agent_id << " connected: resync "
                    << v1::ResyncMode_Name(mode) << " from revision " << from
                    << " to " << current << ", durable through "
                    << durable_through;
  Execute(std::move(ops));
}

void AgentService::Stream::HandleBatch(const v1::EventBatch& batch) {
  const uint64_t sequence = batch.sequence();
  const absl::Time now = service_.clock_.Now();
  std::string agent_id;
  uint64_t spool_epoch = 0;
  {
    absl::MutexLock lock(&mu_);
    agent_id = agent_id_;
    spool_epoch = spool_epoch_;
  }
  // Abuse limits first, before any conversion work: the batch size cap, then
  // the agent's event rate. Both reject only this batch; the stream stays
  // usable.
  const int max_events = std::clamp(service_.options_.max_events_per_batch, 1,
                                    v1::kMaxEventsPerBatch);
  absl::Status limited = absl::OkStatus();
  absl::Duration throttle = absl::ZeroDuration();
  if (batch.events_size() > max_events) {
    service_.batches_oversized_.Increment();
    limited = absl::InvalidArgumentError(
        absl::StrFormat("batch %d has %d events, at most %d are allowed "
                        "(StreamLimits.max_events_per_batch)",
                        sequence, batch.events_size(), max_events));
  } else {
    throttle = service_.limiter_.TryAcquire(agent_id, batch.events_size(), now);
  }
  if (throttle > absl::ZeroDuration()) {
    // Over the agent's event rate: hold the batch and read nothing more from
    // this stream until its tokens are due (RetryThrottled). The agent's
    // unacknowledged window fills and its spool keeps the rest: the flood is
    // slowed down, nothing is lost, other agents' streams are unaffected.
    service_.batches_throttled_.Increment();
    bool log = false;
    {
      absl::MutexLock lock(&mu_);
      if (done_ || finish_status_.has_value()) {
        return;  // not acked: the agent resends it
      }
      throttled_ = batch;
      throttled_until_ = now + throttle;
      log = !throttle_logged_;
      throttle_logged_ = true;
      service_.throttled_streams_.fetch_add(1, std::memory_order_relaxed);
    }
    if (log) {
      RAMPART_LOG(Warning) << "agent " << agent_id
                           << " is over its event rate limit ("
                           << service_.limiter_.options().events_per_second
                           << " events/s, burst "
                           << service_.limiter_.options().burst
                           << "): its stream is read more slowly";
    }
    return;
  }
  absl::StatusOr<ConvertedBatch> converted =
      limited.ok() ? ToDomain(batch, agent_id, spool_epoch, now)
                   : absl::StatusOr<ConvertedBatch>(limited);
  if (!converted.ok()) {
    if (converted.status().code() != absl::StatusCode::kResourceExhausted) {
      service_.Rejected("invalid_batch").Increment();
    }
    Ops ops;
    {
      absl::MutexLock lock(&mu_);
      RejectBatchLocked(sequence, converted.status().code(),
                        std::string(converted.status().message()));
      ops = TakeOpsLocked(/*want_read=*/true);
    }
    Execute(std::move(ops));
    return;
  }
  IngestPipeline::Item item{
      .id = std::move(converted->id),
      .events = std::move(converted->events),
      .enqueued = now,
      .rejected_events = converted->rejected.size(),
      .done =
          [self = shared_from_this(),
           sequence](absl::StatusOr<IngestResult> result) {
            self->OnIngested(sequence, std::move(result));
          },
  };
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    if (!converted->rejected.empty()) {
      std::string text =
          absl::StrFormat("batch %d: %d of %d events dropped", sequence,
                          converted->rejected.size(), batch.events_size());
      for (const auto& [index, reason] : converted->rejected) {
        if (text.size() > kMaxNoticeText) {
          break;
        }
        absl::StrAppendFormat(&text, "; event %d: %s", index, reason);
      }
      NoticeLocked(absl::StatusCode::kInvalidArgument, text, sequence);
      ops = TakeOpsLocked(false);
    }
    pending_sequences_.insert(sequence);
    ++inflight_batches_;
  }
  Execute(std::move(ops));
  Offer(std::move(item));
}

void AgentService::Stream::HandleEnforced(const v1::EnforcedRevision& e) {
  if (e.ban_list_epoch() != service_.options_.ban_list_epoch) {
    return;  // another lineage: its snapshot is on the way
  }
  service_.distributor_.ReportEnforced(AgentId(), e.revision());
}

void AgentService::Stream::Offer(IngestPipeline::Item item) {
  const uint64_t sequence = item.id.has_value() ? item.id->sequence : 0;
  IngestPipeline& pipeline = service_.pipeline_;
  for (;;) {
    const bool pushed =
        pipeline.TryPush(std::move(item), [weak = weak_from_this()] {
          if (std::shared_ptr<Stream> s = weak.lock()) {
            s->OnRoom();
          }
        });
    if (!pushed) {
      service_.reads_deferred_.Increment();
    }
    Ops ops;
    {
      absl::MutexLock lock(&mu_);
      if (pushed) {
        ops = TakeOpsLocked(/*want_read=*/true);
      } else if (finish_status_.has_value() || pipeline.stopping()) {
        ForgetBatchLocked(sequence);  // not acked: the agent resends it
        RequestFinishLocked(
            grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"),
            /*graceful=*/true);
        ops = TakeOpsLocked(false);
      } else if (room_signalled_) {
        room_signalled_ = false;  // room appeared while we were failing
        continue;
      } else {
        // Queue full: park the batch and do not read on. HTTP/2 flow control
        // now holds the agent back.
        deferred_ = std::move(item);
        return;
      }
    }
    Execute(std::move(ops));
    return;
  }
}

void AgentService::Stream::OnRoom() {
  std::optional<IngestPipeline::Item> item;
  {
    absl::MutexLock lock(&mu_);
    if (done_) {
      return;
    }
    if (!deferred_.has_value()) {
      room_signalled_ = true;  // Offer() is between its push and parking
      return;
    }
    item = std::move(deferred_);
    deferred_.reset();
    last_seen_ = service_.clock_.Now();  // its heartbeats were waiting unread
  }
  Offer(std::move(*item));
}

void AgentService::Stream::RetryThrottled(absl::Time now) {
  std::optional<v1::EventBatch> batch;
  {
    absl::MutexLock lock(&mu_);
    if (!throttled_.has_value() || done_ || now < throttled_until_) {
      return;
    }
    batch = std::move(throttled_);
    throttled_.reset();
    last_seen_ = now;  // its heartbeats were waiting unread
    service_.throttled_streams_.fetch_sub(1, std::memory_order_relaxed);
  }
  HandleBatch(*batch);
}

void AgentService::Stream::OnIngested(uint64_t sequence,
                                      absl::StatusOr<IngestResult> result) {
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    if (done_) {
      return;  // the service may already be gone
    }
    ForgetBatchLocked(sequence);
    if (result.ok()) {
      ack_.add_sequences(sequence);
      ack_dirty_ = true;
      SettleLocked(sequence);
    } else if (IsPermanentBatchError(result.status().code())) {
      RejectBatchLocked(sequence, result.status().code(),
                        std::string(result.status().message()));
    } else {
      // Transient (store down, commit conflict): the batch stays
      // unacknowledged; end the stream so that the agent reconnects with
      // backoff and resends it.
      const std::string why =
          absl::StrFormat("batch %d not stored, resend it: %s", sequence,
                          result.status().ToString());
      if (!finish_status_.has_value()) {
        v1::ServerMessage m;
        v1::Notice* n = m.mutable_notice();
        n->set_code(static_cast<int32_t>(absl::StatusCode::kUnavailable));
        n->set_message(why);
        SetDuration(n->mutable_retry_after(),
                    service_.options_.unavailable_retry_after);
        final_notice_ = std::move(m);
      }
      RequestFinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, why),
                          /*graceful=*/true);
    }
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::OnPublished(
    const std::vector<JournalEntry>& entries) {
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    if (done_ || finish_status_.has_value()) {
      return;
    }
    AppendLiveLocked(entries, service_.clock_.Now());
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::OnWriteDone(bool ok) {
  const ReactionScope reaction(this);
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    write_in_flight_ = false;
    if (ok && current_published_.has_value()) {
      service_.push_latency_.ObserveDuration(service_.clock_.Now() -
                                             *current_published_);
    }
    current_published_.reset();
    if (!ok) {
      RequestFinishLocked(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"),
          /*graceful=*/false);
    }
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::OnCancel() {
  const ReactionScope reaction(this);
  Ops ops;
  {
    absl::MutexLock lock(&mu_);
    RequestFinishLocked(
        grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"),
        /*graceful=*/false);
    ops = TakeOpsLocked(false);
  }
  Execute(std::move(ops));
}

void AgentService::Stream::OnDone() {
  TsanAcquire(this);  // every other reaction has returned
  uint64_t handle = 0;
  std::string agent_id;
  bool registered = false;
  std::optional<IngestPipeline::Item> deferred;
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
    handle = distributor_handle_;
    agent_id = agent_id_;
    registered = registered_;
    deferred = std::move(deferred_);  // its `done` holds a reference to us
    deferred_.reset();
    if (throttled_.has_value()) {  // never acked: the agent resends it
      throttled_.reset();
      service_.throttled_streams_.fetch_sub(1, std::memory_order_relaxed);
    }
    banlist_.clear();
    control_.clear();
    early_.clear();
  }
  deferred.reset();
  if (handle != 0) {
    service_.distributor_.Disconnect(handle);
  }
  std::shared_ptr<Stream> self = std::move(self_);
  // Last use of service_: a drain waiting for this stream may return and the
  // service may be destroyed right after.
  service_.StreamDone(this, agent_id, registered);
  // `self` may be the last reference: nothing below touches members.
}

void AgentService::Stream::Execute(Ops ops) {
  for (;;) {
    if (ops.finish.has_value()) {
      Finish(std::move(*ops.finish));
      return;  // OnDone may run (and free the call) from here on
    }
    if (!ops.any()) {
      return;
    }
    std::shared_ptr<const Snapshot> snapshot;
    if (ops.plan) {
      snapshot = service_.CurrentSnapshot();
    }
    if (ops.read) {
      StartRead(&in_);
    }
    if (ops.write != nullptr) {
      StartWrite(ops.write);
    }
    absl::MutexLock lock(&mu_);
    --issuing_;
    if (ops.plan) {
      write_in_flight_ = false;  // the slot was reserved for the plan
      InstallSnapshotLocked(std::move(snapshot));
    }
    ops = TakeOpsLocked(false);
  }
}

AgentService::Stream::Ops AgentService::Stream::TakeOpsLocked(bool want_read) {
  Ops ops;
  if (finish_called_ || done_) {
    return ops;
  }
  if (want_read && !finish_status_.has_value()) {
    ops.read = true;
  }
  if (!write_in_flight_) {
    NextWriteLocked(ops);
  }
  if (ops.any()) {
    ++issuing_;
  } else if (FinishDueLocked()) {
    finish_called_ = true;
    ops.finish = *finish_status_;
  }
  return ops;
}

void AgentService::Stream::NextWriteLocked(Ops& ops) {
  v1::ServerMessage message;
  std::optional<absl::Time> published;
  if (!control_.empty()) {
    message = std::move(control_.front());
    control_.pop_front();
  } else if (ack_dirty_) {
    message = TakeAckLocked();
  } else if (finish_status_.has_value()) {
    if (!graceful_ || inflight_batches_ > 0 || !final_notice_.has_value()) {
      return;
    }
    message = std::move(*final_notice_);
    final_notice_.reset();
  } else if (!banlist_.empty()) {
    BanListItem& item = banlist_.front();
    if (item.is_snapshot && item.snapshot == nullptr) {
      // Plan outside the lock; the write slot stays reserved meanwhile.
      snapshot_state_ = SnapshotState::kPlanning;
      write_in_flight_ = true;
      ops.plan = true;
      return;
    }
    bool exhausted = false;
    message = NextBanListMessageLocked(item, &exhausted);
    published = item.published_at;
    if (exhausted) {
      banlist_.pop_front();
    }
  } else {
    return;
  }
  current_write_ = std::move(message);
  current_published_ = published;
  write_in_flight_ = true;
  ops.write = &current_write_;
  // NOTE: no WriteOptions::set_buffer_hint() even when more is queued: a
  // buffered write completes only when a later write flushes it, and with one
  // write in flight the next write starts only after that completion, so the
  // stream would stall.
}

bool AgentService::Stream::FinishDueLocked() const {
  if (!finish_status_.has_value() || finish_called_ || issuing_ > 0 ||
      write_in_flight_) {
    return false;
  }
  if (graceful_ && (inflight_batches_ > 0 || !control_.empty() || ack_dirty_ ||
                    final_notice_.has_value())) {
    return false;
  }
  return true;
}

void AgentService::Stream::RequestFinishLocked(grpc::Status status,
                                               bool graceful) {
  if (finish_called_) {
    return;
  }
  if (!finish_status_.has_value()) {
    finish_status_ = std::move(status);
    graceful_ = graceful;
  } else if (!graceful) {
    graceful_ = false;  // an abort overrides a graceful end in progress
  }
  // A parked batch is never pushed now; the agent resends it.
  if (deferred_.has_value()) {
    ForgetBatchLocked(deferred_->id.has_value() ? deferred_->id->sequence : 0);
    deferred_.reset();
  }
  banlist_.clear();
  early_.clear();
  snapshot_state_ = SnapshotState::kNone;
  if (!graceful_) {
    control_.clear();
    ack_dirty_ = false;
    final_notice_.reset();
  }
}

void AgentService::Stream::ForgetBatchLocked(uint64_t sequence) {
  if (auto it = pending_sequences_.find(sequence);
      it != pending_sequences_.end()) {
    pending_sequences_.erase(it);
  }
  --inflight_batches_;
}

void AgentService::Stream::SettleLocked(uint64_t sequence) {
  max_settled_ = std::max(max_settled_, sequence);
}

void AgentService::Stream::RejectBatchLocked(uint64_t sequence,
                                             absl::StatusCode code,
                                             std::string_view message) {
  v1::BatchRejection* r = ack_.add_rejected();
  r->set_sequence(sequence);
  r->set_code(static_cast<int32_t>(code));
  r->set_message(SanitizeText(message, kMaxRejectionText));
  ack_dirty_ = true;
  if (sequence > 0) {
    SettleLocked(sequence);
  }
}

void AgentService::Stream::NoticeLocked(absl::StatusCode code,
                                        std::string_view message,
                                        uint64_t batch_sequence) {
  const absl::Time now = service_.clock_.Now();
  if (now - notice_window_start_ >= absl::Minutes(1)) {
    notice_window_start_ = now;
    notices_in_window_ = 0;
  }
  if (notices_in_window_ >= service_.options_.notices_per_minute) {
    return;
  }
  ++notices_in_window_;
  v1::ServerMessage m;
  v1::Notice* n = m.mutable_notice();
  n->set_code(static_cast<int32_t>(code));
  n->set_message(SanitizeText(message, kMaxNoticeText));
  n->set_batch_sequence(batch_sequence);
  control_.push_back(std::move(m));
}

uint64_t AgentService::Stream::DurableThroughLocked() {
  // The agent sends batches in increasing order starting with its oldest
  // unacknowledged one, so everything below the lowest unsettled sequence
  // of this stream is durable, rejected or abandoned (docs/protocol.md).
  const uint64_t candidate = pending_sequences_.empty()
                                 ? max_settled_
                                 : *pending_sequences_.begin() - 1;
  watermark_ = std::max(watermark_, candidate);
  return watermark_;
}

v1::ServerMessage AgentService::Stream::TakeAckLocked() {
  v1::ServerMessage m;
  v1::BatchAck* ack = m.mutable_batch_ack();
  ack->Swap(&ack_);
  ack_.Clear();
  ack_dirty_ = false;
  ack->set_durable_through(DurableThroughLocked());
  service_.RecordWatermark(agent_id_, spool_epoch_, ack->durable_through());
  return m;
}

v1::ServerMessage AgentService::Stream::NextBanListMessageLocked(
    BanListItem& item, bool* exhausted) {
  const uint64_t epoch = service_.options_.ban_list_epoch;
  v1::ServerMessage m;
  if (item.is_snapshot) {
    const std::vector<VersionedBan>& bans = item.snapshot->bans;
    const size_t chunk =
        static_cast<size_t>(std::clamp(service_.options_.snapshot_chunk_entries,
                                       1, v1::kMaxSnapshotChunkEntries));
    const size_t end = std::min(bans.size(), item.next_entry + chunk);
    v1::BanListSnapshot* s = m.mutable_snapshot();
    s->set_snapshot_id(item.snapshot_id);
    s->set_ban_list_epoch(epoch);
    s->set_revision(item.snapshot->revision);
    s->set_chunk_index(item.next_chunk++);
    s->set_total_entries(static_cast<uint32_t>(bans.size()));
    for (size_t i = item.next_entry; i < end; ++i) {
      *s->add_entries() = ToProto(bans[i].ban, bans[i].revision);
    }
    item.next_entry = end;
    *exhausted = end == bans.size();
    s->set_final_chunk(*exhausted);
    return m;
  }
  v1::BanListDelta* d = m.mutable_delta();
  d->set_ban_list_epoch(epoch);
  d->set_from_revision(item.from_revision);
  size_t n = item.changes.size();
  if (!item.coalesced && n > static_cast<size_t>(v1::kMaxDeltaChanges)) {
    n = static_cast<size_t>(v1::kMaxDeltaChanges);
  }
  for (size_t i = 0; i < n; ++i) {
    *d->add_changes() = ToProto(item.changes[i]);
  }
  if (n == item.changes.size()) {
    d->set_to_revision(item.to_revision);
    *exhausted = true;
  } else {
    // An exact journal slice: revisions are consecutive, so it can be cut
    // anywhere.
    const uint64_t to = item.changes[n - 1].revision;
    d->set_to_revision(to);
    item.from_revision = to;
    item.changes.erase(item.changes.begin(),
                       item.changes.begin() + static_cast<ptrdiff_t>(n));
    *exhausted = false;
  }
  return m;
}

void AgentService::Stream::AppendLiveLocked(std::vector<JournalEntry> entries,
                                            absl::Time now) {
  if (phase_ == Phase::kCatchingUp ||
      snapshot_state_ == SnapshotState::kPlanning) {
    if (early_.empty()) {
      early_published_ = now;
    }
    early_.insert(early_.end(), std::make_move_iterator(entries.begin()),
                  std::make_move_iterator(entries.end()));
    return;
  }
  if (snapshot_state_ == SnapshotState::kPending) {
    return;  // the snapshot, planned later, contains these changes
  }
  std::vector<JournalEntry> fresh;
  for (JournalEntry& e : entries) {
    if (e.revision > queued_revision_) {
      fresh.push_back(std::move(e));
    }
  }
  if (fresh.empty()) {
    return;
  }
  const uint64_t to = fresh.back().revision;
  const size_t threshold = std::clamp<size_t>(
      service_.options_.coalesce_threshold, 1,
      std::max<size_t>(1, service_.options_.max_outbound_messages - 1));
  if (banlist_.size() >= threshold && !banlist_.back().is_snapshot) {
    // The agent is behind: merge into the last queued delta.
    BanListItem& tail = banlist_.back();
    tail.changes = CoalesceJournal(std::move(tail.changes), fresh);
    tail.to_revision = to;
    tail.coalesced = true;
    if (!tail.published_at.has_value()) {
      tail.published_at = now;
    }
    queued_revision_ = to;
    if (tail.changes.size() >
        std::clamp<size_t>(service_.options_.max_coalesced_changes, 1,
                           static_cast<size_t>(v1::kMaxDeltaChanges))) {
      ReplaceWithSnapshotLocked();
    }
    return;
  }
  banlist_.push_back(BanListItem{.from_revision = queued_revision_,
                                 .to_revision = to,
                                 .changes = std::move(fresh),
                                 .published_at = now});
  queued_revision_ = to;
  if (banlist_.size() > service_.options_.max_outbound_messages) {
    ReplaceWithSnapshotLocked();
  }
}

void AgentService::Stream::ReplaceWithSnapshotLocked() {
  // One snapshot supersedes every queued delta and any partly sent snapshot
  // (the agent discards an incomplete snapshot when a new snapshot_id
  // starts).
  banlist_.clear();
  banlist_.push_back(
      BanListItem{.is_snapshot = true, .snapshot_id = next_snapshot_id_++});
  snapshot_state_ = SnapshotState::kPending;
  service_.snapshot_fallbacks_.Increment();
}

void AgentService::Stream::InstallSnapshotLocked(
    std::shared_ptr<const Snapshot> snapshot) {
  std::vector<JournalEntry> early = std::move(early_);
  early_.clear();
  snapshot_state_ = SnapshotState::kNone;
  if (finish_status_.has_value() || banlist_.empty() ||
      !banlist_.front().is_snapshot || banlist_.front().snapshot != nullptr) {
    return;  // ending: nothing more is pushed
  }
  queued_revision_ = snapshot->revision;
  banlist_.front().snapshot = std::move(snapshot);
  if (!early.empty()) {
    AppendLiveLocked(std::move(early), early_published_);
  }
}

// ---------------------------------------------------------------------------
// AgentService

AgentService::AgentService(const AgentServiceOptions& options,
                           BanDistributor& distributor,
                           IngestPipeline& pipeline, Clock& clock,
                           metrics::Registry& metrics,
                           ProtectedAddresses* protect,
                           EnrollmentManager* identity)
    : options_(options),
      distributor_(distributor),
      pipeline_(pipeline),
      clock_(clock),
      identity_(identity),
      connected_agents_(metrics.GetGauge(
          "rampart_agents_connected", "Agents with an open stream past Hello")),
      unauthenticated_gauge_(metrics.GetGauge(
          "rampart_agent_streams_unauthenticated",
          "Agent streams whose Hello is not yet accepted (each ends after "
          "limits.hello_timeout)")),
      push_latency_(metrics.GetHistogram(
          "rampart_agent_push_latency_seconds",
          "Time from a ban-list change being published until the write of "
          "the delta carrying it to an agent completed")),
      reads_deferred_(metrics.GetCounter(
          "rampart_agent_reads_deferred_total",
          "Times a stream's batch was refused by the full ingest queue; the "
          "stream reads no further until it is accepted (backpressure "
          "through HTTP/2 flow control)")),
      snapshot_fallbacks_(metrics.GetCounter(
          "rampart_agent_snapshot_fallbacks_total",
          "Times queued deltas for a slow agent were replaced by a snapshot")),
      batches_throttled_(metrics.GetCounter(
          "rampart_agent_batches_throttled_total",
          "Times an event batch was held back (its stream read no further "
          "until the tokens were due) because its agent exceeded "
          "limits.agent_events_per_second / agent_events_burst")),
      batches_oversized_(metrics.GetCounter(
          "rampart_agent_batches_oversized_total",
          "Event batches refused because they held more than "
          "limits.max_events_per_batch events")),
      limiter_(options.rate),
      protect_(protect) {
  for (std::string_view reason :
       {"no_hello", "duplicate_hello", "invalid_hello", "unauthenticated",
        "invalid_batch", "agent_limit", "unauthenticated_limit",
        "hello_timeout", "draining"}) {
    rejected_.emplace(
        std::string(reason),
        &metrics.GetCounter("rampart_agent_messages_rejected_total",
                            "Agent messages or streams refused, by reason",
                            {{"reason", std::string(reason)}}));
  }
  if (identity_ != nullptr) {
    identity_->SetCertificateListener([this](const std::string& agent_id) {
      OnCertificateChanged(agent_id);
    });
  }
  if (options_.sweep_interval > absl::ZeroDuration()) {
    sweeper_ = std::thread([this] { SweepLoop(); });
  }
  if (options_.throttle_retry_interval > absl::ZeroDuration()) {
    throttle_retrier_ = std::thread([this] { ThrottleRetryLoop(); });
  }
}

AgentService::~AgentService() {
  if (identity_ != nullptr) {
    identity_->SetCertificateListener(nullptr);
  }
  {
    absl::MutexLock lock(&sweep_mu_);
    stop_sweep_ = true;
  }
  if (sweeper_.joinable()) {
    sweeper_.join();
  }
  if (throttle_retrier_.joinable()) {
    throttle_retrier_.join();
  }
}

void AgentService::ConfigureServerBuilder(grpc::ServerBuilder& builder,
                                          const AgentServiceOptions& options) {
  builder.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
  // Detect half-dead agents (protocol: keepalive pings every 30 s).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Accept the agents' own 30 s pings (the default minimum is 5 minutes,
  // which would answer them with GOAWAY too_many_pings).
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Connections that never finish their (TLS) handshake are dropped after
  // hello_timeout (gRPC's default is 120 s), and one connection cannot open
  // more than max_streams_per_connection streams at once (default:
  // unlimited). Idle connections (no call for 10 minutes) are closed; no
  // connection age limit, since agents keep one stream open for days.
  builder.AddChannelArgument(
      GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
      static_cast<int>(std::clamp<int64_t>(
          absl::ToInt64Milliseconds(options.hello_timeout), 1000, 300'000)));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             std::max(1, options.max_streams_per_connection));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 10 * 60 * 1000);
}

metrics::Counter& AgentService::Rejected(std::string_view reason) {
  const auto it = rejected_.find(reason);
  return *(it != rejected_.end() ? it->second : rejected_.begin()->second);
}

grpc::Status AgentService::AuthenticatePeer(
    const std::optional<PeerCertificate>& cert, const std::string& agent_id,
    std::string_view peer) const {
  if (identity_ == nullptr) {
    return grpc::Status::OK;  // plaintext (--insecure): no identity
  }
  const absl::Status s = identity_->Authenticate(cert, agent_id);
  if (!s.ok()) {
    RAMPART_LOG(Warning) << "agent stream from " << peer << " refused: " << s;
  }
  return ToGrpcStatus(s);
}

void AgentService::OnCertificateChanged(const std::string& agent_id) {
  std::shared_ptr<Stream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = agents_.find(agent_id); it != agents_.end()) {
      stream = it->second.weak.lock();
    }
  }
  if (stream != nullptr) {
    stream->RecheckIdentity();
  }
}

bool AgentService::EndAgentStream(const std::string& agent_id,
                                  const grpc::Status& status) {
  std::shared_ptr<Stream> stream;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = agents_.find(agent_id); it != agents_.end()) {
      stream = it->second.weak.lock();
    }
  }
  if (stream == nullptr) {
    return false;
  }
  stream->Terminate(status);
  return true;
}

grpc::ServerBidiReactor<v1::AgentMessage, v1::ServerMessage>*
AgentService::Connect(grpc::CallbackServerContext* context) {
  auto stream = std::make_shared<Stream>(*this, context);
  // Until its Hello is accepted the stream counts against the caps of its
  // connection, its source address and all unauthenticated streams (not
  // against max_agents): one client cannot crowd the agents out.
  Unauthenticated keys{.connection = context->peer(),
                       .address = PeerAddress(*context)};
  std::optional<grpc::Status> reject;
  {
    absl::MutexLock lock(&mu_);
    const auto count = [](const std::map<std::string, int, std::less<>>& m,
                          const std::string& key) {
      const auto it = m.find(key);
      return it == m.end() ? 0 : it->second;
    };
    std::string over;
    if (draining_) {
      reject = grpc::Status(grpc::StatusCode::UNAVAILABLE, "server draining");
    } else if (unauthenticated_.size() >=
               static_cast<size_t>(
                   std::max(0, options_.max_unauthenticated_streams))) {
      over =
          absl::StrFormat("in all (%d)", options_.max_unauthenticated_streams);
    } else if (count(unauthenticated_per_address_, keys.address) >=
               options_.max_unauthenticated_streams_per_address) {
      over = absl::StrFormat("from this address (%d)",
                             options_.max_unauthenticated_streams_per_address);
    } else if (count(unauthenticated_per_connection_, keys.connection) >=
               options_.max_unauthenticated_streams_per_connection) {
      over =
          absl::StrFormat("on this connection (%d)",
                          options_.max_unauthenticated_streams_per_connection);
    } else {
      streams_.emplace(stream.get(), stream);
      ++unauthenticated_per_address_[keys.address];
      ++unauthenticated_per_connection_[keys.connection];
      unauthenticated_.emplace(stream.get(), std::move(keys));
      unauthenticated_gauge_.Set(static_cast<double>(unauthenticated_.size()));
    }
    if (!over.empty()) {
      reject = grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrFormat("too many agent streams awaiting their Hello %s: "
                          "retry later",
                          over));
    }
  }
  if (reject.has_value()) {
    Rejected(reject->error_code() == grpc::StatusCode::UNAVAILABLE
                 ? "draining"
                 : "unauthenticated_limit")
        .Increment();
  }
  stream->Start(std::move(reject));
  return stream.get();
}

void AgentService::RecordHello(const v1::Hello& hello, std::string peer) {
  AgentFacts f;
  f.agent_id = hello.agent_id();
  f.site = hello.site();
  f.hostname = hello.hostname();
  f.version = hello.agent_version();
  f.peer_address = std::move(peer);
  f.firewall_backend = hello.capabilities().firewall_backend();
  for (const std::string& a : hello.host_addresses()) {
    if (auto ip = IpAddress::Parse(a)) {  // validated by ValidateHello
      f.host_addresses.push_back(*ip);
    }
  }
  f.connected_since = clock_.Now();
  if (protect_ != nullptr) {
    // Only the stream's peer address is proven; Hello.host_addresses are
    // recorded as claimed and protect nothing until an admin approves them.
    if (absl::Status s = protect_->AgentConnected(
            f.agent_id, PeerIp(f.peer_address), f.host_addresses, clock_.Now());
        !s.ok()) {
      RAMPART_LOG(Warning) << "agent " << f.agent_id
                           << ": protected address not stored: " << s;
    }
  }
  absl::MutexLock lock(&mu_);
  facts_[f.agent_id] = std::move(f);
}

void AgentService::RecordHeartbeat(const std::string& agent_id,
                                   const v1::Heartbeat& hb) {
  const absl::Time now = clock_.Now();
  // Hostile input: a duration or time outside these bounds is clamped, so a
  // broken agent clock shows as a large skew, never as garbage.
  constexpr absl::Duration kMaxReported = absl::Hours(24 * 365);
  const absl::Duration lag = std::clamp(FromProto(hb.tailer_lag()),
                                        absl::ZeroDuration(), kMaxReported);
  const absl::Duration skew = hb.has_agent_time()
                                  ? std::clamp(FromProto(hb.agent_time()) - now,
                                               -kMaxReported, kMaxReported)
                                  : absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  auto it = facts_.find(agent_id);
  if (it == facts_.end()) {
    return;  // no Hello recorded: nothing to attach the figures to
  }
  AgentFacts& f = it->second;
  f.spool_depth_batches = hb.spool_depth_batches();
  f.spool_dropped_batches = hb.spool_dropped_batches();
  f.tailer_lag = lag;
  f.clock_skew = skew;
  f.local_fallback_bans = hb.local_fallback_bans();
}

std::vector<AgentFacts> AgentService::KnownAgents() const {
  absl::MutexLock lock(&mu_);
  std::vector<AgentFacts> out;
  out.reserve(facts_.size());
  for (const auto& [id, f] : facts_) {
    out.push_back(f);
    if (agents_.find(id) == agents_.end()) {
      out.back().connected_since.reset();
    }
  }
  return out;
}

absl::StatusOr<std::weak_ptr<AgentService::Stream>> AgentService::RegisterAgent(
    const std::string& agent_id, const std::shared_ptr<Stream>& stream) {
  absl::MutexLock lock(&mu_);
  if (agents_.find(agent_id) == agents_.end() &&
      agents_.size() >= static_cast<size_t>(std::max(0, options_.max_agents))) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "server at its agent limit (%d connected)", options_.max_agents));
  }
  ReleaseUnauthenticatedLocked(stream.get());
  AgentSlot& slot = agents_[agent_id];
  std::weak_ptr<Stream> older = slot.stream != stream.get()
                                    ? std::move(slot.weak)
                                    : std::weak_ptr<Stream>();
  slot.stream = stream.get();
  slot.weak = stream;
  ++connected_;
  connected_agents_.Set(connected_);
  return older;
}

void AgentService::ReleaseUnauthenticatedLocked(Stream* stream) {
  const auto it = unauthenticated_.find(stream);
  if (it == unauthenticated_.end()) {
    return;
  }
  for (auto [counts, key] :
       {std::pair{&unauthenticated_per_connection_, &it->second.connection},
        std::pair{&unauthenticated_per_address_, &it->second.address}}) {
    if (auto c = counts->find(*key); c != counts->end() && --c->second <= 0) {
      counts->erase(c);
    }
  }
  unauthenticated_.erase(it);
  unauthenticated_gauge_.Set(static_cast<double>(unauthenticated_.size()));
}

void AgentService::StreamDone(Stream* stream, const std::string& agent_id,
                              bool connected) {
  absl::MutexLock lock(&mu_);
  streams_.erase(stream);
  ReleaseUnauthenticatedLocked(stream);
  if (connected) {
    --connected_;
    connected_agents_.Set(connected_);
    if (auto it = agents_.find(agent_id);
        it != agents_.end() && it->second.stream == stream) {
      agents_.erase(it);
    }
  }
}

uint64_t AgentService::RememberedWatermark(const std::string& agent_id,
                                           uint64_t spool_epoch) const {
  absl::MutexLock lock(&mu_);
  const auto it = watermarks_.find(agent_id);
  return it != watermarks_.end() && it->second.spool_epoch == spool_epoch
             ? it->second.durable_through
             : 0;
}

void AgentService::RecordWatermark(const std::string& agent_id,
                                   uint64_t spool_epoch,
                                   uint64_t durable_through) {
  absl::MutexLock lock(&mu_);
  Watermark& w = watermarks_[agent_id];
  if (w.spool_epoch != spool_epoch) {
    w = Watermark{.spool_epoch = spool_epoch};
  }
  w.durable_through = std::max(w.durable_through, durable_through);
}

std::shared_ptr<const AgentService::Snapshot> AgentService::CurrentSnapshot() {
  const uint64_t revision = distributor_.revision();
  {
    absl::MutexLock lock(&mu_);
    if (snapshot_cache_ != nullptr && snapshot_cache_->revision == revision) {
      return snapshot_cache_;
    }
  }
  // An unknown future revision always yields a snapshot (PlanFor contract).
  return SnapshotFromPlan(
      distributor_.PlanFor(std::numeric_limits<uint64_t>::max()));
}

std::shared_ptr<const AgentService::Snapshot> AgentService::SnapshotFromPlan(
    CatchUpPlan plan) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->revision = plan.to_revision;
  snapshot->bans = std::move(plan.snapshot);
  std::sort(snapshot->bans.begin(), snapshot->bans.end(),
            [](const VersionedBan& a, const VersionedBan& b) {
              return a.ban.id < b.ban.id;
            });
  absl::MutexLock lock(&mu_);
  if (snapshot_cache_ == nullptr ||
      snapshot_cache_->revision <= snapshot->revision) {
    snapshot_cache_ = snapshot;
  }
  return snapshot;
}

std::vector<std::shared_ptr<AgentService::Stream>> AgentService::LiveStreams()
    const {
  std::vector<std::shared_ptr<Stream>> out;
  absl::MutexLock lock(&mu_);
  out.reserve(streams_.size());
  for (const auto& [raw, weak] : streams_) {
    if (std::shared_ptr<Stream> s = weak.lock()) {
      out.push_back(std::move(s));
    }
  }
  return out;
}

void AgentService::StartDrain() {
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }
  for (const std::shared_ptr<Stream>& s : LiveStreams()) {
    s->Drain();
  }
}

bool AgentService::AwaitDrained(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto empty = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return streams_.empty();
  };
  return mu_.AwaitWithTimeout(absl::Condition(&empty), timeout);
}

bool AgentService::Shutdown(absl::Duration timeout) {
  StartDrain();
  if (AwaitDrained(timeout)) {
    return true;
  }
  for (const std::shared_ptr<Stream>& s : LiveStreams()) {
    s->Terminate(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                              "server draining (drain timeout)"));
  }
  return false;
}

void AgentService::SweepIdleStreams() {
  const absl::Time now = clock_.Now();
  for (const std::shared_ptr<Stream>& s : LiveStreams()) {
    s->CheckIdle(now);
  }
}

void AgentService::SweepLoop() {
  // Often enough that a stream without Hello lives at most about 1.5 x
  // hello_timeout.
  const absl::Duration interval =
      std::min(options_.sweep_interval,
               std::max(absl::Seconds(1), options_.hello_timeout / 2));
  absl::MutexLock lock(&sweep_mu_);
  while (!sweep_mu_.AwaitWithTimeout(absl::Condition(&stop_sweep_), interval)) {
    sweep_mu_.Unlock();
    SweepIdleStreams();
    sweep_mu_.Lock();
  }
}

void AgentService::ThrottleRetryLoop() {
  absl::MutexLock lock(&sweep_mu_);
  while (!sweep_mu_.AwaitWithTimeout(absl::Condition(&stop_sweep_),
                                     options_.throttle_retry_interval)) {
    sweep_mu_.Unlock();
    RetryThrottledStreams();
    sweep_mu_.Lock();
  }
}

void AgentService::RetryThrottledStreams() {
  if (throttled_streams_.load(std::memory_order_relaxed) == 0) {
    return;
  }
  const absl::Time now = clock_.Now();
  for (const std::shared_ptr<Stream>& s : LiveStreams()) {
    s->RetryThrottled(now);
  }
}

int AgentService::open_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

int AgentService::connected_agents() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

int AgentService::unauthenticated_streams() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(unauthenticated_.size());
}

}  // namespace rampart::server
