#include "server/grpc/enrollment_service.h"

#include "common/logging.h"
#include "server/grpc/conversions.h"
#include "server/grpc/peer_identity.h"

namespace rampart::server {

grpc::ServerUnaryReactor* EnrollmentService::Enroll(
    grpc::CallbackServerContext* context, const v1::EnrollRequest* request,
    v1::EnrollResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const std::string peer = PeerAddress(*context);
  absl::StatusOr<EnrolledCertificate> cert = manager_.Enroll(
      request->token(), request->agent_id(), request->csr_pem(), peer);
  if (!cert.ok()) {
    RAMPART_LOG(Warning) << "enrollment from " << peer
                         << " refused: " << cert.status();
    reactor->Finish(ToGrpcStatus(cert.status()));
    return reactor;
  }
  RAMPART_LOG(Info) << "agent " << request->agent_id() << " enrolled from "
                    << peer;
  response->set_certificate_chain_pem(cert->certificate_chain_pem);
  response->set_ca_bundle_pem(cert->ca_bundle_pem);
  response->mutable_not_after()->set_seconds(
      absl::ToUnixSeconds(cert->not_after));
  response->set_agent_id(request->agent_id());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace rampart::server
