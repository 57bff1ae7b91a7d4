#pragma once

// The rampartctl commands: one method per command, each making its
// AdminService call(s) through a StubInterface and printing the result as a
// table, JSON or CSV. Requests arrive fully validated by the command line
// layer (cli.h), so a method only talks to the server and renders; it never
// reads flags, the environment or the clock directly.
//
// Every method returns a process exit code (exit_codes.h) and reports
// failures on the error stream as "rampartctl: <command>: <reason>".
// Thread-safety: not thread-safe; one AdminCommands runs one command.

#include <cstddef>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"
#include "ctl/output.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"
#include "rampart/v1/admin.grpc.pb.h"

namespace rampart::ctl {

// What every command needs besides its request.
struct CommandContext {
  // The server as the user named it, for messages ("cannot reach ...").
  std::string server;
  // Deadline of each call: each page of a list, and the whole of an export
  // or import. Not applied to `alerts --watch`.
  absl::Duration timeout = absl::Seconds(10);
  // How results are printed.
  OutputFormat format = OutputFormat::kTable;
  // "Now" for relative times in tables ("in 2h", "5m ago"). Not owned; must
  // outlive the AdminCommands.
  const Clock* clock = nullptr;
  // The stub's channel, if any (not owned; may be null, e.g. with a mock
  // stub). Lets an UNAVAILABLE / DEADLINE_EXCEEDED status be told apart:
  // never connected (unreachable) or a server-side answer.
  grpc::Channel* channel = nullptr;
  // Admin API bearer token sent as "authorization: Bearer <token>" on every
  // call ("" = none; the server then answers UNAUTHENTICATED).
  std::string token;
};

// How many items a list command fetches: pages are requested until `limit`
// items are collected (0 = no limit) or the server has no more.
struct ListOptions {
  size_t limit = 1000;
};

// What `bans show` asks for; exactly one of id / address.
struct BanSelector {
  uint64_t id = 0;
  std::string address;
};

// What `import` sends, and how to report it.
struct ImportOptions {
  // The request (text, format, lifetime, reason, scope, dry_run,
  // report_all_lines).
  v1::ImportRequest request;
  // File name for messages.
  std::string file_name;
};

// What `export` writes: to `output_path` (written to a temporary file and
// renamed into place once the last chunk arrived) or, if empty, to out.
struct ExportOptions {
  v1::ExportFormat format = v1::EXPORT_FORMAT_UNSPECIFIED;
  std::string output_path;
};

class AdminCommands {
 public:
  // `stub`, `out` and `err` are not owned and must outlive this object.
  // REQUIRES: context.clock != nullptr.
  AdminCommands(v1::AdminService::StubInterface& stub,
                const CommandContext& context, std::ostream& out,
                std::ostream& err);

  AdminCommands(const AdminCommands&) = delete;
  AdminCommands& operator=(const AdminCommands&) = delete;

  // `status`: server health and counts.
  int Status();

  // `bans list|show|add|remove`.
  int ListBans(v1::ListBansRequest request, const ListOptions& list);
  int ShowBan(const v1::GetBanRequest& request);
  int AddBan(const v1::AddBanRequest& request);
  int RemoveBan(const v1::RemoveBanRequest& request);

  // `ip ADDRESS`.
  int LookupIp(const v1::LookupIpRequest& request);

  // `allow list|add|remove`.
  int ListAllow(v1::ListAllowRequest request, const ListOptions& list);
  int AddAllow(const v1::AddAllowRequest& request);
  int RemoveAllow(const v1::RemoveAllowRequest& request);

  // `agents list|enroll|revoke`.
  int ListAgents(v1::ListAgentsRequest request, const ListOptions& list);
  int EnrollAgent(const v1::EnrollAgentRequest& request);
  int RevokeAgent(const v1::RevokeAgentRequest& request);
  int SetAgentProtection(const v1::SetAgentProtectionRequest& request);

  // `accounts list`.
  int ListAccounts(v1::ListAccountsRequest request, const ListOptions& list);

  // `alerts`: lists alerts.
  int ListAlerts(v1::ListAlertsRequest request, const ListOptions& list);
  // `alerts --watch`: prints each alert as it arrives (tables: one line per
  // alert; JSON: one object per line) until the server ends the stream.
  // Returns kExitOk if it ended with OK, else the mapped status.
  int WatchAlerts(const v1::WatchAlertsRequest& request);

  // `report`.
  int Report(const v1::ReportRequest& request);

  // `export`: writes the chunks' text verbatim; fails (exit 1, nothing
  // renamed into place) if the stream ends without its final chunk, chunks
  // arrive out of order, or their revision changes.
  int Export(const ExportOptions& options);

  // `import`: exit 0 if no line was rejected, kExitPartial otherwise.
  int Import(const ImportOptions& options);

  // `audit`.
  int ListAudit(v1::ListAuditRequest request, const ListOptions& list);

 private:
  // Prints "rampartctl: <what>: <reason>" for a failed call and returns the
  // exit code for `status` (kExitOk if status.ok()). See exit_codes.h.
  int ReportRpcError(std::string_view what, const grpc::Status& status);
  // Sets the per-call deadline (and, later, per-call credentials).
  void PrepareContext(grpc::ClientContext* context) const;
  // Adds the bearer token (PrepareContext does it too).
  void AddCredentials(grpc::ClientContext* context) const;
  absl::Time Now() const { return context_.clock->Now(); }
  // Writes a note such as "(first 1000 shown; use --limit)" to err.
  void NoteTruncated(bool truncated, const ListOptions& list) const;

  v1::AdminService::StubInterface& stub_;
  const CommandContext context_;
  std::ostream& out_;
  std::ostream& err_;
};

}  // namespace rampart::ctl
