// End-to-end agent throughput: Domino log line -> tail -> parse -> batch ->
// spool (fsync per batch, the default policy) -> gRPC stream -> in-process
// rampart server (AgentService + IngestPipeline + Correlator + InMemoryStore)
// -> durable BatchAck -> spool ack. Prints events/s from the first poll to
// the last acknowledgement. Usage: agent_benchmark [events] [fsync:0|1]
// (docs/benchmarks.md "Agent end to end").

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/daemon/agent_app.h"
#include "agent/firewall/dry_run_firewall.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/core/correlator.h"
#include "server/grpc/agent_service.h"
#include "server/store/in_memory_store.h"

namespace {

using namespace rampart;  // NOLINT(build/namespaces): a benchmark main

int Run(int events, bool fsync) {
  Clock& clock = RealClock::Get();
  // Server.
  server::InMemoryStore store;
  metrics::Registry registry;
  server::BanDistributor distributor(server::BanDistributor::Options{}, clock);
  server::CorrelatorOptions co;
  auto correlator = server::Correlator::Create(co, store, clock, distributor);
  if (!correlator.ok()) {
    std::fprintf(stderr, "correlator: %s\n",
                 std::string(correlator.status().message()).c_str());
    return 1;
  }
  server::IngestPipeline pipeline(server::IngestPipelineOptions{}, **correlator,
                                  clock, registry);
  const server::AgentServiceOptions so{.sweep_interval = absl::ZeroDuration()};
  server::AgentService service(so, distributor, pipeline, clock, registry);
  grpc::ServerBuilder builder;
  server::AgentService::ConfigureServerBuilder(builder, so);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> grpc_server = builder.BuildAndStart();

  // Log: `events` auth failures from 250 addresses, stamped now.
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() /
      absl::StrFormat("rampart-agent-bench-%d", getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string log = (dir / "console.log").string();
  {
    std::ofstream out(log);
    const std::string stamp = absl::FormatTime(
        "%m/%d/%Y %I:%M:%S %p", absl::Now(), absl::UTCTimeZone());
    for (int i = 0; i < events; ++i) {
      out << absl::StrFormat(
          "[1234:0002-0A1B] %s  smtp: user%d [198.51.100.%d] authentication "
          "failure using internet password\n",
          stamp, i, i % 250 + 1);
    }
  }

  agent::AgentConfig config;
  config.servers = {absl::StrFormat("127.0.0.1:%d", port)};
  config.agent_id = "bench";
  config.time_zone = "UTC";
  config.logs = {agent::LogSourceConfig{.path = log}};
  config.read_existing_logs = true;
  config.state_dir = (dir / "state").string();
  config.spool_fsync =
      fsync ? agent::FsyncPolicy::kEveryAppend : agent::FsyncPolicy::kNever;
  config.batch_flush_interval = absl::Milliseconds(50);
  config.insecure = true;  // the in-process bench server is plaintext
  agent::DryRunFirewall firewall(clock);
  agent::StaticHostAddressSource hosts({});
  agent::AgentEnvironment env{.clock = &clock,
                              .metrics = &registry,
                              .firewall = &firewall,
                              .host_addresses = &hosts,
                              .run_loop_thread = false};
  auto app = agent::AgentApp::Create(config, env);
  if (!app.ok() || !(*app)->Start().ok()) {
    std::fprintf(stderr, "agent: %s\n",
                 std::string(app.status().message()).c_str());
    return 1;
  }
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Minutes(5)) {
    (void)(*app)->PollOnce();
    const agent::SpoolStats s = (*app)->spool().stats();
    if ((*app)->source_stats().events == static_cast<uint64_t>(events) &&
        (*app)->source_stats().batches > 0 && s.unacked_batches == 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const agent::SpoolStats s = (*app)->spool().stats();
  std::printf(
      "agent end to end: %d events (%llu batches, fsync %s) acked in %.3f s "
      "= %.0f events/s (unacked batches left: %llu)\n",
      events, static_cast<unsigned long long>((*app)->source_stats().batches),
      fsync ? "every_append" : "never", seconds, events / seconds,
      static_cast<unsigned long long>(s.unacked_batches));
  app->reset();
  service.Shutdown(absl::Seconds(10));
  grpc_server->Shutdown(std::chrono::system_clock::now() +
                        std::chrono::seconds(5));
  pipeline.Stop();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int events = argc > 1 ? std::atoi(argv[1]) : 200000;
  const bool fsync = argc > 2 ? std::atoi(argv[2]) != 0 : true;
  return Run(events, fsync);
}
