#pragma once

// HttpEndpoint: the server's HTTP side port (default 127.0.0.1:9443) for
// operations: GET /metrics (Prometheus text format), /healthz (the process
// is alive) and /readyz (the server can take traffic: store reachable,
// correlator not degraded, not draining). Built on cpp-httplib (Debian
// libcpp-httplib-dev). Nothing else is served; other paths get 404 and other
// methods 405.
//
// Thread-safety: Start/Stop from one owner thread. Handlers run on the
// endpoint's own small thread pool (two threads), never on gRPC threads; the
// callbacks they call must be thread-safe.

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace rampart::server {

struct HttpEndpointOptions {
  std::string host = "127.0.0.1";
  int port = 9443;  // 0: any free port (tests)
  int threads = 2;
};

struct Readiness {
  bool ready = false;
  std::string reason;  // why not ready ("store unreachable", "draining")
};

struct HttpHandlers {
  std::function<std::string()> metrics;  // Prometheus text
  std::function<Readiness()> ready;
};

class HttpEndpoint {
 public:
  // Binds and starts serving. kUnavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(
      const HttpEndpointOptions& options, HttpHandlers handlers);
  ~HttpEndpoint();  // Stop()s

  HttpEndpoint(const HttpEndpoint&) = delete;
  HttpEndpoint& operator=(const HttpEndpoint&) = delete;

  int port() const { return port_; }
  // Stops listening and joins the serving thread. Idempotent.
  void Stop();

 private:
  HttpEndpoint(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  const int port_;
  std::thread thread_;
};

}  // namespace rampart::server
