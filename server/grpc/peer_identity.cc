#include "server/grpc/peer_identity.h"

#include <string_view>
#include <utility>

#include "common/ip_address.h"
#include "common/pki/pki.h"
#include "grpcpp/security/auth_context.h"

namespace rampart::server {
namespace {

std::optional<std::string> Property(const grpc::AuthContext& auth,
                                    const char* name) {
  const std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
  if (values.empty()) {
    return std::nullopt;
  }
  return std::string(values.front().data(), values.front().size());
}

}  // namespace

std::optional<PeerCertificate> PeerCertificateOf(
    const grpc::ServerContextBase& context) {
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) {
    return std::nullopt;
  }
  const std::optional<std::string> pem = Property(*auth, "x509_pem_cert");
  if (!pem.has_value()) {
    return std::nullopt;
  }
  absl::StatusOr<pki::CertificateInfo> info = pki::ParseCertificate(*pem);
  if (!info.ok()) {
    return std::nullopt;
  }
  return PeerCertificate{.common_name = info->common_name,
                         .sha256_hex = info->sha256_hex,
                         .not_after = info->not_after};
}

std::string AuthenticatedPeer(const grpc::ServerContextBase& context) {
  if (std::optional<PeerCertificate> cert = PeerCertificateOf(context)) {
    return "cert:" + cert->common_name;
  }
  const std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth != nullptr &&
      Property(*auth, "transport_security_type").value_or("") == "ssl") {
    return "tls-anonymous";
  }
  return "insecure";
}

std::string PeerAddress(const grpc::ServerContextBase& context) {
  // "ipv4:198.51.100.7:5000", "ipv6:[2001:db8::1]:5000", "unix:/path";
  // gRPC 1.51 writes the IPv6 brackets percent-encoded
  // ("ipv6:%5B::1%5D:5000").
  std::string peer_text = context.peer();
  for (const auto& [from, to] :
       {std::pair<std::string_view, std::string_view>{"%5B", "["},
        std::pair<std::string_view, std::string_view>{"%5D", "]"}}) {
    for (size_t at = peer_text.find(from); at != std::string::npos;
         at = peer_text.find(from, at)) {
      peer_text.replace(at, from.size(), to);
    }
  }
  std::string_view peer = peer_text;
  std::string_view host = peer;
  if (peer.starts_with("ipv4:")) {
    host = peer.substr(5);
    host = host.substr(0, host.rfind(':'));
  } else if (peer.starts_with("ipv6:[")) {
    host = peer.substr(6);
    host = host.substr(0, host.find(']'));
  }
  if (std::optional<IpAddress> ip = IpAddress::Parse(host)) {
    return ip->ToString();
  }
  return std::string(peer);
}

}  // namespace rampart::server
