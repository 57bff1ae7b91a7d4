#pragma once

// EnrollmentService (rampart.v1, enrollment.proto): the gRPC edge of
// EnrollmentManager::Enroll. Served on the agent listener, where a client
// certificate is requested but not required; the token is the credential.
// Thread-safety: thread-safe. The manager must outlive the service.

#include "grpcpp/support/server_callback.h"
#include "rampart/v1/enrollment.grpc.pb.h"
#include "server/enroll/enrollment_manager.h"

namespace rampart::server {

class EnrollmentService final : public v1::EnrollmentService::CallbackService {
 public:
  explicit EnrollmentService(EnrollmentManager& manager) : manager_(manager) {}

  // v1::EnrollmentService::CallbackService
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;

 private:
  EnrollmentManager& manager_;
};

}  // namespace rampart::server
