#pragma once

// ServerApp: rampart-server assembled. Opens (and migrates) the store, wraps
// it for metrics, rebuilds the correlator, loads the distributor, seeds the
// allowlist from the config, then serves AgentService and AdminService on
// the gRPC port (with the gRPC health service and server reflection) and
// /metrics, /healthz, /readyz on the HTTP port, and runs housekeeping
// (expiry, event retention, journal pruning) on its own thread.
//
// main() only parses flags, calls Start() and, on SIGTERM/SIGINT,
// Shutdown(). Tests start it in-process the same way.
//
// Thread-safety: Start/Shutdown/ports from the owning thread; Shutdown may
// also be called from a signal-watching thread (it is idempotent and
// serialised).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "server/config/server_config.h"
#include "server/core/store.h"

namespace rampart::server {

// Opens the store `target` names and applies pending migrations (under a
// lock). Errors: those of SqliteStore::Create / PgStore::Create (a clear
// message; a PostgreSQL DSN is never quoted).
absl::StatusOr<std::unique_ptr<Store>> OpenStore(const DatabaseTarget& target);

class ServerApp {
 public:
  // Starts everything. `clock` must outlive the app. kUnavailable if a port
  // cannot be bound or the store is unreachable; kFailedPrecondition for a
  // store with a newer schema.
  static absl::StatusOr<std::unique_ptr<ServerApp>> Start(
      const ServerConfig& config, Clock& clock);
  ~ServerApp();  // Shutdown()s

  ServerApp(const ServerApp&) = delete;
  ServerApp& operator=(const ServerApp&) = delete;

  int grpc_port() const;
  int http_port() const;

  // Drains: /readyz and gRPC health turn NOT_SERVING, agent streams stop
  // taking batches, batches already received are committed and acked, then
  // every stream ends with UNAVAILABLE, the gRPC and HTTP servers stop, the
  // store is flushed and closed. Idempotent.
  void Shutdown();

  // Blocks until Shutdown() has completed.
  void Wait();

 private:
  struct Impl;
  explicit ServerApp(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace rampart::server
