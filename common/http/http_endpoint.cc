#include "common/http/http_endpoint.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart::http {
namespace {

constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4";
// Largest request head (request line + headers) and body read.
constexpr size_t kMaxHeadBytes = 8192;
constexpr size_t kMaxBodyBytes = 4096;

using SteadyTime = std::chrono::steady_clock::time_point;

struct Response {
  int status = 200;
  std::string content_type = "text/plain";
  std::string body;
  bool allow_get = false;  // send "Allow: GET" (405)
};

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string Serialize(const Response& r) {
  std::string out = absl::StrFormat(
      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
      "Connection: close\r\n",
      r.status, Reason(r.status), r.content_type, r.body.size());
  if (r.allow_get) {
    out += "Allow: GET\r\n";
  }
  out += "\r\n";
  out += r.body;
  return out;
}

void CloseFd(int fd) {
  if (fd >= 0) {
    ::close(fd);
  }
}

}  // namespace

// The poll() loop: the listening socket, an eventfd to stop, and every open
// connection. Thread-safety: Run() on one thread; Wake() from any.
class HttpEndpoint::Loop {
 public:
  Loop(const HttpEndpointOptions& options, HttpHandlers handlers, int listen_fd,
       int wake_fd)
      : options_(options),
        handlers_(std::move(handlers)),
        listen_fd_(listen_fd),
        wake_fd_(wake_fd) {}
  ~Loop() {
    for (Conn& c : conns_) {
      CloseFd(c.fd);
    }
    CloseFd(listen_fd_);
    CloseFd(wake_fd_);
  }

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }

  void Run() {
    std::vector<pollfd> fds;
    while (true) {
      const SteadyTime now = std::chrono::steady_clock::now();
      // Expired connections go first (slowloris, readers that never read).
      conns_.remove_if([&](const Conn& c) {
        if (c.deadline <= now) {
          CloseFd(c.fd);
          return true;
        }
        return false;
      });
      fds.clear();
      fds.push_back({.fd = wake_fd_, .events = POLLIN, .revents = 0});
      fds.push_back({.fd = listen_fd_, .events = POLLIN, .revents = 0});
      SteadyTime next = now + std::chrono::seconds(60);
      for (const Conn& c : conns_) {
        fds.push_back(
            {.fd = c.fd,
             .events = static_cast<short>(c.out.empty() ? POLLIN : POLLOUT),
             .revents = 0});
        next = std::min(next, c.deadline);
      }
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(next - now)
              .count();
      const int n =
          ::poll(fds.data(), fds.size(),
                 static_cast<int>(std::clamp<int64_t>(wait + 1, 0, 60'000)));
      if (n < 0 && errno != EINTR) {
        return;
      }
      if (n <= 0) {
        continue;
      }
      if (fds[0].revents != 0) {
        return;  // Stop()
      }
      // Connections first (fds[2..] match conns_ in order), then accept, so
      // the new connections are not in `fds` yet.
      auto it = conns_.begin();
      for (size_t i = 2; i < fds.size() && it != conns_.end(); ++i) {
        if (fds[i].revents != 0 && !Service(*it)) {
          CloseFd(it->fd);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      if (fds[1].revents & POLLIN) {
        Accept();
      }
    }
  }

 private:
  struct Conn {
    int fd = -1;
    SteadyTime deadline;
    std::string in;       // request bytes so far
    std::string out;      // response; non-empty once the request is complete
    size_t out_sent = 0;  // bytes of `out` written
  };

  // Accepts what is pending (bounded per round), making room by closing the
  // oldest connections that are still reading a request.
  void Accept() {
    for (int i = 0; i < options_.max_connections; ++i) {
      const int fd =
          ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        return;  // EAGAIN, or an error on this one connection
      }
      const size_t cap =
          static_cast<size_t>(std::max(1, options_.max_connections));
      while (conns_.size() >= cap) {
        auto victim = std::find_if(conns_.begin(), conns_.end(),
                                   [](const Conn& c) { return c.out.empty(); });
        if (victim == conns_.end()) {
          victim = conns_.begin();  // all answering: the oldest
        }
        CloseFd(victim->fd);
        conns_.erase(victim);
      }
      conns_.push_back(Conn{
          .fd = fd,
          .deadline = std::chrono::steady_clock::now() +
                      absl::ToChronoMilliseconds(options_.request_timeout)});
    }
  }

  // Reads or writes what the socket allows. False: close the connection.
  bool Service(Conn& c) {
    if (c.out.empty()) {
      char buf[4096];
      const ssize_t n = ::recv(c.fd, buf, sizeof(buf), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return false;
      }
      if (n > 0) {
        c.in.append(buf, static_cast<size_t>(n));
      }
      std::optional<Response> r = Parse(c.in);
      if (!r.has_value()) {
        return true;  // need more
      }
      c.out = Serialize(*r);
      c.in.clear();
      c.in.shrink_to_fit();
    }
    while (c.out_sent < c.out.size()) {
      const ssize_t n = ::send(c.fd, c.out.data() + c.out_sent,
                               c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n < 0) {
        return errno == EAGAIN || errno == EINTR;
      }
      c.out_sent += static_cast<size_t>(n);
    }
    ::shutdown(c.fd, SHUT_WR);
    return false;
  }

  // The response to the request in `in`, or nullopt while it is incomplete.
  std::optional<Response> Parse(std::string_view in) {
    const size_t head_end = in.find("\r\n\r\n");
    if (head_end == std::string_view::npos) {
      if (in.size() > kMaxHeadBytes) {
        return Response{.status = 431, .body = "request head too large\n"};
      }
      return std::nullopt;
    }
    if (head_end > kMaxHeadBytes) {
      return Response{.status = 431, .body = "request head too large\n"};
    }
    const std::string_view head = in.substr(0, head_end);
    const size_t line_end = std::min(head.find("\r\n"), head.size());
    const std::string_view request_line = head.substr(0, line_end);
    // METHOD SP PATH SP HTTP/1.x
    const size_t sp1 = request_line.find(' ');
    const size_t sp2 = request_line.rfind(' ');
    if (sp1 == std::string_view::npos || sp2 == sp1 ||
        !request_line.substr(sp2 + 1).starts_with("HTTP/1.")) {
      return Response{.status = 400, .body = "bad request line\n"};
    }
    const std::string_view method = request_line.substr(0, sp1);
    std::string_view path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    size_t body = 0;
    std::string_view rest = head.substr(line_end);
    while (!rest.empty()) {
      rest.remove_prefix(std::min<size_t>(2, rest.size()));  // "\r\n"
      const std::string_view line = rest.substr(0, rest.find("\r\n"));
      rest.remove_prefix(line.size());
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) {
        continue;
      }
      const std::string name =
          AsciiLower(StripWhitespace(line.substr(0, colon)));
      if (name == "content-length") {
        if (!absl::SimpleAtoi(ToAbsl(line.substr(colon + 1)), &body)) {
          return Response{.status = 400, .body = "bad Content-Length\n"};
        }
      } else if (name == "transfer-encoding") {
        return Response{.status = 400, .body = "no request bodies\n"};
      }
    }
    if (body > kMaxBodyBytes) {
      return Response{.status = 413, .body = "request body too large\n"};
    }
    if (in.size() - head_end - 4 < body) {
      return std::nullopt;  // wait for the body, so the answer is not reset
    }
    path = path.substr(0, path.find('?'));
    const bool known =
        path == "/metrics" || path == "/healthz" || path == "/readyz";
    if (!known) {
      return Response{.status = 404, .body = "not found\n"};
    }
    if (method != "GET") {
      return Response{.status = 405, .allow_get = true};
    }
    if (path == "/metrics") {
      return Response{
          .content_type = kPrometheusContentType,
          .body = handlers_.metrics ? handlers_.metrics() : std::string()};
    }
    if (path == "/healthz") {
      return Response{.body = "ok\n"};
    }
    const Readiness r =
        handlers_.ready ? handlers_.ready() : Readiness{true, ""};
    if (r.ready) {
      return Response{.body = "ready\n"};
    }
    return Response{.status = 503, .body = "not ready: " + r.reason + "\n"};
  }

  const HttpEndpointOptions options_;
  const HttpHandlers handlers_;
  const int listen_fd_;
  const int wake_fd_;
  std::list<Conn> conns_;  // oldest first
};

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(
    const HttpEndpointOptions& options, HttpHandlers handlers) {
  const std::string where =
      options.port == 0 ? absl::StrFormat("%s (any port)", options.host)
                        : absl::StrFormat("%s:%d", options.host, options.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port_text = std::to_string(options.port);
  if (const int rc = ::getaddrinfo(options.host.c_str(), port_text.c_str(),
                                   &hints, &found);
      rc != 0 || found == nullptr) {
    return absl::UnavailableError(
        absl::StrFormat("cannot bind the HTTP port %s: %s", where,
                        rc != 0 ? ::gai_strerror(rc) : "no address"));
  }
  const int fd =
      ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  // SO_REUSEADDR only: SO_REUSEPORT would let a second server silently share
  // (and steal from) our port.
  int yes = 1;
  const bool bound =
      fd >= 0 &&
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes)) == 0 &&
      ::bind(fd, found->ai_addr, found->ai_addrlen) == 0 &&
      ::listen(fd, 128) == 0;
  const int bind_errno = errno;
  ::freeaddrinfo(found);
  if (!bound) {
    CloseFd(fd);
    return absl::UnavailableError(absl::StrFormat(
        "cannot bind the HTTP port %s (in use, or not an address of this "
        "host?): %s",
        where, std::strerror(bind_errno)));
  }
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  int port = options.port;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = addr.ss_family == AF_INET6
               ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
               : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    CloseFd(fd);
    return absl::InternalError("eventfd failed for the HTTP listener");
  }
  auto loop = std::make_unique<Loop>(options, std::move(handlers), fd, wake);
  std::unique_ptr<HttpEndpoint> endpoint(
      new HttpEndpoint(std::move(loop), port));
  Loop* raw = endpoint->loop_.get();
  endpoint->thread_ = std::thread([raw] { raw->Run(); });
  return endpoint;
}

HttpEndpoint::HttpEndpoint(std::unique_ptr<Loop> loop, int port)
    : loop_(std::move(loop)), port_(port) {}

HttpEndpoint::~HttpEndpoint() { Stop(); }

void HttpEndpoint::Stop() {
  if (thread_.joinable()) {
    loop_->Wake();
    thread_.join();
    loop_.reset();  // closes the listening socket and every connection
  }
}

}  // namespace rampart::http
