#pragma once

// Who is on the other end of a gRPC call, from the transport: the verified
// client certificate (mutual TLS) or nothing. The one place that reads
// grpc::AuthContext; AgentService (agent identity), EnrollmentService (rate
// limit key) and AdminService (the authenticated admin identity, which the
// authorization layer builds on) use it.
// Thread-safety: pure functions.

#include <optional>
#include <string>

#include "grpcpp/server_context.h"
#include "server/enroll/enrollment_manager.h"

namespace rampart::server {

// The verified client certificate of the call, if the connection is TLS and
// the client presented one (gRPC has verified it against tls.client_ca_file
// before the call starts). nullopt for plaintext or no certificate.
std::optional<PeerCertificate> PeerCertificateOf(
    const grpc::ServerContextBase& context);

// The authenticated identity of the caller for logs and audit:
// "cert:<CN>" with a client certificate, "tls-anonymous" over TLS without
// one, "insecure" over plaintext.
std::string AuthenticatedPeer(const grpc::ServerContextBase& context);

// The peer's IP address (canonical) or, failing that, gRPC's peer string:
// the key for per-address limits.
std::string PeerAddress(const grpc::ServerContextBase& context);

}  // namespace rampart::server
