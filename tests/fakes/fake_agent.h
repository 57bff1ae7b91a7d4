#pragma once

// FakeAgent: a scripted rampart agent speaking the agent stream
// (AgentService.Connect) over any grpc::Channel, with the generated sync
// client API. For tests of AgentService in-process, process-level
// integration tests against a real rampart-server, and load benchmarks: it
// depends on nothing but the channel and the wire contract.
//
// A reader thread receives every ServerMessage, keeps the ban list the agent
// would enforce (snapshots swapped in on their final chunk, deltas checked
// for contiguity), the acknowledged batches, and an inbox the test consumes
// with Next()/WaitFor(). Every wait takes a deadline and never sleeps.
//
// Thread-safety: thread-safe. The Send* methods serialise on one writer
// lock; waits may run concurrently with sends.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/sync_stream.h"
#include "rampart/v1/agent.grpc.pb.h"

namespace rampart::testing {

class FakeAgent {
 public:
  // How long waits without an explicit timeout may block.
  static constexpr absl::Duration kDefaultTimeout = absl::Seconds(20);

  struct Options {
    // Keep every message for received() and the Next()/WaitFor() inbox.
    // Benchmarks running for long turn it off: the ban list, acks and the
    // final status are still tracked, memory stays bounded.
    bool record_messages = true;
  };

  explicit FakeAgent(std::shared_ptr<grpc::Channel> channel)
      : FakeAgent(std::move(channel), Options{}) {}
  FakeAgent(std::shared_ptr<grpc::Channel> channel, const Options& options);
  // Cancels the stream if still open and joins the reader thread.
  ~FakeAgent();

  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  // A valid Hello: agent_id, site "test", time zone "UTC", a random-looking
  // but fixed spool epoch, the given ban-list position.
  static v1::Hello MakeHello(const std::string& agent_id,
                             uint64_t ban_list_epoch = 0,
                             uint64_t enforced_revision = 0,
                             uint64_t spool_epoch = 0x5EED);

  // Opens the stream (no deadline, as the real agent) and, unless `hello` is
  // nullopt, sends it. The applied ban list starts as hello's (epoch,
  // revision) with entries `bans` (what a reconnecting agent still
  // enforces). One stream per FakeAgent: returns FailedPrecondition if
  // already opened; reconnect with a new FakeAgent.
  absl::Status Open(const std::optional<v1::Hello>& hello,
                    std::map<uint64_t, v1::BanEntry> bans = {});
  // Open(hello) and wait for the Welcome.
  absl::StatusOr<v1::Welcome> Handshake(
      const v1::Hello& hello, absl::Duration timeout = kDefaultTimeout);

  // Sends one message; false if the stream is closed for writing.
  bool Send(const v1::AgentMessage& message);
  bool SendHello(const v1::Hello& hello);
  bool SendBatch(uint64_t sequence, const std::vector<v1::AuthEvent>& events);
  bool SendHeartbeat();
  // Reports `revision` of `epoch` (default: the agent's current ban list).
  bool SendEnforced(std::optional<uint64_t> revision = std::nullopt,
                    std::optional<uint64_t> epoch = std::nullopt);
  // Half-closes the stream (WritesDone).
  bool CloseWrites();
  // Cancels the stream (as a crashed agent's connection would).
  void Cancel();
  // While paused the reader thread stops calling Read(): the agent's HTTP/2
  // receive window fills and the server's writes stall (a slow agent).
  void SetReadingPaused(bool paused);

  // The next message not yet consumed, in arrival order (needs
  // record_messages). DeadlineExceeded
  // after `timeout`; if the stream ended and nothing is left, the stream's
  // final status mapped to absl (OK becomes OutOfRange "stream ended").
  absl::StatusOr<v1::ServerMessage> Next(
      absl::Duration timeout = kDefaultTimeout);
  // Consumes messages until one with `payload` arrives and returns it.
  absl::StatusOr<v1::ServerMessage> WaitFor(
      v1::ServerMessage::PayloadCase payload,
      absl::Duration timeout = kDefaultTimeout);
  // Waits until batch `sequence` is settled: acknowledged (listed, or <=
  // durable_through) or rejected. Independent of the inbox.
  absl::Status WaitForAck(uint64_t sequence,
                          absl::Duration timeout = kDefaultTimeout);
  // Waits until BatchAck.sequences listed `sequence` at least `times` times
  // (a duplicate batch is acknowledged again).
  absl::Status WaitForAcks(uint64_t sequence, int times,
                           absl::Duration timeout = kDefaultTimeout);
  // Waits until the applied ban list reaches `revision`.
  absl::Status WaitForRevision(uint64_t revision,
                               absl::Duration timeout = kDefaultTimeout);
  // Waits until `prefix` is in the applied ban list (a bare address and its
  // /32 or /128 form are the same prefix).
  absl::Status WaitForBan(const std::string& prefix,
                          absl::Duration timeout = kDefaultTimeout);
  // Waits for the stream's end and returns its final status.
  absl::StatusOr<grpc::Status> WaitForEnd(
      absl::Duration timeout = kDefaultTimeout);

  // --- State (as of now) ---------------------------------------------------
  uint64_t ban_list_epoch() const;
  uint64_t revision() const;
  // Applied entries by id.
  std::map<uint64_t, v1::BanEntry> bans() const;
  // Applied prefixes, always with an explicit length ("198.51.100.7/32").
  std::set<std::string> banned_prefixes() const;
  // Sequences listed in any BatchAck.sequences (possibly several times).
  std::vector<uint64_t> acked_sequences() const;
  std::map<uint64_t, v1::BatchRejection> rejections() const;
  uint64_t durable_through() const;
  // Every message received, in order (consumed or not).
  std::vector<v1::ServerMessage> received() const;
  // The first inconsistency seen in the server's ban-list messages (delta
  // gap, epoch mismatch, chunk out of order), or OK.
  absl::Status protocol_error() const;
  bool ended() const;

 private:
  void ReadLoop();
  void ApplyLocked(const v1::ServerMessage& m)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ProtocolErrorLocked(std::string text) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AwaitLocked(const std::function<bool()>& done, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  const std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext context_;

  // Writes and the final Finish() are serialised on write_mu_.
  absl::Mutex write_mu_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>>
      stream_ ABSL_GUARDED_BY(write_mu_);
  bool writes_closed_ ABSL_GUARDED_BY(write_mu_) = false;
  // The raw stream for the reader thread (set once before it starts).
  grpc::ClientReaderWriter<v1::AgentMessage, v1::ServerMessage>* reader_ =
      nullptr;
  std::thread reader_thread_;

  mutable absl::Mutex mu_;
  // State below is protected by mu_.
  std::deque<v1::ServerMessage> inbox_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ServerMessage> log_ ABSL_GUARDED_BY(mu_);
  std::optional<grpc::Status> final_status_ ABSL_GUARDED_BY(mu_);
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, v1::BanEntry> bans_ ABSL_GUARDED_BY(mu_);
  // Snapshot being assembled.
  uint64_t snapshot_id_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t next_chunk_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<uint64_t, v1::BanEntry> assembling_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> acked_ ABSL_GUARDED_BY(mu_);
  std::set<uint64_t> acked_set_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, v1::BatchRejection> rejected_ ABSL_GUARDED_BY(mu_);
  uint64_t durable_through_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status protocol_error_ ABSL_GUARDED_BY(mu_);
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
};

// An AuthEvent as an agent would send it: auth failure over SMTP from `ip`
// for user "admin" at `time` (observed at the same instant).
v1::AuthEvent MakeAuthFailure(const std::string& ip, absl::Time time,
                              const std::string& user = "admin");

}  // namespace rampart::testing
