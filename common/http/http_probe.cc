#include "common/http/http_probe.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/str_format.h"
#include "httplib.h"

namespace rampart::http {

std::string ProbeHostFor(std::string_view listen_host) {
  if (listen_host.empty() || listen_host == "0.0.0.0") {
    return "127.0.0.1";
  }
  if (listen_host == "::" || listen_host == "[::]") {
    return "::1";
  }
  if (listen_host.size() >= 2 && listen_host.front() == '[' &&
      listen_host.back() == ']') {
    return std::string(listen_host.substr(1, listen_host.size() - 2));
  }
  return std::string(listen_host);
}

absl::Status ProbeHttp(std::string_view host, int port, std::string_view path,
                       absl::Duration timeout) {
  const std::string where =
      host.find(':') != std::string_view::npos
          ? absl::StrFormat("http://[%s]:%d%s", host, port, path)
          : absl::StrFormat("http://%s:%d%s", host, port, path);
  if (port < 1 || port > 65535 || path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError("invalid probe address " + where);
  }
  httplib::Client client(std::string(host), port);
  const int64_t micros =
      std::max<int64_t>(absl::ToInt64Microseconds(timeout), 1000);
  client.set_connection_timeout(static_cast<time_t>(micros / 1000000),
                                static_cast<time_t>(micros % 1000000));
  client.set_read_timeout(static_cast<time_t>(micros / 1000000),
                          static_cast<time_t>(micros % 1000000));
  client.set_keep_alive(false);
  auto res = client.Get(std::string(path));
  if (!res) {
    return absl::UnavailableError(
        absl::StrFormat("%s: %s", where, httplib::to_string(res.error())));
  }
  if (res->status != 200) {
    std::string body =
        res->body.substr(0, std::min<size_t>(res->body.size(), 200));
    if (auto nl = body.find('\n'); nl != std::string::npos) {
      body.resize(nl);
    }
    for (char& c : body) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
        c = '?';
      }
    }
    return absl::UnavailableError(
        absl::StrFormat("%s: HTTP %d %s", where, res->status, body));
  }
  return absl::OkStatus();
}

}  // namespace rampart::http
