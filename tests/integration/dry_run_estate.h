#pragma once

// A real rampart-server on SQLite (plaintext, loopback, ephemeral ports) and
// the config file of one dry-run rampart-agent that tails `log` and streams
// to it: the live pair the agent-side integration tests (log mutator,
// agent metrics endpoint) start the agent binary against.
//
// Thread-safety: plain values; use from the test's thread.

#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "tests/fakes/temp_files.h"
#include "tests/integration/server_process.h"

namespace rampart::testing {

struct DryRunEstate {
  std::unique_ptr<ServerProcess> server;
  std::string db;      // the server's SQLite file
  std::string log;     // the agent's console.log (created empty)
  std::string state;   // the agent's state directory
  std::string config;  // the agent's YAML config
};

// Starts the server in `dir` and writes the config of agent `agent_id`
// (dry-run firewall, UTC, ymd dates, 100 ms batch flush). The server's error
// if it does not start.
inline absl::StatusOr<DryRunEstate> StartDryRunEstate(
    const TempDir& dir, std::string_view agent_id) {
  DryRunEstate e;
  e.db = dir.path() + "/rampart.db";
  e.log = dir.path() + "/console.log";
  e.state = dir.path() + "/agent";
  e.config = dir.path() + "/agent.yaml";
  AppendToFile(e.log, "");
  auto server = ServerProcess::Start(
      ServerBinary(), {"--insecure", "--db", "sqlite:" + e.db, "--listen",
                       "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  if (!server.ok()) {
    return server.status();
  }
  e.server = *std::move(server);
  std::ofstream(e.config) << absl::StrFormat(
      "servers: [\"%s\"]\nagent_id: %s\ntime_zone: UTC\n"
      "logs: [{path: \"%s\", date_order: ymd}]\nstate_dir: \"%s\"\n"
      "insecure: true\nfirewall: {backend: dry-run}\n"
      "batch: {flush_interval: 100ms}\n",
      e.server->grpc_target(), agent_id, e.log, e.state);
  return e;
}

}  // namespace rampart::testing
