#pragma once

// AdminService: the operator API that rampartctl calls (proto
// rampart/v1/admin.proto, docs/protocol.md "Admin API").
//
// It is a thin edge: each handler validates and converts the request
// (INVALID_ARGUMENT naming the field), calls AdminQueries
// (server/core/admin_queries.h), which holds the domain logic, converts the
// result, and maps absl::Status to grpc::Status with ToGrpcStatus.
//
// Why the SYNC service API when the agent stream uses callbacks (CONVENTIONS
// "gRPC server rules"): admin calls are rare (an operator, a script, a
// dashboard) and every one of them reads or writes the store synchronously,
// sometimes for a while (a report scans a day of events). Sync handlers run
// on the server's own sync thread pool, separate from the callback pool that
// runs the agent reactors, so a slow admin call can never stall the agents'
// reactions; on the callback API the same blocking store calls would have to
// be moved to a thread of their own anyway. See docs/threading.md "Admin".
//
// Register next to the callback AgentService on the same builder:
//   AdminService admin(options, correlator, store, distributor, clock,
//                      registry, authenticator, facts);
//   builder.RegisterService(&agent_service);  // callback API
//   builder.RegisterService(&admin);          // sync API
//   ... server = builder.BuildAndStart();
//   // on shutdown, first end the WatchAlerts streams, then the server:
//   admin.Shutdown();
//   server->Shutdown();
// (Serving admin on its own listener/port only needs a second
// AddListeningPort; the services do not care.)
//
// Identity and authorization (docs/security.md "Admin authorization"): every
// method first authenticates the caller's "authorization: Bearer <token>"
// metadata with the AdminAuthenticator (UNAUTHENTICATED if missing, unknown
// or revoked) and checks the role the method needs (PERMISSION_DENIED):
// read-only for lists, lookups, report, export, audit and status; operator
// for AddBan/RemoveBan/AddAllow/RemoveAllow/Import/DryRunPolicy; admin for
// AddBan and AddAllow of a prefix broader than /16 (IPv4) or /32 (IPv6), for
// AddBan with override_protected, and for EnrollAgent/RevokeAgent/
// SetAgentProtection. The audit actor is the token's "token:<name>".
//
// Thread-safety: thread-safe; gRPC calls the handlers concurrently from its
// sync pool. WatchAlerts occupies one pool thread per stream (at most
// AlertsHub::Options::max_watchers).

#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/status.h"
#include "grpcpp/support/sync_stream.h"
#include "rampart/v1/admin.grpc.pb.h"
#include "rampart/v1/limits.h"
#include "server/core/admin_auth.h"
#include "server/core/admin_queries.h"
#include "server/core/ban_distributor.h"
#include "server/core/correlator.h"
#include "server/core/store.h"
#include "server/enroll/enrollment_manager.h"

namespace rampart::server {

struct AdminServiceOptions {
  // Domain limits and the live policy (AdminQueriesOptions::policy must be
  // the Correlator's policy).
  AdminQueriesOptions queries;
  // WatchAlerts polling cadence and limits.
  AlertsHub::Options alerts;
  // Export chunk size, at most v1::kMaxExportChunkBytes (the default).
  size_t export_chunk_bytes = static_cast<size_t>(v1::kMaxExportChunkBytes);
  // Most ImportLineResults in one response (the counts stay exact), so the
  // response stays under the 4 MiB message limit. Default 10000.
  size_t max_import_results = 10'000;
};

class AdminService final : public v1::AdminService::Service {
 public:
  // The references must outlive the service. `facts` supplies what only the
  // server application knows (version, start time, store health, agent
  // Hello data); its callbacks may be empty.
  AdminService(const AdminServiceOptions& options, Correlator& correlator,
               Store& store, BanDistributor& distributor, Clock& clock,
               metrics::Registry& metrics, AdminAuthenticator& auth,
               ServerFacts facts);
  ~AdminService() override;

  AdminService(const AdminService&) = delete;
  AdminService& operator=(const AdminService&) = delete;

  // Ends every WatchAlerts stream with UNAVAILABLE and refuses new ones.
  // Call before grpc::Server::Shutdown(), which waits for running handlers.
  void Shutdown();
  // Agent identity (mutual TLS): the backend of EnrollAgent / RevokeAgent
  // and the hook that ends a revoked agent's live stream (returns whether one
  // was open). Call before the server starts; without it (plaintext) both
  // calls answer FAILED_PRECONDITION. `manager` must outlive the service.
  void SetAgentIdentity(
      EnrollmentManager* manager,
      std::function<bool(const std::string& agent_id)> end_agent_stream);

  // Wakes the WatchAlerts streams to look for new alerts now. Optional: wire
  // it to the ingest path (IngestResult::alerts > 0) for immediate delivery;
  // without it alerts arrive within AlertsHub::Options::poll_interval.
  void NotifyAlerts();

  AdminQueries& queries() { return queries_; }
  AlertsHub& AlertsHubForTest() { return alerts_; }

  // v1::AdminService::Service
  grpc::Status Status(grpc::ServerContext* context,
                      const v1::StatusRequest* request,
                      v1::StatusResponse* response) override;
  grpc::Status ListBans(grpc::ServerContext* context,
                        const v1::ListBansRequest* request,
                        v1::ListBansResponse* response) override;
  grpc::Status GetBan(grpc::ServerContext* context,
                      const v1::GetBanRequest* request,
                      v1::GetBanResponse* response) override;
  grpc::Status AddBan(grpc::ServerContext* context,
                      const v1::AddBanRequest* request,
                      v1::AddBanResponse* response) override;
  grpc::Status RemoveBan(grpc::ServerContext* context,
                         const v1::RemoveBanRequest* request,
                         v1::RemoveBanResponse* response) override;
  grpc::Status LookupIp(grpc::ServerContext* context,
                        const v1::LookupIpRequest* request,
                        v1::LookupIpResponse* response) override;
  grpc::Status ListAllow(grpc::ServerContext* context,
                         const v1::ListAllowRequest* request,
                         v1::ListAllowResponse* response) override;
  grpc::Status AddAllow(grpc::ServerContext* context,
                        const v1::AddAllowRequest* request,
                        v1::AddAllowResponse* response) override;
  grpc::Status RemoveAllow(grpc::ServerContext* context,
                           const v1::RemoveAllowRequest* request,
                           v1::RemoveAllowResponse* response) override;
  grpc::Status ListAgents(grpc::ServerContext* context,
                          const v1::ListAgentsRequest* request,
                          v1::ListAgentsResponse* response) override;
  grpc::Status ListAccounts(grpc::ServerContext* context,
                            const v1::ListAccountsRequest* request,
                            v1::ListAccountsResponse* response) override;
  grpc::Status ListAlerts(grpc::ServerContext* context,
                          const v1::ListAlertsRequest* request,
                          v1::ListAlertsResponse* response) override;
  // Runs until the client cancels, a write fails, or Shutdown().
  grpc::Status WatchAlerts(
      grpc::ServerContext* context, const v1::WatchAlertsRequest* request,
      grpc::ServerWriter<v1::WatchAlertsResponse>* writer) override;
  grpc::Status Report(grpc::ServerContext* context,
                      const v1::ReportRequest* request,
                      v1::ReportResponse* response) override;
  grpc::Status Export(grpc::ServerContext* context,
                      const v1::ExportRequest* request,
                      grpc::ServerWriter<v1::ExportChunk>* writer) override;
  grpc::Status Import(grpc::ServerContext* context,
                      const v1::ImportRequest* request,
                      v1::ImportResponse* response) override;
  grpc::Status ListAudit(grpc::ServerContext* context,
                         const v1::ListAuditRequest* request,
                         v1::ListAuditResponse* response) override;
  // UNIMPLEMENTED until the agent-security work (enrollment, revocation).
  grpc::Status EnrollAgent(grpc::ServerContext* context,
                           const v1::EnrollAgentRequest* request,
                           v1::EnrollAgentResponse* response) override;
  grpc::Status RevokeAgent(grpc::ServerContext* context,
                           const v1::RevokeAgentRequest* request,
                           v1::RevokeAgentResponse* response) override;
  grpc::Status SetAgentProtection(
      grpc::ServerContext* context,
      const v1::SetAgentProtectionRequest* request,
      v1::SetAgentProtectionResponse* response) override;
  grpc::Status DryRunPolicy(grpc::ServerContext* context,
                            const v1::DryRunPolicyRequest* request,
                            v1::DryRunPolicyResponse* response) override;

 private:
  // Authenticates the caller of `method` and checks it has `needed`.
  absl::StatusOr<Principal> Authorize(const grpc::ServerContext& context,
                                      AdminRole needed,
                                      std::string_view method);
  // Counts the call by method and code and converts the status.
  grpc::Status Done(std::string_view method, const absl::Status& status);

  const AdminServiceOptions options_;
  Clock& clock_;
  // Set by SetAgentIdentity (wiring, possibly while serving); read by the
  // enrollment RPCs on gRPC's threads.
  mutable absl::Mutex identity_mu_;
  EnrollmentManager* enrollment_ ABSL_GUARDED_BY(identity_mu_) = nullptr;
  std::function<bool(const std::string&)> end_agent_stream_
      ABSL_GUARDED_BY(identity_mu_);
  BanDistributor& distributor_;
  metrics::Registry& metrics_;
  metrics::Gauge& watchers_gauge_;
  AdminAuthenticator& auth_;
  AdminQueries queries_;
  AlertsHub alerts_;
};

}  // namespace rampart::server
