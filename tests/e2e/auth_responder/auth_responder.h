#pragma once

// AuthResponder: a tiny stand-in for one Domino server's login surfaces, for
// the end-to-end estate test (tests/e2e). It speaks just enough SMTP (EHLO,
// AUTH LOGIN, AUTH PLAIN, QUIT), IMAP (CAPABILITY, LOGIN, LOGOUT), POP3
// (USER/PASS, QUIT), LDAP (simple BindRequest, UnbindRequest) and HTTP
// (Basic auth: 401/200) for Debian's hydra to work against it, checks each
// login against a fixed credential table and writes the console.log lines
// Domino would (ConsoleLog) with the real peer address.
//
// Every input is hostile: lines and LDAP messages are bounded, each
// connection has an overall deadline, and at most `max_connections` are
// served at once (further ones are closed immediately).
//
// Thread-safety: Create/Stop/ports from one owner; one thread accepts and
// one thread serves each connection.

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/event_types.h"
#include "tests/e2e/auth_responder/console_log.h"

namespace rampart::e2e {

struct ResponderOptions {
  // IPv4 or IPv6 address to bind every listener to.
  std::string address = "127.0.0.1";
  // Port per protocol; 0 = any free port, -1 = protocol disabled.
  int smtp_port = 25;
  int imap_port = 143;
  int pop3_port = 110;
  int ldap_port = 389;
  int http_port = 80;
  // user -> password. For LDAP the user is the bind DN.
  std::map<std::string, std::string> credentials;
  // Name in greetings.
  std::string hostname = "domino.example";
  // Also write SMTP connect/disconnect lines (family D).
  bool smtp_sessions = true;
  // Limits.
  absl::Duration connection_deadline = absl::Seconds(30);
  int max_connections = 64;
  size_t max_line_bytes = 2048;
};

class AuthResponder {
 public:
  // Binds all enabled listeners and starts serving. `log` and `clock` must
  // outlive the responder. Unavailable if a bind fails.
  static absl::StatusOr<std::unique_ptr<AuthResponder>> Start(
      const ResponderOptions& options, ConsoleLog& log);
  ~AuthResponder();  // Stop()
  AuthResponder(const AuthResponder&) = delete;
  AuthResponder& operator=(const AuthResponder&) = delete;

  // The bound port of `protocol`, or -1 if disabled.
  int port(Protocol protocol) const;
  // Closes the listeners, shuts down open connections and joins every
  // thread. Idempotent.
  void Stop();
  // Connections refused because max_connections were busy.
  int64_t rejected_connections() const { return rejected_.load(); }

 private:
  struct Listener {
    Protocol protocol;
    int fd;
    int port;
  };
  AuthResponder(const ResponderOptions& options, ConsoleLog& log)
      : options_(options), log_(log) {}
  void AcceptLoop();
  void Serve(Protocol protocol, int fd, std::string peer);

  const ResponderOptions options_;
  ConsoleLog& log_;
  std::vector<Listener> listeners_;
  int wake_[2] = {-1, -1};
  std::thread accept_thread_;
  std::atomic<int64_t> rejected_{0};

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int, std::thread> connections_ ABSL_GUARDED_BY(mu_);  // by fd
  std::vector<std::thread> finished_ ABSL_GUARDED_BY(mu_);
};

// Bounded decoding of one LDAP simple BindRequest message body (the bytes
// after the outer SEQUENCE header). Exposed for tests.
struct LdapBind {
  int64_t message_id = 0;
  bool unbind = false;  // an UnbindRequest (no reply, close)
  std::string name;
  std::string password;
};
absl::StatusOr<LdapBind> DecodeLdapMessage(std::string_view body);
// BindResponse for `message_id` with `result_code` (0 success, 49
// invalidCredentials), minimal encoding.
std::string EncodeLdapBindResponse(int64_t message_id, int result_code);

}  // namespace rampart::e2e
