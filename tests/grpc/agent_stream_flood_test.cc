// Issue 16 item 1: whoever reaches the agent port must not be able to lock
// the agents out before authenticating. A client floods the port with
// streams that never send a Hello while 50 real agents keep streaming,
// receive bans and reconnect; the flood is refused beyond its caps, the
// streams it keeps open end at the Hello deadline, and only authenticated
// streams count against max_agents.
//
// In-process server (tests/grpc/agent_service_harness.h) on a
// SimulatedClock; FakeAgents on real loopback connections. Every wait has a
// deadline; loops are bounded.

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_agent.h"
#include "tests/grpc/agent_service_harness.h"

namespace rampart::testing {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2024, 3, 6, 10, 0, 0),
                                       absl::UTCTimeZone());
constexpr absl::Duration kWait = absl::Seconds(20);
constexpr int kAgents = 50;

std::string AgentId(int i) { return absl::StrFormat("mail%02d", i); }

class AgentStreamFloodTest : public ::testing::Test {
 protected:
  void Start(AgentServiceHarness::Setup setup = {}) {
    ASSERT_TRUE(harness_.Start(setup).ok());
  }

  // A connected agent on its own connection.
  std::unique_ptr<FakeAgent> Agent(int i) {
    auto a = std::make_unique<FakeAgent>(harness_.NewChannel());
    absl::StatusOr<v1::Welcome> w =
        a->Handshake(FakeAgent::MakeHello(AgentId(i)));
    EXPECT_TRUE(w.ok()) << AgentId(i) << ": " << w.status() << " "
                        << (a->ended() ? EndOf(*a) : "");
    return w.ok() ? std::move(a) : nullptr;
  }

  static std::string EndOf(FakeAgent& a) {
    absl::StatusOr<grpc::Status> end = a.WaitForEnd(absl::Seconds(1));
    return end.ok() ? absl::StrFormat("ended %d: %s", end->error_code(),
                                      end->error_message())
                    : std::string(end.status().message());
  }

  // Opens `n` streams on `channel` that send nothing, and waits until the
  // server either refused each or holds it open (unauthenticated).
  void Flood(const std::shared_ptr<grpc::Channel>& channel, int n) {
    for (int i = 0; i < n; ++i) {
      auto f = std::make_unique<FakeAgent>(channel);
      ASSERT_TRUE(f->Open(std::nullopt).ok());
      flood_.push_back(std::move(f));
    }
    ASSERT_TRUE(WaitUntil([&] {
      int ended = 0;
      for (const auto& f : flood_) {
        ended += f->ended() ? 1 : 0;
      }
      const int held = harness_.service().open_streams() -
                       harness_.service().connected_agents();
      return ended + held >= static_cast<int>(flood_.size());
    }));
    // Forget the refused ones (bounded memory over many rounds).
    std::erase_if(flood_, [](const auto& f) { return f->ended(); });
  }

  // Bans `ip` through agent 0's events and waits until every agent has it.
  // (Addresses in different /24s, so no prefix aggregation.)
  void BanAndPropagate(const std::string& ip, uint64_t sequence) {
    std::vector<v1::AuthEvent> events(10, MakeAuthFailure(ip, clock_.Now()));
    ASSERT_TRUE(agents_[0]->SendBatch(sequence, events));
    ASSERT_TRUE(agents_[0]->WaitForAck(sequence, kWait).ok());
    for (int i = 0; i < kAgents; ++i) {
      ASSERT_TRUE(agents_[static_cast<size_t>(i)]->WaitForBan(ip, kWait).ok())
          << AgentId(i) << " " << ip;
    }
  }

  SimulatedClock clock_{kT0};
  AgentServiceHarness harness_{clock_};
  std::vector<std::unique_ptr<FakeAgent>> agents_;
  std::vector<std::unique_ptr<FakeAgent>> flood_;
};

TEST_F(AgentStreamFloodTest, HelloLessFloodDoesNotLockAgentsOut) {
  AgentServiceHarness::Setup setup;
  // Room for the 50 agents and a few more, nothing like the flood.
  setup.service.max_agents = kAgents + 10;
  Start(setup);
  for (int i = 0; i < kAgents; ++i) {
    agents_.push_back(Agent(i));
    ASSERT_NE(agents_.back(), nullptr);
  }
  // One client, one HTTP/2 connection, 200 streams without a Hello.
  const std::shared_ptr<grpc::Channel> attacker = harness_.NewChannel();
  Flood(attacker, 200);
  BanAndPropagate("198.51.100.7", 1);

  // Every agent reconnects while the flood keeps opening streams into
  // whatever room the server has.
  for (int i = 0; i < kAgents; ++i) {
    const int connected = harness_.service().connected_agents();
    agents_[static_cast<size_t>(i)]->Cancel();
    ASSERT_TRUE(WaitUntil([&] {
      return harness_.service().connected_agents() == connected - 1;
    }));
    Flood(attacker, 5);
    agents_[static_cast<size_t>(i)] = Agent(i);
    ASSERT_NE(agents_[static_cast<size_t>(i)], nullptr);
    // The agent got the ban list it missed (it reconnected at revision 1).
    EXPECT_TRUE(
        agents_[static_cast<size_t>(i)]->WaitForRevision(1, kWait).ok());
  }
  BanAndPropagate("203.0.113.8", 2);

  // The flood holds at most its connection's share, and even that only
  // until the Hello deadline.
  EXPECT_LE(static_cast<int>(flood_.size()), 4);
  EXPECT_EQ(harness_.service().connected_agents(), kAgents);
  clock_.Advance(absl::Seconds(11));
  harness_.service().SweepIdleStreams();
  for (const auto& f : flood_) {
    absl::StatusOr<grpc::Status> end = f->WaitForEnd(kWait);
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_EQ(end->error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
    EXPECT_THAT(end->error_message(), HasSubstr("no Hello within 10s"));
  }
  ASSERT_TRUE(WaitUntil(
      [&] { return harness_.service().unauthenticated_streams() == 0; }));
  EXPECT_EQ(harness_.Metric("rampart_agent_streams_unauthenticated"), 0);
  EXPECT_EQ(harness_.Metric("rampart_agent_messages_rejected_total",
                            {{"reason", "unauthenticated_limit"}}),
            196 + 5 * kAgents);
  EXPECT_EQ(harness_.Metric("rampart_agent_messages_rejected_total",
                            {{"reason", "hello_timeout"}}),
            static_cast<double>(flood_.size()));
  // The agents were never idle long enough to be swept, and keep streaming.
  BanAndPropagate("192.0.2.9", 3);
  for (const auto& a : agents_) {
    EXPECT_FALSE(a->ended());
    EXPECT_TRUE(a->protocol_error().ok()) << a->protocol_error();
  }
}

TEST_F(AgentStreamFloodTest, UnauthenticatedStreamsAreCappedPerAddress) {
  AgentServiceHarness::Setup setup;
  setup.service.max_unauthenticated_streams_per_address = 8;
  setup.service.max_unauthenticated_streams_per_connection = 3;
  setup.listen_v6 = true;
  Start(setup);
  // The attacker comes from ::1 over 6 connections of 3 streams and more:
  // at most 8 of its streams wait for a Hello.
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int c = 0; c < 6; ++c) {
    channels.push_back(harness_.NewChannel(nullptr, /*v6=*/true));
    Flood(channels.back(), 5);
  }
  EXPECT_EQ(harness_.service().unauthenticated_streams(), 8);
  EXPECT_EQ(static_cast<int>(flood_.size()), 8);
  // Agents from 127.0.0.1 are not affected.
  for (int i = 0; i < 3; ++i) {
    agents_.push_back(Agent(i));
    ASSERT_NE(agents_.back(), nullptr);
  }
  // An agent that sends its Hello after the deadline is ended without
  // Welcome.
  auto late = std::make_unique<FakeAgent>(harness_.NewChannel());
  ASSERT_TRUE(late->Open(std::nullopt).ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return harness_.service().unauthenticated_streams() == 9; }));
  clock_.Advance(absl::Seconds(10));
  harness_.service().SweepIdleStreams();
  absl::StatusOr<grpc::Status> end = late->WaitForEnd(kWait);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(WaitUntil(
      [&] { return harness_.service().unauthenticated_streams() == 0; }));
  // Once the flood's streams are gone, the address may open streams again.
  auto again = std::make_unique<FakeAgent>(harness_.NewChannel(nullptr, true));
  EXPECT_TRUE(again->Handshake(FakeAgent::MakeHello("mail-v6")).ok());
}

TEST_F(AgentStreamFloodTest, OnlyAuthenticatedStreamsCountAgainstMaxAgents) {
  AgentServiceHarness::Setup setup;
  setup.service.max_agents = 2;
  Start(setup);
  auto waiting = std::make_unique<FakeAgent>(harness_.NewChannel());
  ASSERT_TRUE(waiting->Open(std::nullopt).ok());
  ASSERT_TRUE(WaitUntil(
      [&] { return harness_.service().unauthenticated_streams() == 1; }));
  agents_.push_back(Agent(0));
  agents_.push_back(Agent(1));
  ASSERT_NE(agents_[1], nullptr);
  // A third agent is refused at its Hello; the first two may reconnect
  // (superseding their own streams).
  auto third = std::make_unique<FakeAgent>(harness_.NewChannel());
  ASSERT_TRUE(third->Open(FakeAgent::MakeHello(AgentId(2))).ok());
  absl::StatusOr<grpc::Status> end = third->WaitForEnd(kWait);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(end->error_message(), HasSubstr("agent limit"));
  auto again = Agent(1);
  ASSERT_NE(again, nullptr);
  EXPECT_FALSE(waiting->ended());
}

}  // namespace
}  // namespace rampart::testing
