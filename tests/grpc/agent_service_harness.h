#pragma once

// AgentServiceHarness: the server side of the agent stream in-process for
// tests that attack it: a real grpc::Server on 127.0.0.1:0 (and [::1]:0 when
// asked, so a test has a second source address on loopback) with the
// InMemoryStore, the Correlator publishing into a BanDistributor, the
// IngestPipeline and AgentService, all on the caller's clock. Plaintext, or
// mutual TLS with an EnrollmentManager as the identity check.
//
// Thread-safety: Start/Stop from the test thread; the accessors may be used
// from any thread in between.

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/core/correlator.h"
#include "server/grpc/agent_service.h"
#include "server/store/in_memory_store.h"

namespace rampart::testing {

// Waits until `done()` holds, polling, at most `timeout`; returns whether it
// held. For server-side effects that send the client nothing to wait on
// (a stream's OnDone, a gauge).
template <typename F>
bool WaitUntil(F done, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

class AgentServiceHarness {
 public:
  struct Setup {
    server::AgentServiceOptions service{
        .server_id = "test-server",
        .ban_list_epoch = 42,
        .sweep_interval = absl::ZeroDuration(),
        .throttle_retry_interval = absl::ZeroDuration()};
    // Server credentials; null: plaintext.
    std::shared_ptr<grpc::ServerCredentials> credentials;
    // The identity check (with TLS credentials); must outlive the harness.
    server::EnrollmentManager* identity = nullptr;
    // Also listen on [::1]:0 (v6_port()).
    bool listen_v6 = false;
  };

  explicit AgentServiceHarness(Clock& clock) : clock_(clock) {}
  ~AgentServiceHarness() { Stop(); }

  absl::Status Start(const Setup& setup) {
    distributor_ = std::make_unique<server::BanDistributor>(
        server::BanDistributor::Options{}, clock_);
    server::CorrelatorOptions co;
    co.policy.ban_jitter = 0;
    absl::StatusOr<std::unique_ptr<server::Correlator>> c =
        server::Correlator::Create(co, store_, clock_, *distributor_);
    if (!c.ok()) {
      return c.status();
    }
    correlator_ = std::move(*c);
    pipeline_ = std::make_unique<server::IngestPipeline>(
        server::IngestPipelineOptions{}, *correlator_, clock_, registry_);
    service_ = std::make_unique<server::AgentService>(
        setup.service, *distributor_, *pipeline_, clock_, registry_, nullptr,
        setup.identity);
    grpc::ServerBuilder builder;
    server::AgentService::ConfigureServerBuilder(builder, setup.service);
    std::shared_ptr<grpc::ServerCredentials> creds =
        setup.credentials != nullptr ? setup.credentials
                                     : grpc::InsecureServerCredentials();
    builder.AddListeningPort("127.0.0.1:0", creds, &port_);
    if (setup.listen_v6) {
      builder.AddListeningPort("[::1]:0", creds, &v6_port_);
    }
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    if (server_ == nullptr || port_ == 0 ||
        (setup.listen_v6 && v6_port_ == 0)) {
      return absl::UnavailableError("the test server did not start");
    }
    return absl::OkStatus();
  }

  // The SIGTERM sequence: drain the streams, stop the server, flush the
  // pipeline. Returns whether every stream drained in time.
  bool Stop() {
    bool drained = true;
    if (service_ != nullptr) {
      drained = service_->Shutdown(absl::Seconds(20));
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
    return drained;
  }

  // A new channel with its own TCP connection (gRPC otherwise shares one
  // connection between channels with equal arguments).
  std::shared_ptr<grpc::Channel> NewChannel(
      std::shared_ptr<grpc::ChannelCredentials> creds = nullptr,
      bool v6 = false) const {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(
        v6 ? absl::StrFormat("[::1]:%d", v6_port_)
           : absl::StrFormat("127.0.0.1:%d", port_),
        creds != nullptr ? creds : grpc::InsecureChannelCredentials(), args);
  }

  server::AgentService& service() { return *service_; }
  server::Correlator& correlator() { return *correlator_; }
  server::InMemoryStore& store() { return store_; }
  metrics::Registry& registry() { return registry_; }
  int port() const { return port_; }

  // The value of a metric series, -1 if the exposition does not parse.
  double Metric(std::string_view name, const metrics::Labels& labels = {}) {
    absl::StatusOr<metrics::ParsedMetrics> parsed =
        metrics::ParsePrometheusText(registry_.Render());
    return parsed.ok() ? parsed->Value(name, labels) : -1;
  }

 private:
  Clock& clock_;
  server::InMemoryStore store_;
  metrics::Registry registry_;
  std::unique_ptr<server::BanDistributor> distributor_;
  std::unique_ptr<server::Correlator> correlator_;
  std::unique_ptr<server::IngestPipeline> pipeline_;
  std::unique_ptr<server::AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  int v6_port_ = 0;
};

}  // namespace rampart::testing
