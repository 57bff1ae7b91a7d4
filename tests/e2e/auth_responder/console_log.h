#pragma once

// ConsoleLog: appends the Domino console.log lines an authentication attempt
// produces, in the shapes ../shared/domino-log-format.md documents (families
// A, B, D and the unverified F), with one of three date styles. Test fixture
// for the end-to-end estate (tests/e2e); not part of any Rampart binary.
//
// Thread-safety: thread-safe; each attempt's lines are appended with one
// write(2) under a mutex, so lines of concurrent attempts never interleave.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "common/clock.h"
#include "common/event_types.h"

namespace rampart::e2e {

// The date formats the three "Domino hosts" of the estate use:
//   kDmy: "06.03.2024 10:15:32   MESSAGE"                  (DateOrder dmy)
//   kMdy: "[PID:00012-7F01] 03/06/2024 10:15:33 AM  MESSAGE" (DateOrder mdy,
//         12-hour clock with a DEBUG_THREADID prefix)
//   kYmd: "2024-03-06 10:15:32   MESSAGE"                  (DateOrder ymd)
enum class DateStyle { kDmy, kMdy, kYmd };

// "dmy", "mdy" or "ymd". InvalidArgument otherwise.
absl::StatusOr<DateStyle> ParseDateStyle(std::string_view text);

// The line prefix up to and including the spaces before the message.
std::string FormatLinePrefix(DateStyle style, absl::CivilSecond time, int pid);

// What one attempt makes Domino write (messages without the date prefix):
//   failure, every protocol: "<proto>: USER [IP] authentication failure
//     using internet password" (A); SMTP adds "SMTP Server: Authentication
//     failed for user USER ; connecting host IP" (B).
//   success: SMTP "SMTP Server: Authentication succeeded for user USER ;
//     connecting host IP", IMAP "IMAP Server: USER logged in from IP", POP3
//     "POP3 Server: USER logged in; connecting host IP" (F); LDAP and HTTP
//     successes are not written to console.log (HTTP's go to the domlog).
// `user` must already be sanitised (SanitizeUser).
std::vector<std::string> AttemptMessages(Protocol protocol,
                                         std::string_view user,
                                         std::string_view ip, bool success);

// The user name as Domino would print it: control bytes (< 0x20, 0x7f)
// dropped, at most `kMaxUserBytes`; everything else verbatim (spaces, '@',
// '[', ']', ';' and non-ASCII stay: the parser must cope).
inline constexpr size_t kMaxUserBytes = 200;
std::string SanitizeUser(std::string_view user);

class ConsoleLog {
 public:
  // Opens (creating, appending) `path`. Unavailable with errno text.
  static absl::StatusOr<std::unique_ptr<ConsoleLog>> Open(
      const std::string& path, DateStyle style, const Clock& clock);
  ~ConsoleLog();
  ConsoleLog(const ConsoleLog&) = delete;
  ConsoleLog& operator=(const ConsoleLog&) = delete;

  // Appends the lines of one attempt (AttemptMessages), stamped with the
  // clock's time in UTC. Returns the number of lines written.
  int Attempt(Protocol protocol, std::string_view user, std::string_view ip,
              bool success) ABSL_LOCKS_EXCLUDED(mu_);
  // SMTP session lines (family D): "SMTP Server: IP connected" and
  // "SMTP Server: IP disconnected. 0 message[s] received".
  void Session(std::string_view ip, bool connected) ABSL_LOCKS_EXCLUDED(mu_);

  // Attempts logged so far (failures and successes), for tests.
  int64_t attempts() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  ConsoleLog(int fd, DateStyle style, const Clock& clock)
      : fd_(fd), style_(style), clock_(clock) {}
  void Write(const std::vector<std::string>& messages) ABSL_LOCKS_EXCLUDED(mu_);

  const int fd_;
  const DateStyle style_;
  const Clock& clock_;
  mutable absl::Mutex mu_;
  int64_t attempts_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace rampart::e2e
