#include "agent/daemon/server_client.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_format.h"
#include "agent/daemon/conversions.h"
#include "common/logging.h"
#include "common/version.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "rampart/v1/limits.h"

namespace rampart::agent {
namespace {

constexpr size_t kMaxSendBytes = 3u << 20;

}  // namespace

Backoff::Backoff(absl::Duration min, absl::Duration max, double jitter,
                 std::function<double()> uniform01)
    : min_(min), max_(max), jitter_(jitter), uniform01_(std::move(uniform01)) {}

absl::Duration Backoff::Next() {
  absl::Duration base = min_;
  for (int i = 0; i < attempt_ && base < max_; ++i) {
    base *= 2;
  }
  base = std::min(base, max_);
  ++attempt_;
  const double u = uniform01_ ? uniform01_() : 0.5;
  return base * (1.0 + jitter_ * (2.0 * u - 1.0));
}

ServerClient::ServerClient(const ServerClientOptions& options, Spool& spool,
                           BanListKeeper& keeper, Clock& clock,
                           std::function<double()> uniform01)
    : options_(options),
      spool_(spool),
      keeper_(keeper),
      clock_(clock),
      backoff_(options.backoff_min, options.backoff_max, options.jitter,
               std::move(uniform01)),
      heartbeat_interval_(options.heartbeat_interval),
      max_unacked_(std::clamp<uint32_t>(options.max_unacked_batches, 1, 1024)) {
}

ServerClient::~ServerClient() { Stop(); }

void ServerClient::Start() {
  absl::MutexLock lock(&mu_);
  if (started_) {
    return;
  }
  started_ = true;
  unreachable_since_ = clock_.Now();
  thread_ = std::thread([this] { Run(); });
}

void ServerClient::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    if (context_ != nullptr) {
      context_->TryCancel();
    }
  }
  if (thread_.joinable()) {
    thread_.join();
  }
}

void ServerClient::Wake() {
  absl::MutexLock lock(&mu_);
  wake_ = true;
}

void ServerClient::ReportLocalBans() {
  absl::MutexLock lock(&mu_);
  report_local_ = true;
}

bool ServerClient::connected() const {
  absl::MutexLock lock(&mu_);
  return welcomed_ && !ended_;
}

std::optional<absl::Time> ServerClient::unreachable_since() const {
  absl::MutexLock lock(&mu_);
  return unreachable_since_;
}

bool ServerClient::server_list_current() const {
  absl::MutexLock lock(&mu_);
  return welcomed_ && !ended_ && list_current_;
}

ServerClientStats ServerClient::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

bool ServerClient::WaitFor(absl::Duration d) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stop_), d);
  return !stop_;
}

void ServerClient::Run() {
  size_t index = 0;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) {
        return;
      }
    }
    bool welcomed = false;
    uint64_t acked_before = 0;
    {
      absl::MutexLock lock(&mu_);
      acked_before = stats_.batches_acked;
      retry_after_ = absl::ZeroDuration();
    }
    const absl::Time started = clock_.Now();
    RunStream(options_.servers[index], &welcomed);
    bool healthy = false;
    absl::Duration retry_after;
    {
      absl::MutexLock lock(&mu_);
      if (welcomed) {
        unreachable_since_ = clock_.Now();
        healthy = stats_.batches_acked > acked_before ||
                  clock_.Now() - started >= options_.healthy_stream_after;
        ++(healthy ? stats_.healthy_streams_ended
                   : stats_.unhealthy_streams_ended);
      }
      retry_after = retry_after_;
      if (stop_) {
        return;
      }
    }
    if (healthy) {
      backoff_.Reset();
    }
    if (!welcomed) {
      index = (index + 1) % options_.servers.size();
    }
    if (!WaitFor(std::max(backoff_.Next(), retry_after))) {
      return;
    }
  }
}

v1::AgentMessage ServerClient::MakeHello() const {
  v1::AgentMessage m;
  v1::Hello& h = *m.mutable_hello();
  const HelloInfo& info = options_.hello;
  h.set_agent_id(info.agent_id);
  h.set_site(info.site);
  h.set_agent_version(std::string(kVersion));
  h.set_hostname(info.hostname);
  for (const std::string& a : info.host_addresses) {
    if (h.host_addresses_size() < 64) {
      h.add_host_addresses(a);
    }
  }
  h.set_time_zone(info.time_zone);
  *h.mutable_agent_time() = TimeToProto(clock_.Now());
  const auto [epoch, revision] = keeper_.ListRevision();
  h.set_ban_list_epoch(epoch);
  h.set_enforced_revision(epoch == 0 ? 0 : revision);
  const SpoolStats spool = spool_.stats();
  h.set_spool_epoch(spool.epoch);
  h.set_oldest_unacked_sequence(spool.oldest_unacked_sequence);
  h.mutable_capabilities()->set_firewall_backend(info.firewall_backend);
  h.mutable_capabilities()->set_ipv6(true);
  for (const auto& [id, path] : info.log_sources) {
    v1::LogSource* s = h.add_log_sources();
    s->set_id(id);
    s->set_path(path);
  }
  return m;
}

v1::AgentMessage ServerClient::MakeHeartbeat() const {
  v1::AgentMessage m;
  v1::Heartbeat& hb = *m.mutable_heartbeat();
  *hb.mutable_agent_time() = TimeToProto(clock_.Now());
  const SpoolStats spool = spool_.stats();
  hb.set_spool_depth_batches(spool.unacked_batches);
  hb.set_spool_depth_bytes(spool.bytes);
  hb.set_spool_dropped_batches(spool.dropped_batches);
  hb.set_spool_dropped_events(spool.dropped_events);
  if (options_.heartbeat_stats) {
    const HeartbeatStats s = options_.heartbeat_stats();
    hb.set_lines_read(s.lines_read);
    hb.set_events_parsed(s.events_parsed);
    hb.set_tailer_backlog_bytes(s.backlog_bytes);
    *hb.mutable_tailer_lag() =
        DurationToProto(std::max(absl::ZeroDuration(), s.tailer_lag));
    hb.set_local_fallback_bans(s.local_fallback_bans);
  }
  return m;
}

v1::AgentMessage ServerClient::MakeLocalBanReport() const {
  v1::AgentMessage m;
  v1::LocalBanReport& r = *m.mutable_local_ban_report();
  if (options_.local_bans) {
    std::vector<LocalBan> bans = options_.local_bans();
    const size_t skip =
        bans.size() > static_cast<size_t>(v1::kMaxLocalBans)
            ? bans.size() - static_cast<size_t>(v1::kMaxLocalBans)
            : 0;
    for (size_t i = skip; i < bans.size(); ++i) {
      *r.add_bans() = ToProto(bans[i]);
    }
  }
  return m;
}

void ServerClient::RunStream(const std::string& target, bool* welcomed) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetMaxReceiveMessageSize(static_cast<int>(v1::kMaxMessageBytes));
  args.SetMaxSendMessageSize(static_cast<int>(v1::kMaxMessageBytes));
  // Each stream gets its own connection: a failover must not reuse a
  // subchannel of the previous target.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options_.tls.insecure) {
    credentials = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.tls.ca_pem;
    ssl.pem_cert_chain = options_.tls.cert_pem;
    ssl.pem_private_key = options_.tls.key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(target, credentials, args);
  std::unique_ptr<v1::AgentService::Stub> stub =
      v1::AgentService::NewStub(channel);
  grpc::ClientContext context;
  {
    absl::MutexLock lock(&mu_);
    if (stop_) {
      return;
    }
    context_ = &context;
    welcomed_ = false;
    ended_ = false;
    wake_ = false;
    list_current_ = false;
    in_flight_.clear();
    outbox_.clear();
    ++stats_.connect_attempts;
    stats_.server = target;
  }
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>>
      stream = stub->Connect(&context);
  std::thread reader;
  if (stream->Write(MakeHello())) {
    reader = std::thread([&] { ReadLoop(stream.get(), &context); });
  } else {
    absl::MutexLock lock(&mu_);
    ended_ = true;
  }

  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return welcomed_ || ended_ || stop_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), options_.welcome_timeout);
    *welcomed = welcomed_;
  }

  uint64_t next_send = 0;
  absl::Time next_heartbeat = absl::Now();
  bool ok = *welcomed;
  while (ok) {
    std::deque<v1::AgentMessage> out;
    size_t budget = 0;
    bool send_batches = false;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || ended_ || !outbox_.empty() || report_local_ ||
               (wake_ && in_flight_.size() < max_unacked_);
      };
      mu_.AwaitWithDeadline(absl::Condition(&ready), next_heartbeat);
      if (stop_ || ended_) {
        break;
      }
      out.swap(outbox_);
      if (report_local_) {
        report_local_ = false;
        out.push_back(MakeLocalBanReport());
      }
      if (wake_ && in_flight_.size() < max_unacked_) {
        send_batches = true;
        budget = max_unacked_ - in_flight_.size();
        wake_ = false;
      }
    }
    for (const v1::AgentMessage& m : out) {
      if (!stream->Write(m)) {
        ok = false;
        break;
      }
    }
    if (ok && absl::Now() >= next_heartbeat) {
      ok = stream->Write(MakeHeartbeat());
      absl::MutexLock lock(&mu_);
      next_heartbeat = absl::Now() + heartbeat_interval_;
    }
    while (ok && send_batches && budget > 0) {
      absl::StatusOr<std::vector<SpoolRecord>> records =
          spool_.ReadUnacked(next_send, budget, kMaxSendBytes);
      if (!records.ok()) {
        RAMPART_LOG(Error) << "reading the spool: " << records.status();
        ok = false;
        break;
      }
      if (records->empty()) {
        break;
      }
      for (const SpoolRecord& r : *records) {
        v1::AgentMessage m;
        v1::EventBatch* batch = m.mutable_event_batch();
        if (!batch->ParseFromString(r.payload)) {
          // Cannot happen for a CRC-checked record we wrote; send it empty
          // so the server rejects (settles) it rather than blocking.
          batch->Clear();
        }
        batch->set_sequence(r.sequence);
        uint64_t boundary = 0;
        {
          absl::MutexLock lock(&mu_);
          in_flight_.insert(r.sequence);
          ++stats_.batches_sent;
          boundary = replay_boundary_;
        }
        batch->set_replayed(r.sequence < boundary);
        next_send = r.sequence + 1;
        --budget;
        if (!stream->Write(m)) {
          ok = false;
          break;
        }
      }
      if (ok && budget == 0) {
        // The window is full: the next ack sets wake_ again.
        absl::MutexLock lock(&mu_);
        wake_ = true;
      }
    }
  }
  context.TryCancel();
  if (reader.joinable()) {
    reader.join();
  }
  const grpc::Status status = stream->Finish();
  {
    absl::MutexLock lock(&mu_);
    context_ = nullptr;
    ended_ = true;
    if (!stop_) {
      RAMPART_LOG(Warning) << "stream to " << target << " ended: "
                           << static_cast<int>(status.error_code()) << " "
                           << status.error_message();
    }
  }
}

void ServerClient::ReadLoop(
    grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>* stream,
    grpc::ClientContext* context) {
  v1::ServerMessage m;
  snapshot_id_ = 0;
  snapshot_items_.clear();
  bool ok = true;
  while (ok && stream->Read(&m)) {
    switch (m.payload_case()) {
      case v1::ServerMessage::kWelcome:
        ok = OnWelcome(m.welcome());
        break;
      case v1::ServerMessage::kBatchAck:
        OnBatchAck(m.batch_ack());
        break;
      case v1::ServerMessage::kSnapshot:
        ok = OnSnapshot(m.snapshot());
        break;
      case v1::ServerMessage::kDelta:
        ok = OnDelta(m.delta());
        break;
      case v1::ServerMessage::kPolicyHint:
        OnPolicyHint(m.policy_hint());
        break;
      case v1::ServerMessage::kNotice:
        RAMPART_LOG(Info) << "server notice " << m.notice().code() << ": "
                          << m.notice().message();
        if (m.notice().has_retry_after()) {
          // Hostile input: clamped to [0, 10 min].
          const absl::Duration d =
              std::clamp(DurationFromProto(m.notice().retry_after()),
                         absl::ZeroDuration(), absl::Minutes(10));
          absl::MutexLock lock(&mu_);
          retry_after_ = d;
          stats_.last_retry_after = d;
        }
        break;
      default:
        break;
    }
  }
  if (!ok) {
    context->TryCancel();
  }
  absl::MutexLock lock(&mu_);
  ended_ = true;
}

bool ServerClient::OnWelcome(const v1::Welcome& welcome) {
  const SpoolStats spool = spool_.stats();
  const uint64_t durable =
      std::min(welcome.durable_through(), spool.next_sequence - 1);
  if (durable > spool.acked_through) {
    if (absl::Status s = spool_.Ack(durable); !s.ok()) {
      RAMPART_LOG(Warning) << "spool ack: " << s;
    }
  }
  if (welcome.has_policy_hint()) {
    OnPolicyHint(welcome.policy_hint());
  }
  // An agent that has never enforced a list is "up to date" with a server
  // whose list is still empty; adopt that empty list so that the next delta
  // (from revision 0 of this lineage) applies.
  if (welcome.resync() == v1::RESYNC_MODE_UP_TO_DATE &&
      welcome.current_revision() == 0 &&
      keeper_.ListRevision().first != welcome.ban_list_epoch()) {
    if (absl::StatusOr<ApplyReport> r =
            keeper_.ApplyServerSnapshot(welcome.ban_list_epoch(), 0, {});
        !r.ok()) {
      RAMPART_LOG(Warning) << "adopting the empty ban list: " << r.status();
    }
  }
  absl::MutexLock lock(&mu_);
  welcomed_ = true;
  wake_ = true;
  // UP_TO_DATE: what the agent enforces is the server's current list.
  list_current_ = welcome.resync() == v1::RESYNC_MODE_UP_TO_DATE;
  replay_boundary_ = spool.next_sequence;
  unreachable_since_ = std::nullopt;
  ++stats_.welcomes;
  report_local_ = options_.local_bans && !options_.local_bans().empty();
  RAMPART_LOG(Info) << "connected to " << welcome.server_id() << " ("
                    << stats_.server << "), ban list revision "
                    << welcome.current_revision();
  return true;
}

void ServerClient::OnBatchAck(const v1::BatchAck& ack) {
  const SpoolStats spool = spool_.stats();
  const uint64_t durable =
      std::min(ack.durable_through(), spool.next_sequence - 1);
  if (durable > spool.acked_through) {
    if (absl::Status s = spool_.Ack(durable); !s.ok()) {
      RAMPART_LOG(Warning) << "spool ack: " << s;
    }
  }
  for (const v1::BatchRejection& r : ack.rejected()) {
    RAMPART_LOG(Error) << "server rejected batch " << r.sequence() << " ("
                       << r.code() << " " << r.message()
                       << "): dropped, it will never be accepted";
  }
  absl::MutexLock lock(&mu_);
  size_t settled = 0;
  while (!in_flight_.empty() && *in_flight_.begin() <= ack.durable_through()) {
    in_flight_.erase(in_flight_.begin());
    ++settled;
  }
  for (uint64_t s : ack.sequences()) {
    settled += in_flight_.erase(s);
  }
  for (const v1::BatchRejection& r : ack.rejected()) {
    settled += in_flight_.erase(r.sequence());
    ++stats_.batches_rejected;
  }
  stats_.batches_acked += settled;
  wake_ = true;
}

void ServerClient::QueueEnforced(const ApplyReport& report) {
  v1::AgentMessage m;
  v1::EnforcedRevision& e = *m.mutable_enforced_revision();
  e.set_ban_list_epoch(report.epoch);
  e.set_revision(report.revision);
  *e.mutable_applied_at() = TimeToProto(clock_.Now());
  e.set_entry_count(static_cast<uint32_t>(report.installed));
  for (const RefusedBan& r : report.refused) {
    if (e.errors_size() >= v1::kMaxApplyErrors) {
      e.set_errors_truncated(true);
      break;
    }
    v1::ApplyError* err = e.add_errors();
    err->set_ban_id(r.id);
    err->set_prefix(r.prefix.ToString());
    err->set_message(r.refusal.ToString().substr(0, 256));
  }
  absl::MutexLock lock(&mu_);
  // The latest revision wins: drop a queued older report.
  outbox_.erase(std::remove_if(outbox_.begin(), outbox_.end(),
                               [](const v1::AgentMessage& q) {
                                 return q.has_enforced_revision();
                               }),
                outbox_.end());
  outbox_.push_back(std::move(m));
  list_current_ = true;
}

bool ServerClient::OnSnapshot(const v1::BanListSnapshot& chunk) {
  if (chunk.snapshot_id() != snapshot_id_) {
    if (chunk.chunk_index() != 0) {
      RAMPART_LOG(Warning) << "snapshot chunk out of order; resyncing";
      return false;
    }
    snapshot_id_ = chunk.snapshot_id();
    next_chunk_ = 0;
    snapshot_items_.clear();
  }
  if (chunk.chunk_index() != next_chunk_) {
    RAMPART_LOG(Warning) << "snapshot chunk " << chunk.chunk_index()
                         << " instead of " << next_chunk_ << "; resyncing";
    return false;
  }
  ++next_chunk_;
  for (const v1::BanEntry& e : chunk.entries()) {
    absl::StatusOr<BanItem> item = ToDomain(e);
    if (!item.ok()) {
      RAMPART_LOG(Warning) << "snapshot: " << item.status();
      return false;
    }
    snapshot_items_.push_back(*item);
  }
  if (!chunk.final_chunk()) {
    return true;
  }
  snapshot_id_ = 0;
  std::vector<BanItem> items = std::move(snapshot_items_);
  snapshot_items_.clear();
  if (items.size() != chunk.total_entries()) {
    RAMPART_LOG(Warning) << "snapshot has " << items.size()
                         << " entries, announced " << chunk.total_entries();
    return false;
  }
  absl::StatusOr<ApplyReport> report = keeper_.ApplyServerSnapshot(
      chunk.ban_list_epoch(), chunk.revision(), items);
  if (!report.ok()) {
    RAMPART_LOG(Error) << "applying snapshot revision " << chunk.revision()
                       << ": " << report.status();
    absl::MutexLock lock(&mu_);
    ++stats_.apply_errors;
    return true;  // the Enforcer retries a snapshot on its next call
  }
  {
    absl::MutexLock lock(&mu_);
    ++stats_.snapshots_applied;
  }
  QueueEnforced(*report);
  return true;
}

bool ServerClient::OnDelta(const v1::BanListDelta& delta) {
  std::vector<BanChange> changes;
  changes.reserve(static_cast<size_t>(delta.changes_size()));
  for (const v1::BanChange& c : delta.changes()) {
    absl::StatusOr<BanChange> change = ToDomain(c);
    if (!change.ok()) {
      RAMPART_LOG(Warning) << "delta: " << change.status();
      return false;
    }
    changes.push_back(*change);
  }
  absl::StatusOr<ApplyReport> report =
      keeper_.ApplyServerDelta(delta.ban_list_epoch(), delta.from_revision(),
                               delta.to_revision(), changes);
  if (!report.ok()) {
    absl::MutexLock lock(&mu_);
    if (report.status().code() == absl::StatusCode::kFailedPrecondition ||
        report.status().code() == absl::StatusCode::kInvalidArgument) {
      // A gap or another lineage: reconnect; the Hello yields a snapshot.
      RAMPART_LOG(Warning) << "delta " << delta.from_revision() << "->"
                           << delta.to_revision()
                           << " does not apply: " << report.status()
                           << "; reconnecting for a snapshot";
      ++stats_.resyncs_requested;
      return false;
    }
    ++stats_.apply_errors;
    RAMPART_LOG(Error) << "applying delta: " << report.status();
    return true;
  }
  {
    absl::MutexLock lock(&mu_);
    ++stats_.deltas_applied;
  }
  QueueEnforced(*report);
  return true;
}

void ServerClient::OnPolicyHint(const v1::PolicyHint& hint) {
  if (hint.has_max_events_per_batch() && options_.on_max_events_per_batch) {
    options_.on_max_events_per_batch(static_cast<int>(
        std::clamp<uint32_t>(hint.max_events_per_batch(), 1, 5000)));
  }
  absl::MutexLock lock(&mu_);
  if (hint.has_heartbeat_interval()) {
    heartbeat_interval_ =
        std::clamp(DurationFromProto(hint.heartbeat_interval()),
                   absl::Seconds(5), absl::Seconds(300));
  }
  if (hint.has_max_unacked_batches()) {
    max_unacked_ = std::clamp<uint32_t>(hint.max_unacked_batches(), 1, 1024);
  }
}

}  // namespace rampart::agent
