#pragma once

// How rampartctl reaches the admin API. This is the transport seam: today
// the channel is plaintext (TCP or a Unix socket); TLS with an admin client
// certificate and per-call tokens are added here (new ChannelOptions fields
// and MakeAdminChannel's credentials), nothing else in ctl/ changes.
// Thread-safety: pure functions; the returned channel is thread-safe.

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "grpcpp/channel.h"

namespace rampart::ctl {

// Default admin endpoint (the server's admin listener).
inline constexpr std::string_view kDefaultServer = "127.0.0.1:7443";

struct ChannelOptions {
  // "HOST:PORT", "[IPv6]:PORT" or "unix:/path/to/socket".
  std::string target = std::string(kDefaultServer);
  // Largest message accepted from the server (export chunks are <= 1 MiB,
  // other answers far smaller); gRPC's default is 4 MiB.
  int max_receive_message_bytes = 4 * 1024 * 1024;
  // Not yet: TLS (ca_file, cert_file, key_file, server name override) and
  // a bearer token file for per-call credentials.
};

// Checks the syntax of a target: "unix:" followed by an absolute path, or a
// non-empty host (a name, an IPv4 address or a bracketed IPv6 address) and
// a port in 1..65535. Returns InvalidArgument naming the target otherwise.
absl::Status ValidateServerTarget(std::string_view target);

// Creates a channel to options.target. The channel connects lazily on the
// first call, so an unreachable server shows up as the call's UNAVAILABLE
// status. Returns InvalidArgument for a bad target.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeAdminChannel(
    const ChannelOptions& options);

}  // namespace rampart::ctl
