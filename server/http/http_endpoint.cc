#include "server/http/http_endpoint.h"

#include <sys/socket.h>

#include <chrono>
#include <utility>

#include "absl/strings/str_format.h"
#include "httplib.h"

namespace rampart::server {
namespace {

constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4";

}  // namespace

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(
    const HttpEndpointOptions& options, HttpHandlers handlers) {
  auto server = std::make_unique<httplib::Server>();
  const int threads = options.threads < 1 ? 1 : options.threads;
  server->new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<size_t>(threads));
  };
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would
  // let a second server silently share (and steal from) our port.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Hostile clients: small bodies, short timeouts, bounded keep-alive.
  server->set_payload_max_length(4096);
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_max_count(100);
  server->set_keep_alive_timeout(5);

  auto metrics = std::move(handlers.metrics);
  auto ready = std::move(handlers.ready);
  server->Get("/metrics",
              [metrics](const httplib::Request&, httplib::Response& res) {
                res.set_content(metrics ? metrics() : std::string(),
                                kPrometheusContentType);
              });
  server->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  server->Get(
      "/readyz", [ready](const httplib::Request&, httplib::Response& res) {
        const Readiness r = ready ? ready() : Readiness{true, ""};
        if (r.ready) {
          res.set_content("ready\n", "text/plain");
        } else {
          res.status = 503;
          res.set_content("not ready: " + r.reason + "\n", "text/plain");
        }
      });
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
      res.status = 405;
      res.set_header("Allow", "GET");
    };
    server->Post(path, not_allowed);
    server->Put(path, not_allowed);
    server->Delete(path, not_allowed);
  }

  int port = options.port;
  if (port == 0) {
    port = server->bind_to_any_port(options.host);
    if (port < 0) {
      return absl::UnavailableError(absl::StrFormat(
          "cannot bind the HTTP port on %s (any port)", options.host));
    }
  } else if (!server->bind_to_port(options.host, port)) {
    return absl::UnavailableError(
        absl::StrFormat("cannot bind the HTTP port %s:%d (in use, or not an "
                        "address of this host?)",
                        options.host, port));
  }
  std::unique_ptr<HttpEndpoint> endpoint(
      new HttpEndpoint(std::move(server), port));
  httplib::Server* raw = endpoint->server_.get();
  endpoint->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  // httplib's stop() is a no-op until the listening thread has marked the
  // server running, so wait for that (bounded) before handing it out.
  for (int i = 0; i < 5000 && !raw->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (!raw->is_running()) {
    return absl::InternalError("the HTTP listener did not start within 5 s");
  }
  return endpoint;
}

HttpEndpoint::HttpEndpoint(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

HttpEndpoint::~HttpEndpoint() { Stop(); }

void HttpEndpoint::Stop() {
  if (thread_.joinable()) {
    server_->stop();
    thread_.join();
  }
}

}  // namespace rampart::server
