// rampart-server: the central correlator and ban distributor. This file only
// parses the command line, handles signals and wires ServerApp (server/app).
//
//   rampart-server [--config FILE] [--listen HOST:PORT]
//                  [--http-listen HOST:PORT] [--db sqlite:PATH|postgresql://..]
//                  [--insecure [--allow-insecure-non-loopback]]
//   rampart-server migrate [--config FILE] [--db ...]
//
// Exit codes: 0 clean shutdown, 1 runtime failure (store, ports), 2 usage or
// configuration error.

#include <pthread.h>
#include <signal.h>

#include <cstdio>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "common/logging.h"
#include "common/version.h"
#include "server/app/server_app.h"
#include "server/config/server_config.h"

namespace {

void AddConfigFlags(CLI::App& app, rampart::server::ServerFlags& flags,
                    bool listen_flags) {
  app.add_option("--config", flags.config,
                 "YAML configuration file (docs/configuration.md)");
  app.add_option("--db", flags.db,
                 "database: sqlite:PATH (default sqlite:rampart.db) or "
                 "postgresql://...");
  if (listen_flags) {
    app.add_option("--listen", flags.listen,
                   "gRPC address for agents and rampartctl (default "
                   "127.0.0.1:7443)");
    app.add_option("--http-listen", flags.http_listen,
                   "HTTP address for /metrics, /healthz, /readyz (default "
                   "127.0.0.1:9443)");
    app.add_flag("--insecure", flags.insecure,
                 "plaintext gRPC without agent identity (loopback tests and "
                 "the quickstart only; docs/security.md)");
    app.add_flag("--allow-insecure-non-loopback",
                 flags.allow_insecure_non_loopback,
                 "permit --insecure on a listen address that is not loopback");
  }
}

}  // namespace

int main(int argc, char** argv) {
  using rampart::server::ServerFlags;
  CLI::App app{
      "rampart-server: correlates authentication failures from every Domino "
      "server and pushes bans to all agents"};
  app.set_version_flag("--version", std::string(rampart::kVersion));
  ServerFlags flags;
  AddConfigFlags(app, flags, /*listen_flags=*/true);
  ServerFlags migrate_flags;
  CLI::App* migrate = app.add_subcommand(
      "migrate", "apply pending database migrations and exit");
  AddConfigFlags(*migrate, migrate_flags, /*listen_flags=*/false);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }

  if (migrate->parsed()) {
    if (!migrate_flags.config) {
      migrate_flags.config = flags.config;
    }
    if (!migrate_flags.db) {
      migrate_flags.db = flags.db;
    }
    auto config = rampart::server::ResolveServerConfig(migrate_flags);
    if (!config.ok()) {
      std::fprintf(stderr, "rampart-server: %s\n",
                   std::string(config.status().message()).c_str());
      return 2;
    }
    auto store = rampart::server::OpenStore(config->database);
    if (!store.ok()) {
      std::fprintf(stderr, "rampart-server migrate: %s: %s\n",
                   config->database.ToLogString().c_str(),
                   std::string(store.status().message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "rampart-server migrate: %s is up to date\n",
                 config->database.ToLogString().c_str());
    return 0;
  }

  auto config = rampart::server::ResolveServerConfig(flags);
  if (!config.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(config.status().message()).c_str());
    return 2;
  }
  if (absl::Status s = rampart::server::ValidateTransport(*config); !s.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(s.message()).c_str());
    return 2;
  }

  // SIGTERM/SIGINT are handled by one thread with sigwait(); block them in
  // every thread (threads started later inherit the mask).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  // A client vanishing mid-write must not kill the server.
  signal(SIGPIPE, SIG_IGN);

  auto server =
      rampart::server::ServerApp::Start(*config, rampart::RealClock::Get());
  if (!server.ok()) {
    std::fprintf(stderr, "rampart-server: %s\n",
                 std::string(server.status().message()).c_str());
    return 1;
  }
  // Machine-readable for scripts and tests (ports may be chosen by the OS).
  rampart::server::HostPort grpc_at = config->listen;
  grpc_at.port = (*server)->grpc_port();
  rampart::server::HostPort http_at = config->http_listen;
  http_at.port = (*server)->http_port();
  std::fprintf(stderr,
               "rampart-server %s: serving agents and admin on %s, HTTP on "
               "%s, database %s\n",
               std::string(rampart::kVersion).c_str(),
               grpc_at.ToString().c_str(), http_at.ToString().c_str(),
               config->database.ToLogString().c_str());

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    RAMPART_LOG(Info) << "signal " << sig << ": draining";
    (*server)->Shutdown();
  });
  (*server)->Wait();
  signal_thread.join();
  RAMPART_LOG(Info) << "stopped";
  return 0;
}
