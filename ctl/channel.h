#pragma once

// How rampartctl reaches the admin API. This is the transport seam: TLS
// (verifying the server against --ca-file, with an optional admin client
// certificate), or plaintext only when asked for with --insecure; per-call
// tokens are added here too, nothing else in ctl/ changes.
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
  // Plaintext (the server runs --insecure). Excludes the TLS fields.
  bool insecure = false;
  // PEM files: the CA bundle that signed the server certificate (required
  // unless insecure), and an optional admin client certificate + key.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// Checks the syntax of a target: "unix:" followed by an absolute path, or a
// non-empty host (a name, an IPv4 address or a bracketed IPv6 address) and
// a port in 1..65535. Returns InvalidArgument naming the target otherwise.
absl::Status ValidateServerTarget(std::string_view target);

// Creates a channel to options.target. The channel connects lazily on the
// first call, so an unreachable server shows up as the call's UNAVAILABLE
// status. Returns InvalidArgument for a bad target, for neither insecure nor
// a ca_file ("no TLS material": never silently plaintext), and for TLS files
// that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeAdminChannel(
    const ChannelOptions& options);

}  // namespace rampart::ctl
