// AgentService end to end: a real grpc::Server on 127.0.0.1:0 with the
// InMemoryStore, a SimulatedClock, the Correlator publishing into a
// BanDistributor, the IngestPipeline and the service; agents are FakeAgents
// on real channels. No sleeps: every wait blocks on a stream read or a
// condition with a deadline.

#include "server/grpc/agent_service.h"

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "server/core/correlator.h"
#include "server/store/in_memory_store.h"
#include "tests/fakes/fake_agent.h"
#include "tests/fakes/flaky_store.h"
#include "tests/fakes/gated_store.h"

namespace rampart::server {
namespace {

using ::rampart::testing::FakeAgent;
using ::rampart::testing::MakeAuthFailure;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

constexpr uint64_t kEpoch = 42;
const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());
constexpr absl::Duration kWait = absl::Seconds(20);

std::vector<v1::AuthEvent> Failures(const std::string& ip, int n) {
  return std::vector<v1::AuthEvent>(static_cast<size_t>(n),
                                    MakeAuthFailure(ip, kT0));
}

// A non-scoring event (session opened): lets a test round-trip a batch
// without moving any score.
v1::AuthEvent Connection() {
  v1::AuthEvent e = MakeAuthFailure("192.0.2.1", kT0, "");
  e.set_kind(v1::EVENT_KIND_CONNECT);
  return e;
}

// Sends a batch and waits for its ack: everything the agent sent before has
// then been processed by its stream (reads are sequential).
absl::Status Barrier(FakeAgent& agent, uint64_t sequence) {
  if (!agent.SendBatch(sequence, {Connection()})) {
    return absl::UnavailableError("barrier batch not sent");
  }
  return agent.WaitForAck(sequence, kWait);
}

v1::Hello Hello(const std::string& agent_id, uint64_t epoch = 0,
                uint64_t revision = 0) {
  return FakeAgent::MakeHello(agent_id, epoch, revision);
}

int Count(const std::vector<v1::ServerMessage>& messages,
          v1::ServerMessage::PayloadCase payload) {
  int n = 0;
  for (const v1::ServerMessage& m : messages) {
    n += m.payload_case() == payload ? 1 : 0;
  }
  return n;
}

struct Config {
  AgentServiceOptions service{.server_id = "test-server",
                              .ban_list_epoch = kEpoch,
                              .sweep_interval = absl::ZeroDuration()};
  IngestPipelineOptions pipeline;
  BanDistributor::Options distributor;
  // Wire protected_ into the correlator and the service.
  bool protect = false;
};

class AgentServiceTest : public ::testing::Test {
 protected:
  void Start(const Config& config = {}) {
    distributor_ = std::make_unique<BanDistributor>(config.distributor, clock_);
    CorrelatorOptions co;
    co.policy.ban_jitter = 0;
    if (config.protect) {
      co.protected_addresses = &protected_;
    }
    absl::StatusOr<std::unique_ptr<Correlator>> c =
        Correlator::Create(co, gated_, clock_, *distributor_);
    ASSERT_TRUE(c.ok()) << c.status();
    correlator_ = std::move(*c);
    pipeline_ = std::make_unique<IngestPipeline>(config.pipeline, *correlator_,
                                                 clock_, registry_);
    service_ = std::make_unique<AgentService>(
        config.service, *distributor_, *pipeline_, clock_, registry_,
        config.protect ? &protected_ : nullptr);
    grpc::ServerBuilder builder;
    AgentService::ConfigureServerBuilder(builder, config.service);
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
  }

  // The SIGTERM sequence: drain the streams, stop the server, flush the
  // pipeline.
  void TearDown() override {
    gated_.Open();
    if (service_ != nullptr) {
      EXPECT_TRUE(service_->Shutdown(kWait));
    }
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(10));
      server_.reset();
    }
    if (pipeline_ != nullptr) {
      pipeline_->Stop();
    }
    service_.reset();
  }

  std::unique_ptr<FakeAgent> NewAgent() {
    return std::make_unique<FakeAgent>(
        grpc::CreateChannel(absl::StrFormat("127.0.0.1:%d", port_),
                            grpc::InsecureChannelCredentials()));
  }

  Ban AddBan(const char* prefix) {
    absl::StatusOr<Ban> b = correlator_->AddBan(
        *IpPrefix::FromString(prefix), absl::Hours(1), "test", "tester");
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : Ban{};
  }

  int StoredEvents() {
    int n = 0;
    EXPECT_TRUE(store_
                    .ForEachEvent(kT0 - absl::Hours(1), kT0 + absl::Hours(1),
                                  [&](const AuthEvent&) {
                                    ++n;
                                    return absl::OkStatus();
                                  })
                    .ok());
    return n;
  }

  double Metric(std::string_view name, const metrics::Labels& labels = {}) {
    absl::StatusOr<metrics::ParsedMetrics> parsed =
        metrics::ParsePrometheusText(registry_.Render());
    EXPECT_TRUE(parsed.ok()) << parsed.status();
    return parsed.ok() ? parsed->Value(name, labels) : -1;
  }
  // Metric(name) once it reaches `at_least`, or its value after kWait. A
  // bounded poll, for outcomes that send the agent nothing to wait on (a
  // batch held back by the rate limit).
  double WaitForMetric(std::string_view name, double at_least) {
    const absl::Time deadline = absl::Now() + kWait;
    while (Metric(name) < at_least && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    return Metric(name);
  }

  SimulatedClock clock_{kT0};
  ProtectedAddresses protected_{{}};
  InMemoryStore store_;
  FlakyStore flaky_{store_};
  GatedStore gated_{flaky_};
  metrics::Registry registry_;
  std::unique_ptr<BanDistributor> distributor_;
  std::unique_ptr<Correlator> correlator_;
  std::unique_ptr<IngestPipeline> pipeline_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// --- Acceptance ------------------------------------------------------------

TEST_F(AgentServiceTest, FailuresReportedByOneAgentBanOnAnother) {
  Start();
  auto a = NewAgent();
  auto b = NewAgent();
  absl::StatusOr<v1::Welcome> wa = a->Handshake(Hello("mail1"));
  ASSERT_TRUE(wa.ok()) << wa.status();
  EXPECT_EQ(wa->server_id(), "test-server");
  EXPECT_EQ(wa->ban_list_epoch(), kEpoch);
  EXPECT_EQ(wa->current_revision(), 0u);
  // A fresh agent (epoch 0) always gets a snapshot, even of an empty list,
  // so it adopts the epoch before the first delta.
  EXPECT_EQ(wa->resync(), v1::RESYNC_MODE_SNAPSHOT);
  EXPECT_EQ(wa->limits().max_events_per_batch(), 5000u);
  EXPECT_EQ(wa->policy_hint().heartbeat_interval().seconds(), 15);
  ASSERT_TRUE(b->Handshake(Hello("mail2")).ok());

  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 10)));
  ASSERT_TRUE(a->WaitForAck(1).ok());
  ASSERT_TRUE(b->WaitForBan("198.51.100.7/32").ok());
  EXPECT_EQ(b->revision(), 1u);
  EXPECT_EQ(b->ban_list_epoch(), kEpoch);
  EXPECT_THAT(b->banned_prefixes(), ElementsAre("198.51.100.7/32"));

  // "Live on 1 of 2" until A enforces too.
  ASSERT_TRUE(b->SendEnforced());
  ASSERT_TRUE(Barrier(*b, 1).ok());
  EXPECT_EQ(distributor_->LiveOn(1), std::make_pair(1, 2));
  ASSERT_TRUE(a->WaitForRevision(1).ok());
  ASSERT_TRUE(a->SendEnforced());
  ASSERT_TRUE(Barrier(*a, 2).ok());
  EXPECT_EQ(distributor_->LiveOn(1), std::make_pair(2, 2));

  EXPECT_TRUE(a->protocol_error().ok()) << a->protocol_error();
  EXPECT_TRUE(b->protocol_error().ok()) << b->protocol_error();
  EXPECT_EQ(Metric("rampart_events_total",
                   {{"protocol", "smtp"}, {"kind", "auth_failure"}}),
            10);
  EXPECT_EQ(Metric("rampart_agents_connected"), 2);
  // After the drain every write has completed: both deltas were timed.
  ASSERT_TRUE(service_->Shutdown(kWait));
  EXPECT_EQ(Metric("rampart_agent_push_latency_seconds_count"), 2);
  EXPECT_EQ(Metric("rampart_agents_connected"), 0);
}

TEST_F(AgentServiceTest, ReconnectWithOldRevisionGetsExactlyTheMissingDelta) {
  Start();
  std::map<uint64_t, v1::BanEntry> enforced;
  {
    auto b = NewAgent();
    ASSERT_TRUE(b->Handshake(Hello("mail2")).ok());
    AddBan("203.0.113.0/24");  // revision 1
    ASSERT_TRUE(b->WaitForRevision(1).ok());
    enforced = b->bans();
  }                            // disconnected
  AddBan("198.51.100.9/32");   // 2
  AddBan("198.51.100.10/32");  // 3
  ASSERT_TRUE(correlator_
                  ->RemoveBan(*IpPrefix::FromString("203.0.113.0/24"), "lifted",
                              "tester")
                  .ok());  // 4

  auto b = NewAgent();
  ASSERT_TRUE(b->Open(Hello("mail2", kEpoch, 1), enforced).ok());
  absl::StatusOr<v1::ServerMessage> welcome =
      b->WaitFor(v1::ServerMessage::kWelcome);
  ASSERT_TRUE(welcome.ok()) << welcome.status();
  EXPECT_EQ(welcome->welcome().resync(), v1::RESYNC_MODE_DELTA);
  EXPECT_EQ(welcome->welcome().current_revision(), 4u);
  absl::StatusOr<v1::ServerMessage> delta =
      b->WaitFor(v1::ServerMessage::kDelta);
  ASSERT_TRUE(delta.ok()) << delta.status();
  const v1::BanListDelta& d = delta->delta();
  EXPECT_EQ(d.ban_list_epoch(), kEpoch);
  EXPECT_EQ(d.from_revision(), 1u);
  EXPECT_EQ(d.to_revision(), 4u);
  ASSERT_THAT(d.changes(), SizeIs(3));
  EXPECT_EQ(d.changes(0).op(), v1::BAN_CHANGE_OP_ADD);
  EXPECT_EQ(d.changes(0).entry().revision(), 2u);
  EXPECT_EQ(d.changes(1).op(), v1::BAN_CHANGE_OP_ADD);
  EXPECT_EQ(d.changes(1).entry().revision(), 3u);
  EXPECT_EQ(d.changes(2).op(), v1::BAN_CHANGE_OP_REMOVE);
  EXPECT_EQ(d.changes(2).entry().revision(), 4u);

  ASSERT_TRUE(Barrier(*b, 1).ok());
  const std::vector<v1::ServerMessage> got = b->received();
  EXPECT_EQ(Count(got, v1::ServerMessage::kDelta), 1);
  EXPECT_EQ(Count(got, v1::ServerMessage::kSnapshot), 0);
  EXPECT_EQ(b->revision(), 4u);
  EXPECT_THAT(b->banned_prefixes(),
              UnorderedElementsAre("198.51.100.9/32", "198.51.100.10/32"));
  EXPECT_TRUE(b->protocol_error().ok()) << b->protocol_error();
}

TEST_F(AgentServiceTest, RevisionOlderThanTheJournalGetsAChunkedSnapshot) {
  Config config;
  config.distributor.journal_window = 2;
  config.service.snapshot_chunk_entries = 2;
  Start(config);
  const std::set<std::string> all = {"198.51.100.1/32", "198.51.100.2/32",
                                     "198.51.100.3/32", "198.51.100.4/32",
                                     "203.0.113.0/24"};
  for (const std::string& p : all) {
    AddBan(p.c_str());
  }
  ASSERT_EQ(distributor_->revision(), 5u);

  auto old = NewAgent();
  ASSERT_TRUE(old->Open(Hello("mail1", kEpoch, 1)).ok());
  absl::StatusOr<v1::ServerMessage> welcome =
      old->WaitFor(v1::ServerMessage::kWelcome);
  ASSERT_TRUE(welcome.ok()) << welcome.status();
  EXPECT_EQ(welcome->welcome().resync(), v1::RESYNC_MODE_SNAPSHOT);
  ASSERT_TRUE(old->WaitForRevision(5).ok());
  std::vector<uint32_t> chunks;
  for (const v1::ServerMessage& m : old->received()) {
    if (m.has_snapshot()) {
      chunks.push_back(m.snapshot().chunk_index());
      EXPECT_EQ(m.snapshot().total_entries(), 5u);
      EXPECT_EQ(m.snapshot().revision(), 5u);
      EXPECT_EQ(m.snapshot().final_chunk(), m.snapshot().chunk_index() == 2);
      EXPECT_LE(m.snapshot().entries_size(), 2);
    }
  }
  EXPECT_THAT(chunks, ElementsAre(0, 1, 2));
  EXPECT_EQ(old->banned_prefixes(), all);
  EXPECT_TRUE(old->protocol_error().ok()) << old->protocol_error();

  // Another lineage, and a fresh agent: snapshots too. A current agent:
  // nothing follows the Welcome.
  auto other = NewAgent();
  absl::StatusOr<v1::Welcome> w = other->Handshake(Hello("mail2", 7, 5));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->resync(), v1::RESYNC_MODE_SNAPSHOT);
  ASSERT_TRUE(other->WaitFor(v1::ServerMessage::kSnapshot).ok());
  auto fresh = NewAgent();
  w = fresh->Handshake(Hello("mail3"));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->resync(), v1::RESYNC_MODE_SNAPSHOT);
  ASSERT_TRUE(fresh->WaitForRevision(5).ok());
  EXPECT_EQ(fresh->banned_prefixes(), all);
  auto current = NewAgent();
  w = current->Handshake(Hello("mail4", kEpoch, 5));
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->resync(), v1::RESYNC_MODE_UP_TO_DATE);
  ASSERT_TRUE(Barrier(*current, 1).ok());
  EXPECT_EQ(Count(current->received(), v1::ServerMessage::kSnapshot), 0);
  EXPECT_EQ(Count(current->received(), v1::ServerMessage::kDelta), 0);
}

TEST_F(AgentServiceTest, DuplicateBatchesDoNotDoubleCount) {
  Start();
  {
    auto a = NewAgent();
    ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
    ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 5)));
    ASSERT_TRUE(a->WaitForAcks(1, 1).ok());
    // The ack was "lost": the agent resends on the same stream...
    ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 5)));
    ASSERT_TRUE(a->WaitForAcks(1, 2).ok());
  }
  // ... and again after reconnecting.
  auto a = NewAgent();
  v1::Hello hello = Hello("mail1");
  hello.set_oldest_unacked_sequence(1);
  absl::StatusOr<v1::Welcome> w = a->Handshake(hello);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->durable_through(), 1u);
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 5)));
  ASSERT_TRUE(a->WaitForAcks(1, 1).ok());

  EXPECT_EQ(StoredEvents(), 5);
  EXPECT_NEAR(correlator_->Explain(*IpAddress::Parse("198.51.100.7")).score, 5,
              1e-6);
  EXPECT_EQ(Metric("rampart_ingest_duplicate_batches_total"), 2);
  EXPECT_EQ(Metric("rampart_events_total",
                   {{"protocol", "smtp"}, {"kind", "auth_failure"}}),
            5);
  EXPECT_EQ(distributor_->revision(), 0u);
}

TEST_F(AgentServiceTest, MalformedBatchIsRejectedInBandAndNothingElseAffected) {
  Start();
  auto a = NewAgent();
  auto b = NewAgent();
  ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
  ASSERT_TRUE(b->Handshake(Hello("mail2")).ok());

  ASSERT_TRUE(a->SendBatch(0, Failures("198.51.100.7", 1)));
  ASSERT_TRUE(a->SendBatch(2, Failures("198.51.100.7", 5001)));
  ASSERT_TRUE(a->SendBatch(3, {}));
  ASSERT_TRUE(a->SendBatch(4, Failures("198.51.100.7", 2)));
  ASSERT_TRUE(b->SendBatch(1, Failures("198.51.100.8", 1)));
  ASSERT_TRUE(a->WaitForAck(4).ok());
  ASSERT_TRUE(b->WaitForAck(1).ok());

  const std::map<uint64_t, v1::BatchRejection> rejected = a->rejections();
  ASSERT_THAT(rejected, SizeIs(3));
  for (const auto& [seq, r] : rejected) {
    EXPECT_EQ(r.code(), static_cast<int>(absl::StatusCode::kInvalidArgument))
        << seq;
  }
  EXPECT_THAT(rejected.at(0).message(), HasSubstr("sequence"));
  EXPECT_THAT(rejected.at(2).message(), HasSubstr("at most 5000"));
  EXPECT_THAT(rejected.at(3).message(), HasSubstr("no events"));
  EXPECT_THAT(a->acked_sequences(), ElementsAre(4));
  EXPECT_EQ(a->durable_through(), 4u);
  EXPECT_FALSE(a->ended());
  EXPECT_EQ(StoredEvents(), 3);
  EXPECT_EQ(Metric("rampart_agent_messages_rejected_total",
                   {{"reason", "invalid_batch"}}),
            3);
}

TEST_F(AgentServiceTest, InvalidEventIsDroppedAndTheRestOfTheBatchKept) {
  Start();
  auto a = NewAgent();
  ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
  std::vector<v1::AuthEvent> events = Failures("198.51.100.7", 3);
  events[1].set_ip("999.1.1.1");
  ASSERT_TRUE(a->SendBatch(1, events));
  absl::StatusOr<v1::ServerMessage> notice =
      a->WaitFor(v1::ServerMessage::kNotice);
  ASSERT_TRUE(notice.ok()) << notice.status();
  EXPECT_EQ(notice->notice().code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_EQ(notice->notice().batch_sequence(), 1u);
  EXPECT_THAT(notice->notice().message(), HasSubstr("1 of 3 events dropped"));
  EXPECT_THAT(notice->notice().message(), HasSubstr("event 1: ip"));
  ASSERT_TRUE(a->WaitForAck(1).ok());
  EXPECT_THAT(a->acked_sequences(), ElementsAre(1));
  EXPECT_EQ(StoredEvents(), 2);
  EXPECT_EQ(Metric("rampart_ingest_rejected_events_total"), 1);
}

// --- Stream lifecycle --------------------------------------------------------

TEST_F(AgentServiceTest, NewerStreamOfTheSameAgentSupersedesTheOlder) {
  Start();
  auto first = NewAgent();
  ASSERT_TRUE(first->Handshake(Hello("mail1")).ok());
  auto second = NewAgent();
  ASSERT_TRUE(second->Handshake(Hello("mail1")).ok());
  absl::StatusOr<grpc::Status> end = first->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(end->error_message(), HasSubstr("superseded"));
  ASSERT_TRUE(Barrier(*second, 1).ok());
  // The newer stream still receives pushes.
  AddBan("198.51.100.7/32");
  ASSERT_TRUE(second->WaitForRevision(1).ok());
}

TEST_F(AgentServiceTest, MessageOrderViolationsEndTheStream) {
  Start();
  auto no_hello = NewAgent();
  ASSERT_TRUE(no_hello->Open(std::nullopt).ok());
  ASSERT_TRUE(no_hello->SendBatch(1, Failures("198.51.100.7", 1)));
  absl::StatusOr<grpc::Status> end = no_hello->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(end->error_message(),
              HasSubstr("first message must be Hello, got EventBatch"));
  EXPECT_THAT(no_hello->received(), IsEmpty());

  auto twice = NewAgent();
  ASSERT_TRUE(twice->Handshake(Hello("mail1")).ok());
  ASSERT_TRUE(twice->SendHello(Hello("mail1")));
  end = twice->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(end->error_message(), HasSubstr("Hello sent twice"));
  EXPECT_EQ(
      Metric("rampart_agent_messages_rejected_total", {{"reason", "no_hello"}}),
      1);
  EXPECT_EQ(Metric("rampart_agent_messages_rejected_total",
                   {{"reason", "duplicate_hello"}}),
            1);
}

TEST_F(AgentServiceTest, MalformedHelloEndsTheStreamBeforeWelcome) {
  Start();
  auto bad_id = NewAgent();
  ASSERT_TRUE(bad_id->Open(Hello("Mail 1")).ok());
  absl::StatusOr<grpc::Status> end = bad_id->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(end->error_message(), HasSubstr("hello.agent_id"));
  EXPECT_THAT(bad_id->received(), IsEmpty());

  auto no_epoch = NewAgent();
  v1::Hello hello = Hello("mail1");
  hello.set_spool_epoch(0);
  ASSERT_TRUE(no_epoch->Open(hello).ok());
  end = no_epoch->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(end->error_message(), HasSubstr("hello.spool_epoch"));
}

TEST_F(AgentServiceTest, HeartbeatFiguresReachTheAgentsFacts) {
  Start();
  auto agent = NewAgent();
  ASSERT_TRUE(agent->Handshake(Hello("mail1")).ok());
  v1::AgentMessage m;
  v1::Heartbeat& hb = *m.mutable_heartbeat();
  hb.mutable_agent_time()->set_seconds(absl::ToUnixSeconds(kT0) + 90);
  hb.set_spool_depth_batches(12);
  hb.set_spool_dropped_batches(3);
  hb.mutable_tailer_lag()->set_seconds(42);
  hb.mutable_tailer_lag()->set_nanos(500000000);
  hb.set_local_fallback_bans(2);
  ASSERT_TRUE(agent->Send(m));
  ASSERT_TRUE(Barrier(*agent, 1).ok());  // the stream reads in order
  std::vector<AgentFacts> facts = service_->KnownAgents();
  ASSERT_EQ(facts.size(), 1u);
  EXPECT_EQ(facts[0].spool_depth_batches, 12u);
  EXPECT_EQ(facts[0].spool_dropped_batches, 3u);
  EXPECT_EQ(facts[0].tailer_lag, absl::Milliseconds(42500));
  EXPECT_EQ(facts[0].clock_skew, absl::Seconds(90));  // agent ahead
  EXPECT_EQ(facts[0].local_fallback_bans, 2u);

  // Hostile figures are clamped: no negative lag, no absurd skew.
  hb.mutable_agent_time()->set_seconds(-4000000000000LL);
  hb.mutable_tailer_lag()->set_seconds(-5);
  ASSERT_TRUE(agent->Send(m));
  ASSERT_TRUE(Barrier(*agent, 2).ok());
  facts = service_->KnownAgents();
  ASSERT_EQ(facts.size(), 1u);
  EXPECT_EQ(facts[0].tailer_lag, absl::ZeroDuration());
  EXPECT_EQ(facts[0].clock_skew, -absl::Hours(24 * 365));
  EXPECT_FALSE(agent->ended());
}

TEST_F(AgentServiceTest, SilentStreamEndsAfterTheHeartbeatTimeout) {
  Start();
  auto silent = NewAgent();
  auto alive = NewAgent();
  ASSERT_TRUE(silent->Handshake(Hello("mail1")).ok());
  ASSERT_TRUE(alive->Handshake(Hello("mail2")).ok());
  clock_.Advance(absl::Seconds(30));
  ASSERT_TRUE(alive->SendHeartbeat());
  ASSERT_TRUE(Barrier(*alive, 1).ok());
  clock_.Advance(absl::Seconds(20));  // silent: 50 s > 45 s; alive: 20 s
  service_->SweepIdleStreams();
  absl::StatusOr<grpc::Status> end = silent->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(end->error_message(), HasSubstr("heartbeat timeout"));
  ASSERT_TRUE(Barrier(*alive, 2).ok());
  EXPECT_FALSE(alive->ended());
}

TEST_F(AgentServiceTest, StreamLimitIsResourceExhausted) {
  Config config;
  config.service.max_agents = 1;
  Start(config);
  auto a = NewAgent();
  ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
  auto b = NewAgent();
  ASSERT_TRUE(b->Open(Hello("mail2")).ok());
  absl::StatusOr<grpc::Status> end = b->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

// --- Backpressure, failures, drain -------------------------------------------

TEST_F(AgentServiceTest, FullIngestQueueDefersReadsAndLosesNothing) {
  Config config;
  config.pipeline.capacity_events = 2;
  Start(config);
  auto a = NewAgent();
  auto b = NewAgent();
  ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
  ASSERT_TRUE(b->Handshake(Hello("mail2")).ok());
  gated_.Close();
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 2)));
  // The correlator holds batch 1 at the store gate; the queue is empty.
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, kWait));
  // Batch 2 fills the queue; batch 3 does not fit, so A's stream holds it
  // and stops reading (batch 4 waits in flow control).
  ASSERT_TRUE(a->SendBatch(2, Failures("198.51.100.7", 2)));
  ASSERT_TRUE(a->SendBatch(3, Failures("198.51.100.7", 2)));
  ASSERT_TRUE(a->SendBatch(4, Failures("198.51.100.7", 2)));
  ASSERT_TRUE(pipeline_->WaitForRoomWaitersForTest(1, kWait));
  // B is held back too.
  ASSERT_TRUE(b->SendBatch(1, Failures("198.51.100.8", 2)));
  ASSERT_TRUE(pipeline_->WaitForRoomWaitersForTest(2, kWait));
  EXPECT_EQ(pipeline_->queued_batches(), 1u);  // batch 2 only
  gated_.Open();
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    ASSERT_TRUE(a->WaitForAck(seq).ok()) << seq;
  }
  ASSERT_TRUE(b->WaitForAck(1).ok());
  EXPECT_EQ(StoredEvents(), 10);
  EXPECT_EQ(a->durable_through(), 4u);
  // At least A's batch 3 and B's batch 1 (each may be held back again when
  // the two race for the room).
  EXPECT_GE(Metric("rampart_agent_reads_deferred_total"), 2);
}

TEST_F(AgentServiceTest, StoreFailureEndsTheStreamAndTheResentBatchIsAcked) {
  Start();
  flaky_.FailNextCommits(1);
  {
    auto a = NewAgent();
    ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
    ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 2)));
    absl::StatusOr<grpc::Status> end = a->WaitForEnd();
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(end->error_message(), HasSubstr("batch 1 not stored"));
    EXPECT_THAT(a->acked_sequences(), IsEmpty());
  }
  auto a = NewAgent();
  v1::Hello hello = Hello("mail1");
  hello.set_oldest_unacked_sequence(1);
  absl::StatusOr<v1::Welcome> w = a->Handshake(hello);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->durable_through(), 0u);
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 2)));
  ASSERT_TRUE(a->WaitForAck(1).ok());
  EXPECT_EQ(StoredEvents(), 2);
}

TEST_F(AgentServiceTest, ShutdownAcksInFlightBatchesThenEndsStreams) {
  Start();
  auto a = NewAgent();
  ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
  gated_.Close();
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 2)));
  ASSERT_TRUE(gated_.WaitForCommitsEntered(1, kWait));
  service_->StartDrain();
  // Draining: no new streams.
  auto late = NewAgent();
  ASSERT_TRUE(late->Open(Hello("mail2")).ok());
  absl::StatusOr<grpc::Status> end = late->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);

  gated_.Open();  // the in-flight batch commits
  ASSERT_TRUE(a->WaitForAck(1).ok());
  absl::StatusOr<v1::ServerMessage> notice =
      a->WaitFor(v1::ServerMessage::kNotice);
  ASSERT_TRUE(notice.ok()) << notice.status();
  EXPECT_EQ(notice->notice().code(),
            static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_EQ(notice->notice().retry_after().seconds(), 5);
  end = a->WaitForEnd();
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(end->error_message(), "server draining");
  EXPECT_TRUE(service_->AwaitDrained(kWait));
  EXPECT_EQ(service_->open_streams(), 0);
  EXPECT_EQ(StoredEvents(), 2);
}

TEST_F(AgentServiceTest, SlowAgentConvergesWhilePushesAreCoalesced) {
  Config config;
  config.service.coalesce_threshold = 2;
  config.service.max_outbound_messages = 4;
  config.service.max_coalesced_changes = 50;  // snapshots replace deltas
  config.service.snapshot_chunk_entries = 500;
  Start(config);
  auto slow = NewAgent();
  ASSERT_TRUE(slow->Handshake(Hello("mail1")).ok());
  slow->SetReadingPaused(true);
  constexpr uint32_t kBase = (100u << 24) | (64u << 16);  // 100.64.0.0
  for (uint32_t i = 0; i < 3000; ++i) {
    const IpPrefix p = IpPrefix::Host(IpAddress::V4(kBase + i));
    ASSERT_TRUE(correlator_->AddBan(p, absl::Hours(1), "storm", "tester").ok());
    if (i % 3 == 2) {  // some are lifted again
      const IpPrefix q = IpPrefix::Host(IpAddress::V4(kBase + i - 1));
      ASSERT_TRUE(correlator_->RemoveBan(q, "lifted", "tester").ok());
    }
  }
  slow->SetReadingPaused(false);
  ASSERT_TRUE(
      slow->WaitForRevision(distributor_->revision(), absl::Seconds(60)).ok());
  std::set<std::string> expected;
  for (const VersionedBan& vb : distributor_->Active()) {
    expected.insert(vb.ban.prefix.ToString() + "/32");
  }
  EXPECT_THAT(expected, SizeIs(2000));
  EXPECT_EQ(slow->banned_prefixes(), expected);
  EXPECT_TRUE(slow->protocol_error().ok()) << slow->protocol_error();
  // Fewer messages than revisions: pushes were merged (or replaced by a
  // snapshot) while the agent was not reading. (How many depends on
  // transport buffering, so only the bound is asserted.)
  const std::vector<v1::ServerMessage> got = slow->received();
  EXPECT_LT(Count(got, v1::ServerMessage::kDelta) +
                Count(got, v1::ServerMessage::kSnapshot),
            static_cast<int>(distributor_->revision()));
}

// --- Pure helpers
// --------------------------------------------------------------

JournalEntry Change(uint64_t revision, uint64_t id, JournalEntry::Op op) {
  return JournalEntry{
      .revision = revision,
      .op = op,
      .ban = Ban{.id = id,
                 .prefix = IpPrefix::Host(IpAddress::V4(0xC6336400 + id))}};
}

TEST(CoalesceJournalTest, MergesToOneChangePerBan) {
  using Op = JournalEntry::Op;
  std::vector<JournalEntry> out =
      CoalesceJournal({Change(1, 1, Op::kAdd), Change(2, 2, Op::kUpdate),
                       Change(3, 3, Op::kUpdate)},
                      {Change(4, 1, Op::kUpdate), Change(5, 2, Op::kRemove),
                       Change(6, 4, Op::kAdd), Change(7, 3, Op::kUpdate)});
  ASSERT_THAT(out, SizeIs(4));
  EXPECT_EQ(out[0].ban.id, 1u);  // ADD + UPDATE = ADD of the new content
  EXPECT_EQ(out[0].op, Op::kAdd);
  EXPECT_EQ(out[0].revision, 4u);
  EXPECT_EQ(out[1].ban.id, 2u);  // UPDATE + REMOVE = REMOVE
  EXPECT_EQ(out[1].op, Op::kRemove);
  EXPECT_EQ(out[2].ban.id, 3u);  // UPDATE + UPDATE = the later UPDATE
  EXPECT_EQ(out[2].op, Op::kUpdate);
  EXPECT_EQ(out[2].revision, 7u);
  EXPECT_EQ(out[3].ban.id, 4u);
  EXPECT_EQ(out[3].op, Op::kAdd);
}

TEST(CoalesceJournalTest, AddThenRemoveCancelsButADeltaKeepsOneChange) {
  using Op = JournalEntry::Op;
  std::vector<JournalEntry> out =
      CoalesceJournal({Change(1, 1, Op::kAdd), Change(2, 2, Op::kAdd)},
                      {Change(3, 1, Op::kRemove)});
  ASSERT_THAT(out, SizeIs(1));
  EXPECT_EQ(out[0].ban.id, 2u);
  out = CoalesceJournal({Change(1, 1, Op::kAdd)}, {Change(2, 1, Op::kRemove)});
  ASSERT_THAT(out, SizeIs(1));  // nothing left but a no-op REMOVE
  EXPECT_EQ(out[0].op, Op::kRemove);
  EXPECT_EQ(out[0].revision, 2u);
}

TEST(ValidateHelloTest, AcceptsAValidHelloAndNamesTheBadField) {
  EXPECT_TRUE(ValidateHello(FakeAgent::MakeHello("mail1.example_1-a")).ok());
  const auto error = [](auto mutate) {
    v1::Hello h = FakeAgent::MakeHello("mail1");
    mutate(h);
    return std::string(ValidateHello(h).message());
  };
  EXPECT_THAT(error([](v1::Hello& h) { h.set_agent_id(""); }),
              HasSubstr("hello.agent_id"));
  EXPECT_THAT(error([](v1::Hello& h) { h.set_agent_id("-mail"); }),
              HasSubstr("hello.agent_id"));
  EXPECT_THAT(error([](v1::Hello& h) { h.set_agent_id(std::string(64, 'a')); }),
              HasSubstr("1..63"));
  EXPECT_THAT(error([](v1::Hello& h) { h.add_host_addresses("10.0.0.256"); }),
              HasSubstr("hello.host_addresses[0]"));
  EXPECT_THAT(error([](v1::Hello& h) { h.set_time_zone("Europe/Ber lin"); }),
              HasSubstr("hello.time_zone"));
  EXPECT_THAT(error([](v1::Hello& h) { h.set_site("a b"); }),
              HasSubstr("hello.site"));
  EXPECT_THAT(error([](v1::Hello& h) {
                h.add_log_sources()->set_id(1);  // MakeHello used id 1
              }),
              HasSubstr("used twice"));
  // Hostile bytes are not echoed raw.
  EXPECT_THAT(error([](v1::Hello& h) { h.set_agent_id("m\xff"); }),
              HasSubstr("'m?'"));
}

// --- Abuse limits (docs/security.md "Abuse limits")
// ---------------------------

TEST_F(AgentServiceTest, FloodingAgentIsThrottledWhileOtherAgentsFlow) {
  Config config;
  config.service.rate = {.events_per_second = 10, .burst = 100};
  Start(config);
  auto flood = NewAgent();
  auto other = NewAgent();
  ASSERT_TRUE(flood->Handshake(Hello("flood")).ok());
  ASSERT_TRUE(other->Handshake(Hello("mail2")).ok());

  // The burst is accepted; the next batch is held back: not acked, not
  // rejected, and the stream reads nothing more (batch 3 waits in flow
  // control), so the flood slows down without losing anything.
  ASSERT_TRUE(flood->SendBatch(1, Failures("198.51.100.50", 100)));
  ASSERT_TRUE(flood->SendBatch(2, Failures("198.51.100.51", 50)));
  ASSERT_TRUE(flood->SendBatch(3, Failures("198.51.100.52", 50)));
  ASSERT_TRUE(flood->WaitForAck(1).ok());
  ASSERT_EQ(WaitForMetric("rampart_agent_batches_throttled_total", 1), 1);
  // Meanwhile another agent's events are stored and its ban happens.
  ASSERT_TRUE(other->SendBatch(1, Failures("203.0.113.9", 20)));
  ASSERT_TRUE(other->WaitForAck(1).ok());
  ASSERT_TRUE(other->WaitForBan("203.0.113.9/32").ok());
  EXPECT_THAT(flood->acked_sequences(), ElementsAre(1));
  EXPECT_EQ(StoredEvents(), 100 + 20);
  EXPECT_FALSE(flood->ended());

  // Tokens refill with (simulated) time: batch 2 goes on, batch 3 is read
  // and held in turn until its tokens are due too.
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(flood->WaitForAck(2).ok());
  // Batch 3 must be read and held back before the clock moves on again
  // (else its tokens would already be due when it is read).
  ASSERT_EQ(WaitForMetric("rampart_agent_batches_throttled_total", 2), 2);
  clock_.Advance(absl::Seconds(5));
  ASSERT_TRUE(flood->WaitForAck(3).ok());
  EXPECT_THAT(flood->rejections(), IsEmpty());
  EXPECT_THAT(other->rejections(), IsEmpty());
  EXPECT_EQ(StoredEvents(), 100 + 20 + 50 + 50);
  EXPECT_FALSE(flood->ended());
}

TEST_F(AgentServiceTest, HeldBackStreamIsNotEndedAsIdle) {
  // 1 event/s: the second batch of 100 waits 100 s for its tokens, longer
  // than the heartbeat timeout (45 s). The stream is not read meanwhile, so
  // its heartbeats cannot arrive: it must not be swept as silent.
  Config config;
  config.service.rate = {.events_per_second = 1, .burst = 100};
  config.service.throttle_retry_interval = absl::ZeroDuration();
  Start(config);
  auto a = NewAgent();
  ASSERT_TRUE(a->Handshake(Hello("mail1")).ok());
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.50", 100)));
  ASSERT_TRUE(a->SendBatch(2, Failures("198.51.100.51", 100)));
  ASSERT_TRUE(a->WaitForAck(1).ok());
  ASSERT_EQ(WaitForMetric("rampart_agent_batches_throttled_total", 1), 1);
  clock_.Advance(absl::Seconds(60));
  service_->SweepIdleStreams();
  service_->RetryThrottledStreams();  // 60 of 100 tokens: still held
  clock_.Advance(absl::Seconds(40));
  service_->RetryThrottledStreams();
  ASSERT_TRUE(a->WaitForAck(2).ok());
  EXPECT_FALSE(a->ended());
  EXPECT_THAT(a->rejections(), IsEmpty());
  EXPECT_EQ(StoredEvents(), 200);
}

TEST_F(AgentServiceTest, OversizedBatchIsRejectedWithAClearStatus) {
  Config config;
  config.service.max_events_per_batch = 10;
  Start(config);
  auto a = NewAgent();
  absl::StatusOr<v1::Welcome> welcome = a->Handshake(Hello("mail1"));
  ASSERT_TRUE(welcome.ok()) << welcome.status();
  EXPECT_EQ(welcome->limits().max_events_per_batch(), 10u);
  ASSERT_TRUE(a->SendBatch(1, Failures("198.51.100.7", 11)));
  ASSERT_TRUE(a->SendBatch(2, Failures("198.51.100.7", 10)));
  ASSERT_TRUE(a->WaitForAck(2).ok());
  const std::map<uint64_t, v1::BatchRejection> rejected = a->rejections();
  ASSERT_THAT(rejected, SizeIs(1));
  EXPECT_EQ(rejected.at(1).code(),
            static_cast<int>(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(rejected.at(1).message(),
              HasSubstr("batch 1 has 11 events, at most 10 are allowed"));
  EXPECT_FALSE(a->ended());
  EXPECT_EQ(StoredEvents(), 10);
  EXPECT_EQ(Metric("rampart_agent_batches_oversized_total"), 1);
}

TEST_F(AgentServiceTest, AgentAddressesAreNeverBannedUnderAForgedFlood) {
  Config config;
  config.protect = true;
  Start(config);
  auto victim = NewAgent();
  auto forger = NewAgent();
  v1::Hello hello = Hello("mail1");
  hello.clear_host_addresses();
  hello.add_host_addresses("192.0.2.25");
  ASSERT_TRUE(victim->Handshake(hello).ok());
  ASSERT_TRUE(forger->Handshake(Hello("rogue")).ok());
  // A claimed host address protects once an admin approved it.
  ASSERT_TRUE(protected_
                  .Approve("mail1", {*IpAddress::Parse("192.0.2.25")},
                           "token:admin", absl::Now())
                  .ok());
  // Failures forged "from" the other agent's address and from the peer
  // address of every stream (loopback here).
  ASSERT_TRUE(forger->SendBatch(1, Failures("192.0.2.25", 500)));
  ASSERT_TRUE(forger->SendBatch(2, Failures("127.0.0.1", 500)));
  ASSERT_TRUE(forger->SendBatch(3, Failures("198.51.100.9", 20)));
  ASSERT_TRUE(forger->WaitForAck(3).ok());
  ASSERT_TRUE(victim->WaitForBan("198.51.100.9/32").ok());
  EXPECT_THAT(correlator_->ActiveBans(), SizeIs(1));
  EXPECT_GT(correlator_->abuse_stats().bans_refused_protected, 0u);
}

// Issue 16 item 3: Hello.host_addresses went straight into the protected
// set, so a stolen agent key could make any address unbannable. Claimed
// addresses protect nothing until an admin approves them.
TEST_F(AgentServiceTest, ClaimedHostAddressesProtectNothingUntilApproved) {
  Config config;
  config.protect = true;
  Start(config);
  auto thief = NewAgent();
  auto honest = NewAgent();
  v1::Hello hello = Hello("stolen");
  hello.clear_host_addresses();
  hello.add_host_addresses("198.51.100.50");  // the attacker's own address
  ASSERT_TRUE(thief->Handshake(hello).ok());
  ASSERT_TRUE(honest->Handshake(Hello("mail1")).ok());
  ASSERT_TRUE(honest->SendBatch(1, Failures("198.51.100.50", 20)));
  ASSERT_TRUE(honest->WaitForBan("198.51.100.50/32").ok());
  EXPECT_EQ(correlator_->abuse_stats().bans_refused_protected, 0u);
}

}  // namespace
}  // namespace rampart::server
