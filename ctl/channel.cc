#include "ctl/channel.h"

#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace rampart::ctl {
namespace {

absl::Status BadTarget(std::string_view target, std::string_view why) {
  return absl::InvalidArgumentError(absl::StrFormat(
      "invalid server \"%s\": %s (expected HOST:PORT, [IPv6]:PORT or "
      "unix:/path)",
      Abbreviate(target, 80), why));
}

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

absl::StatusOr<std::string> ReadPem(const char* flag, const std::string& path) {
  absl::StatusOr<std::string> pem =
      file_util::ReadFileBounded(path, 1024 * 1024);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s %s: %s", flag, path, pem.status().message()));
  }
  return pem;
}

// The single place that decides transport security (see the file comment).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeCredentials(
    const ChannelOptions& options) {
  if (options.insecure) {
    return grpc::InsecureChannelCredentials();
  }
  if (options.ca_file.empty()) {
    return absl::InvalidArgumentError(
        "no TLS material: pass --ca-file CA.pem (and --cert/--key for an "
        "admin client certificate), or --insecure for a server started with "
        "--insecure (docs/security.md)");
  }
  grpc::SslCredentialsOptions ssl;
  ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("--ca-file", options.ca_file));
  if (!options.cert_file.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadPem("--cert", options.cert_file));
    ASSIGN_OR_RETURN(ssl.pem_private_key, ReadPem("--key", options.key_file));
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::Status ValidateServerTarget(std::string_view target) {
  if (std::string_view path = target; ConsumePrefix(&path, "unix:")) {
    if (!path.starts_with('/') || path.size() < 2) {
      return BadTarget(target, "a Unix socket path must be absolute");
    }
    return absl::OkStatus();
  }
  const size_t colon = target.rfind(':');
  if (colon == std::string_view::npos) {
    return BadTarget(target, "missing :PORT");
  }
  std::string_view host = target.substr(0, colon);
  const std::string_view port = target.substr(colon + 1);
  if (port.empty() || port.size() > 5) {
    return BadTarget(target, "bad port");
  }
  int port_number = 0;
  for (char c : port) {
    if (c < '0' || c > '9') {
      return BadTarget(target, "bad port");
    }
    port_number = port_number * 10 + (c - '0');
  }
  if (port_number < 1 || port_number > 65535) {
    return BadTarget(target, "port must be 1..65535");
  }
  if (host.starts_with('[')) {
    if (!host.ends_with(']')) {
      return BadTarget(target, "unbalanced [");
    }
    std::optional<IpAddress> ip =
        IpAddress::Parse(host.substr(1, host.size() - 2));
    if (!ip.has_value() || !ip->is_v6()) {
      return BadTarget(target, "not an IPv6 address inside []");
    }
    return absl::OkStatus();
  }
  if (host.empty()) {
    return BadTarget(target, "missing host");
  }
  for (char c : host) {
    if (!IsHostNameChar(c)) {
      return BadTarget(target, c == ':' ? "put an IPv6 address in [brackets]"
                                        : "bad character in host");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> MakeAdminChannel(
    const ChannelOptions& options) {
  if (absl::Status s = ValidateServerTarget(options.target); !s.ok()) {
    return s;
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // One short-lived process per command: no need to share subchannels.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   MakeCredentials(options));
  return grpc::CreateCustomChannel(options.target, credentials, args);
}

}  // namespace rampart::ctl
