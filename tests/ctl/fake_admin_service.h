#pragma once

// FakeAdminService: an AdminService with canned answers that records every
// request, for running rampartctl against a real in-process gRPC server.
// Thread-safety: thread-safe (handlers run on gRPC threads, the test reads
// from its own).

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "rampart/v1/admin.grpc.pb.h"

namespace rampart::ctl::testing {

// One unary method: answers with the configured responses in order (the
// last one repeats; none = an empty response), or with a non-OK status.
// If a hold is set, each call blocks until it is notified.
template <typename Request, typename Response>
class CannedUnary {
 public:
  void Respond(Response response) {
    absl::MutexLock lock(&mu_);
    responses_ = {std::move(response)};
    next_ = 0;
  }
  void RespondPages(std::vector<Response> responses) {
    absl::MutexLock lock(&mu_);
    responses_ = std::move(responses);
    next_ = 0;
  }
  void Fail(::grpc::Status status) {
    absl::MutexLock lock(&mu_);
    status_ = std::move(status);
  }
  void HoldUntil(absl::Notification* hold) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
  }
  std::vector<Request> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  ::grpc::Status Handle(const Request& request, Response* response) {
    absl::Notification* hold = nullptr;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      hold = hold_;
    }
    if (hold != nullptr) {
      hold->WaitForNotification();
    }
    absl::MutexLock lock(&mu_);
    if (!status_.ok()) {
      return status_;
    }
    if (!responses_.empty()) {
      *response = responses_[std::min(next_, responses_.size() - 1)];
      ++next_;
    }
    return ::grpc::Status::OK;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<Response> responses_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  ::grpc::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Notification* hold_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// One server-streaming method: writes the configured messages, then (if a
// hold is set) blocks until it is notified, then ends with `status`.
template <typename Request, typename Message>
class CannedStream {
 public:
  void Respond(std::vector<Message> messages,
               ::grpc::Status status = ::grpc::Status::OK) {
    absl::MutexLock lock(&mu_);
    messages_ = std::move(messages);
    status_ = std::move(status);
  }
  // Blocks the stream after its messages until `hold` is notified; notifies
  // `written` (if not null) once all messages were written.
  void HoldUntil(absl::Notification* hold, absl::Notification* written) {
    absl::MutexLock lock(&mu_);
    hold_ = hold;
    written_ = written;
  }
  std::vector<Request> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }

  ::grpc::Status Handle(const Request& request,
                        ::grpc::ServerWriter<Message>* writer) {
    std::vector<Message> messages;
    ::grpc::Status status;
    absl::Notification* hold = nullptr;
    absl::Notification* written = nullptr;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      messages = messages_;
      status = status_;
      hold = hold_;
      written = written_;
    }
    for (const Message& m : messages) {
      if (!writer->Write(m)) {
        break;
      }
    }
    if (written != nullptr) {
      written->Notify();
    }
    if (hold != nullptr) {
      hold->WaitForNotification();
    }
    return status;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Request> requests_ ABSL_GUARDED_BY(mu_);
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
  ::grpc::Status status_ ABSL_GUARDED_BY(mu_);
  absl::Notification* hold_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Notification* written_ ABSL_GUARDED_BY(mu_) = nullptr;
};

class FakeAdminService final : public v1::AdminService::Service {
 public:
  // Calls received, all methods together.
  int calls() const { return calls_.load(); }
  // The "authorization" metadata of the last unary call ("" if none).
  std::string last_authorization() const {
    absl::MutexLock lock(&auth_mu_);
    return last_authorization_;
  }

  CannedUnary<v1::StatusRequest, v1::StatusResponse> status;
  CannedUnary<v1::ListBansRequest, v1::ListBansResponse> list_bans;
  CannedUnary<v1::GetBanRequest, v1::GetBanResponse> get_ban;
  CannedUnary<v1::AddBanRequest, v1::AddBanResponse> add_ban;
  CannedUnary<v1::RemoveBanRequest, v1::RemoveBanResponse> remove_ban;
  CannedUnary<v1::LookupIpRequest, v1::LookupIpResponse> lookup_ip;
  CannedUnary<v1::ListAllowRequest, v1::ListAllowResponse> list_allow;
  CannedUnary<v1::AddAllowRequest, v1::AddAllowResponse> add_allow;
  CannedUnary<v1::RemoveAllowRequest, v1::RemoveAllowResponse> remove_allow;
  CannedUnary<v1::ListAgentsRequest, v1::ListAgentsResponse> list_agents;
  CannedUnary<v1::ListAccountsRequest, v1::ListAccountsResponse> list_accounts;
  CannedUnary<v1::ListAlertsRequest, v1::ListAlertsResponse> list_alerts;
  CannedStream<v1::WatchAlertsRequest, v1::WatchAlertsResponse> watch_alerts;
  CannedUnary<v1::ReportRequest, v1::ReportResponse> report;
  CannedStream<v1::ExportRequest, v1::ExportChunk> export_chunks;
  CannedUnary<v1::ImportRequest, v1::ImportResponse> import;
  CannedUnary<v1::ListAuditRequest, v1::ListAuditResponse> list_audit;
  CannedUnary<v1::EnrollAgentRequest, v1::EnrollAgentResponse> enroll_agent;
  CannedUnary<v1::RevokeAgentRequest, v1::RevokeAgentResponse> revoke_agent;
  CannedUnary<v1::SetAgentProtectionRequest, v1::SetAgentProtectionResponse>
      set_agent_protection;

  // AdminService
#define RAMPART_FAKE_UNARY(Method, member)                         \
  ::grpc::Status Method(::grpc::ServerContext* context,            \
                        const v1::Method##Request* request,        \
                        v1::Method##Response* response) override { \
    ++calls_;                                                      \
    NoteAuthorization(*context);                                   \
    return member.Handle(*request, response);                      \
  }
  RAMPART_FAKE_UNARY(Status, status)
  RAMPART_FAKE_UNARY(ListBans, list_bans)
  RAMPART_FAKE_UNARY(GetBan, get_ban)
  RAMPART_FAKE_UNARY(AddBan, add_ban)
  RAMPART_FAKE_UNARY(RemoveBan, remove_ban)
  RAMPART_FAKE_UNARY(LookupIp, lookup_ip)
  RAMPART_FAKE_UNARY(ListAllow, list_allow)
  RAMPART_FAKE_UNARY(AddAllow, add_allow)
  RAMPART_FAKE_UNARY(RemoveAllow, remove_allow)
  RAMPART_FAKE_UNARY(ListAgents, list_agents)
  RAMPART_FAKE_UNARY(ListAccounts, list_accounts)
  RAMPART_FAKE_UNARY(ListAlerts, list_alerts)
  RAMPART_FAKE_UNARY(Report, report)
  RAMPART_FAKE_UNARY(Import, import)
  RAMPART_FAKE_UNARY(ListAudit, list_audit)
  RAMPART_FAKE_UNARY(EnrollAgent, enroll_agent)
  RAMPART_FAKE_UNARY(RevokeAgent, revoke_agent)
  RAMPART_FAKE_UNARY(SetAgentProtection, set_agent_protection)
#undef RAMPART_FAKE_UNARY

  ::grpc::Status WatchAlerts(
      ::grpc::ServerContext*, const v1::WatchAlertsRequest* request,
      ::grpc::ServerWriter<v1::WatchAlertsResponse>* writer) override {
    ++calls_;
    return watch_alerts.Handle(*request, writer);
  }
  ::grpc::Status Export(
      ::grpc::ServerContext*, const v1::ExportRequest* request,
      ::grpc::ServerWriter<v1::ExportChunk>* writer) override {
    ++calls_;
    return export_chunks.Handle(*request, writer);
  }

 private:
  std::atomic<int> calls_{0};
  void NoteAuthorization(const ::grpc::ServerContext& context) {
    const auto& md = context.client_metadata();
    const auto it = md.find("authorization");
    absl::MutexLock lock(&auth_mu_);
    last_authorization_ =
        it == md.end() ? "" : std::string(it->second.data(), it->second.size());
  }
  mutable absl::Mutex auth_mu_;
  std::string last_authorization_ ABSL_GUARDED_BY(auth_mu_);
};

}  // namespace rampart::ctl::testing
