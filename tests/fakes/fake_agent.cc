#include "tests/fakes/fake_agent.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/str_format.h"

namespace rampart::testing {
namespace {

void SetTime(google::protobuf::Timestamp* out, absl::Time t) {
  const int64_t ns = absl::ToUnixNanos(t);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

// "198.51.100.7" -> "198.51.100.7/32": prefixes are compared in CIDR form
// with an explicit length, whichever form the server sent.
std::string Cidr(const std::string& prefix) {
  if (prefix.find('/') != std::string::npos) {
    return prefix;
  }
  return prefix + (prefix.find(':') != std::string::npos ? "/128" : "/32");
}

absl::Status ToAbsl(const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

}  // namespace

FakeAgent::FakeAgent(std::shared_ptr<grpc::Channel> channel,
                     const Options& options)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::AgentService::NewStub(channel_)) {}

FakeAgent::~FakeAgent() {
  if (reader_thread_.joinable()) {
    context_.TryCancel();
    SetReadingPaused(false);
    reader_thread_.join();
  }
}

v1::Hello FakeAgent::MakeHello(const std::string& agent_id,
                               uint64_t ban_list_epoch,
                               uint64_t enforced_revision,
                               uint64_t spool_epoch) {
  v1::Hello h;
  h.set_agent_id(agent_id);
  h.set_site("test");
  h.set_agent_version("0.1.0");
  h.set_hostname(agent_id + ".example.net");
  h.set_time_zone("UTC");
  h.set_ban_list_epoch(ban_list_epoch);
  h.set_enforced_revision(enforced_revision);
  h.set_spool_epoch(spool_epoch);
  h.mutable_capabilities()->set_firewall_backend("none");
  h.mutable_capabilities()->set_ipv6(true);
  v1::LogSource* source = h.add_log_sources();
  source->set_id(1);
  source->set_path("/local/notesdata/IBM_TECHNICAL_SUPPORT/console.log");
  return h;
}

absl::Status FakeAgent::Open(const std::optional<v1::Hello>& hello,
                             std::map<uint64_t, v1::BanEntry> bans) {
  {
    absl::MutexLock lock(&write_mu_);
    if (stream_ != nullptr) {
      return absl::FailedPreconditionError("FakeAgent: stream already opened");
    }
    stream_ = stub_->Connect(&context_);
    reader_ = stream_.get();
  }
  if (hello.has_value()) {
    absl::MutexLock lock(&mu_);
    epoch_ = hello->ban_list_epoch();
    revision_ = hello->enforced_revision();
    bans_ = std::move(bans);
  }
  reader_thread_ = std::thread([this] { ReadLoop(); });
  if (hello.has_value()) {
    // A failed write means the server already ended the stream (stream
    // limit, draining): not an error here, WaitForEnd() tells why.
    SendHello(*hello);
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Welcome> FakeAgent::Handshake(const v1::Hello& hello,
                                                 absl::Duration timeout) {
  if (absl::Status s = Open(hello); !s.ok()) {
    return s;
  }
  absl::StatusOr<v1::ServerMessage> m =
      WaitFor(v1::ServerMessage::kWelcome, timeout);
  if (!m.ok()) {
    return m.status();
  }
  return m->welcome();
}

bool FakeAgent::Send(const v1::AgentMessage& message) {
  absl::MutexLock lock(&write_mu_);
  if (stream_ == nullptr || writes_closed_) {
    return false;
  }
  return stream_->Write(message);
}

bool FakeAgent::SendHello(const v1::Hello& hello) {
  v1::AgentMessage m;
  *m.mutable_hello() = hello;
  return Send(m);
}

bool FakeAgent::SendBatch(uint64_t sequence,
                          const std::vector<v1::AuthEvent>& events) {
  v1::AgentMessage m;
  v1::EventBatch* b = m.mutable_event_batch();
  b->set_sequence(sequence);
  for (const v1::AuthEvent& e : events) {
    *b->add_events() = e;
  }
  return Send(m);
}

bool FakeAgent::SendHeartbeat() {
  v1::AgentMessage m;
  m.mutable_heartbeat();
  return Send(m);
}

bool FakeAgent::SendEnforced(std::optional<uint64_t> revision,
                             std::optional<uint64_t> epoch) {
  v1::AgentMessage m;
  v1::EnforcedRevision* e = m.mutable_enforced_revision();
  {
    absl::MutexLock lock(&mu_);
    e->set_ban_list_epoch(epoch.value_or(epoch_));
    e->set_revision(revision.value_or(revision_));
    e->set_entry_count(static_cast<uint32_t>(bans_.size()));
  }
  return Send(m);
}

bool FakeAgent::CloseWrites() {
  absl::MutexLock lock(&write_mu_);
  if (stream_ == nullptr || writes_closed_) {
    return false;
  }
  writes_closed_ = true;
  return stream_->WritesDone();
}

void FakeAgent::Cancel() { context_.TryCancel(); }

void FakeAgent::SetReadingPaused(bool paused) {
  absl::MutexLock lock(&mu_);
  paused_ = paused;
}

void FakeAgent::ReadLoop() {
  v1::ServerMessage m;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](bool* paused) { return !*paused; }, &paused_));
    }
    if (!reader_->Read(&m)) {
      break;
    }
    absl::MutexLock lock(&mu_);
    ApplyLocked(m);
    if (options_.record_messages) {
      log_.push_back(m);
      inbox_.push_back(std::move(m));
    }
    m.Clear();
  }
  grpc::Status status;
  {
    absl::MutexLock lock(&write_mu_);
    status = stream_->Finish();
    writes_closed_ = true;
  }
  absl::MutexLock lock(&mu_);
  final_status_ = std::move(status);
}

void FakeAgent::ProtocolErrorLocked(std::string text) {
  if (protocol_error_.ok()) {
    protocol_error_ = absl::DataLossError(std::move(text));
  }
}

void FakeAgent::ApplyLocked(const v1::ServerMessage& m) {
  switch (m.payload_case()) {
    case v1::ServerMessage::kWelcome: {
      const v1::Welcome& w = m.welcome();
      if (w.resync() != v1::RESYNC_MODE_SNAPSHOT) {
        if (epoch_ != 0 && epoch_ != w.ban_list_epoch()) {
          ProtocolErrorLocked("epoch changed without a snapshot");
        }
        epoch_ = w.ban_list_epoch();
      }
      break;
    }
    case v1::ServerMessage::kDelta: {
      const v1::BanListDelta& d = m.delta();
      if (d.ban_list_epoch() != epoch_ || d.from_revision() != revision_) {
        ProtocolErrorLocked(absl::StrFormat(
            "delta %d/%d->%d does not follow %d/%d", d.ban_list_epoch(),
            d.from_revision(), d.to_revision(), epoch_, revision_));
        return;
      }
      if (d.to_revision() <= d.from_revision() || d.changes_size() == 0 ||
          d.changes_size() > 2000) {
        ProtocolErrorLocked("malformed delta");
      }
      for (const v1::BanChange& c : d.changes()) {
        if (c.op() == v1::BAN_CHANGE_OP_REMOVE) {
          bans_.erase(c.entry().id());
        } else {
          bans_[c.entry().id()] = c.entry();
        }
      }
      revision_ = d.to_revision();
      break;
    }
    case v1::ServerMessage::kSnapshot: {
      const v1::BanListSnapshot& s = m.snapshot();
      if (s.snapshot_id() != snapshot_id_) {
        snapshot_id_ = s.snapshot_id();
        next_chunk_ = 0;
        assembling_.clear();
      }
      if (s.chunk_index() != next_chunk_) {
        ProtocolErrorLocked(absl::StrFormat("snapshot chunk %d, expected %d",
                                            s.chunk_index(), next_chunk_));
        return;
      }
      ++next_chunk_;
      for (const v1::BanEntry& e : s.entries()) {
        assembling_[e.id()] = e;
      }
      if (s.final_chunk()) {
        if (assembling_.size() != s.total_entries()) {
          ProtocolErrorLocked("snapshot total_entries mismatch");
        }
        bans_ = std::move(assembling_);
        assembling_.clear();
        epoch_ = s.ban_list_epoch();
        revision_ = s.revision();
      }
      break;
    }
    case v1::ServerMessage::kBatchAck: {
      const v1::BatchAck& a = m.batch_ack();
      for (uint64_t seq : a.sequences()) {
        acked_.push_back(seq);
        acked_set_.insert(seq);
      }
      for (const v1::BatchRejection& r : a.rejected()) {
        rejected_[r.sequence()] = r;
      }
      if (a.durable_through() < durable_through_) {
        ProtocolErrorLocked("durable_through decreased");
      }
      durable_through_ = std::max(durable_through_, a.durable_through());
      break;
    }
    default:
      break;
  }
}

bool FakeAgent::AwaitLocked(const std::function<bool()>& done,
                            absl::Duration timeout) {
  return mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

absl::StatusOr<v1::ServerMessage> FakeAgent::Next(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  AwaitLocked([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                  mu_) { return !inbox_.empty() || final_status_.has_value(); },
              timeout);
  if (!inbox_.empty()) {
    v1::ServerMessage m = std::move(inbox_.front());
    inbox_.pop_front();
    return m;
  }
  if (final_status_.has_value()) {
    if (final_status_->ok()) {
      return absl::OutOfRangeError("stream ended with OK");
    }
    return ToAbsl(*final_status_);
  }
  return absl::DeadlineExceededError(
      absl::StrFormat("no message within %s", absl::FormatDuration(timeout)));
}

absl::StatusOr<v1::ServerMessage> FakeAgent::WaitFor(
    v1::ServerMessage::PayloadCase payload, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<v1::ServerMessage> m =
        Next(std::max(absl::ZeroDuration(), deadline - absl::Now()));
    if (!m.ok() || m->payload_case() == payload) {
      return m;
    }
  }
}

absl::Status FakeAgent::WaitForAck(uint64_t sequence, absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const bool ok = AwaitLocked(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return acked_set_.contains(sequence) || rejected_.contains(sequence) ||
               (sequence > 0 && sequence <= durable_through_) ||
               final_status_.has_value();
      },
      timeout);
  if (acked_set_.contains(sequence) || rejected_.contains(sequence) ||
      (sequence > 0 && sequence <= durable_through_)) {
    return absl::OkStatus();
  }
  if (final_status_.has_value()) {
    return absl::AbortedError(
        absl::StrFormat("stream ended before batch %d was acknowledged: %s",
                        sequence, ToAbsl(*final_status_).ToString()));
  }
  (void)ok;
  return absl::DeadlineExceededError(
      absl::StrFormat("batch %d not acknowledged within %s", sequence,
                      absl::FormatDuration(timeout)));
}

absl::Status FakeAgent::WaitForAcks(uint64_t sequence, int times,
                                    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto count = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::count(acked_.begin(), acked_.end(), sequence);
  };
  AwaitLocked(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return count() >= times || final_status_.has_value();
      },
      timeout);
  if (count() >= times) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(
      absl::StrFormat("batch %d acknowledged %d times, waited for %d", sequence,
                      count(), times));
}

absl::Status FakeAgent::WaitForRevision(uint64_t revision,
                                        absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  AwaitLocked(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return revision_ >= revision || final_status_.has_value();
      },
      timeout);
  if (revision_ >= revision) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "ban list at revision %d, waited for %d", revision_, revision));
}

absl::Status FakeAgent::WaitForBan(const std::string& prefix,
                                   absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  const auto has = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return std::any_of(bans_.begin(), bans_.end(), [&](const auto& kv) {
      return Cidr(kv.second.prefix()) == Cidr(prefix);
    });
  };
  AwaitLocked([&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                  mu_) { return has() || final_status_.has_value(); },
              timeout);
  if (has()) {
    return absl::OkStatus();
  }
  return absl::DeadlineExceededError(absl::StrFormat(
      "%s not banned within %s", prefix, absl::FormatDuration(timeout)));
}

absl::StatusOr<grpc::Status> FakeAgent::WaitForEnd(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  AwaitLocked([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                  mu_) { return final_status_.has_value(); },
              timeout);
  if (!final_status_.has_value()) {
    return absl::DeadlineExceededError(absl::StrFormat(
        "stream still open after %s", absl::FormatDuration(timeout)));
  }
  return *final_status_;
}

uint64_t FakeAgent::ban_list_epoch() const {
  absl::MutexLock lock(&mu_);
  return epoch_;
}

uint64_t FakeAgent::revision() const {
  absl::MutexLock lock(&mu_);
  return revision_;
}

std::map<uint64_t, v1::BanEntry> FakeAgent::bans() const {
  absl::MutexLock lock(&mu_);
  return bans_;
}

std::set<std::string> FakeAgent::banned_prefixes() const {
  absl::MutexLock lock(&mu_);
  std::set<std::string> out;
  for (const auto& [id, e] : bans_) {
    out.insert(Cidr(e.prefix()));
  }
  return out;
}

std::vector<uint64_t> FakeAgent::acked_sequences() const {
  absl::MutexLock lock(&mu_);
  return acked_;
}

std::map<uint64_t, v1::BatchRejection> FakeAgent::rejections() const {
  absl::MutexLock lock(&mu_);
  return rejected_;
}

uint64_t FakeAgent::durable_through() const {
  absl::MutexLock lock(&mu_);
  return durable_through_;
}

std::vector<v1::ServerMessage> FakeAgent::received() const {
  absl::MutexLock lock(&mu_);
  return log_;
}

absl::Status FakeAgent::protocol_error() const {
  absl::MutexLock lock(&mu_);
  return protocol_error_;
}

bool FakeAgent::ended() const {
  absl::MutexLock lock(&mu_);
  return final_status_.has_value();
}

v1::AuthEvent MakeAuthFailure(const std::string& ip, absl::Time time,
                              const std::string& user) {
  v1::AuthEvent e;
  e.set_kind(v1::EVENT_KIND_AUTH_FAILURE);
  e.set_protocol(v1::PROTOCOL_SMTP);
  e.set_ip(ip);
  e.set_user(user);
  SetTime(e.mutable_time(), time);
  SetTime(e.mutable_observed_at(), time);
  return e;
}

}  // namespace rampart::testing
