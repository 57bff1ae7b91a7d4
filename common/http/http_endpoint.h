#pragma once

// HttpEndpoint: the server's HTTP side port (default 127.0.0.1:9443) for
// operations: GET /metrics (Prometheus text format), /healthz (the process
// is alive) and /readyz (the server can take traffic: store reachable,
// correlator not degraded, not draining). Nothing else is served; other
// paths get 404 and other methods 405.
//
// Hostile clients (issue 16 item 8c: two slow clients used to occupy both
// threads of the former cpp-httplib pool and failed the container health
// check): one thread runs a poll() loop over non-blocking sockets, so a
// client that trickles its request or never reads its answer occupies a
// connection slot, never a thread. Each connection gets one request and must
// send it and take the answer within `request_timeout` (no keep-alive);
// requests are at most 8 KiB of head and 4 KiB of body; at most
// `max_connections` are open, and a new one beyond that closes the oldest
// connection that has not sent a whole request yet. So /healthz answers
// while any number of slow clients hold connections.
//
// Thread-safety: Start/Stop from one owner thread. Handlers run on the
// endpoint's own thread, never on gRPC threads, one at a time; the callbacks
// they call must be thread-safe and quick (they hold up other requests).

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace rampart::http {

struct HttpEndpointOptions {
  std::string host = "127.0.0.1";
  int port = 9443;  // 0: any free port (tests)
  // Most open connections. Default 64.
  int max_connections = 64;
  // A connection must send its request and read the answer within this.
  // Default 5 s.
  absl::Duration request_timeout = absl::Seconds(5);
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
  // Stops listening, closes every connection and joins the serving thread.
  // Idempotent.
  void Stop();

 private:
  class Loop;
  HttpEndpoint(std::unique_ptr<Loop> loop, int port);

  std::unique_ptr<Loop> loop_;
  const int port_;
  std::thread thread_;
};

}  // namespace rampart::http
