#pragma once

// DominoParser recognises the Domino console.log lines Rampart acts on
// (families A, A-lock, B, C, D, E and, behind a switch, F of
// docs/domino-log-format.md) and extracts kind, protocol, client IP, user and
// local time. See docs/parser.md for the grammar.
//
// Every input is hostile: the parser runs in time linear in the line length,
// uses no regular expressions and no heap allocation, never reads outside the
// line and never throws.
//
// Thread-safety: a DominoParser is not thread-safe (auto date-order detection
// learns from the lines it has seen); use one per log file.

#include <cstdint>
#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/civil_time.h"
#include "common/event_types.h"
#include "common/ip_address.h"

namespace rampart::agent {

// Order of the three numeric date fields, as set by notes.ini DateOrder.
enum class DateOrder : uint8_t { kAuto, kMdy, kDmy, kYmd };

// Parses "auto", "mdy", "dmy" or "ymd" (case-insensitive).
absl::StatusOr<DateOrder> ParseDateOrder(std::string_view text);
std::string_view DateOrderName(DateOrder order);

struct DominoParserOptions {
  // How to read dates whose order the line itself does not reveal. kAuto
  // learns from the first date with a field > 12 (or a 4-digit first field)
  // and until then guesses from the separator ('/' MDY, '.' and '-' DMY).
  // Dash dates are ambiguous: set the server's real order in production.
  DateOrder date_order = DateOrder::kAuto;
  // Family F (successful logins). Off by default: no verified public sample
  // of these lines exists.
  bool successes = false;
  // Family E (TLS handshake failures from scanners). On by default; the
  // correlator weighs them (zero by default).
  bool tls_failures = true;
  // Family D (connect/disconnect). On by default; context only.
  bool sessions = true;
};

// Which message family a recognised line belongs to.
enum class LineFamily : uint8_t {
  kInternetPassword,  // A and A-lock: "<proto>: <user> [<ip>]
                      // authentication..."
  kServerTask,        // B: "SMTP Server: Authentication failed for user ..."
  kPolicyReject,      // C
  kSession,           // D
  kTls,               // E
  kSuccess,           // F
};

// Why the address of a recognised line was not trusted (docs/parser.md,
// "The user name is hostile"). The address is read from the right, after
// Domino's fixed text; it can only be wrong if the line was cut after an
// attacker-written copy of that text. These shapes are what such a forgery
// needs, and no real account name has them, so the address is dropped
// (ip = nullopt) and the agent counts and logs the line instead of
// reporting it.
enum class Suspicion : uint8_t {
  kNone,
  // The user field is longer than kMaxTrustedUserBytes: room for a forged
  // tail before a cut.
  kLongUser,
  // The user field holds a control byte (NUL, ESC, CR, ...: < 0x20 except
  // TAB, or 0x7F).
  kControlInUser,
  // The user field holds the text the parser anchors the address on
  // ("; connecting host", the internet-password trailer, "logged in from").
  kMarkerInUser,
  // More than kMaxTrailingBlanks blank bytes end the line: padding that
  // would push a forged tail to a cut point.
  kPadded,
};
inline constexpr int kSuspicionCount = 5;
// "none", "long_user", "control_in_user", "marker_in_user", "padded"
// (metric label values).
std::string_view SuspicionName(Suspicion suspicion);

// Longest user field whose line's address is trusted. Real account names
// are far shorter; the agent also reports at most this many bytes.
inline constexpr size_t kMaxTrustedUserBytes = 256;
// Most blank bytes (space, tab, CR, ...) a trusted line may end with; a
// CRLF line with a stray space or two stays trusted.
inline constexpr size_t kMaxTrailingBlanks = 4;

// One recognised line. `user` is a view into the parsed line and is valid only
// as long as the line's bytes are.
struct ParsedLine {
  EventKind kind = EventKind::kAuthFailure;
  Protocol protocol = Protocol::kUnknown;
  LineFamily family = LineFamily::kInternetPassword;
  // nullopt when the line carries no valid address (masked, empty, garbage):
  // the event is then non-actionable and must never be banned.
  std::optional<IpAddress> ip;
  // Attacker-controlled bytes, verbatim (not validated as UTF-8). Empty for
  // C/D/E and for IP-based lockouts ("IP Address" in the user slot).
  std::string_view user;
  // Set (and ip cleared) when the line has a shape only a forgery needs.
  Suspicion suspicion = Suspicion::kNone;
  // Local wall-clock time of the line (Domino writes no zone). Meaningful
  // only if has_time.
  bool has_time = false;
  absl::CivilSecond time;
};

class DominoParser {
 public:
  explicit DominoParser(const DominoParserOptions& options);

  // Parses one line without its trailing '\n' (trailing blanks, e.g. the
  // '\r' of CRLF, are ignored; more than kMaxTrailingBlanks make the line
  // suspect). Returns true and fills *out if the line is one of the enabled
  // families (out->ip cleared and out->suspicion set if the user field could
  // have forged the address); returns false (leaving *out unspecified)
  // otherwise. A line must be complete: callers drop lines their reader cut
  // (LineReader/Tailer `truncated`) instead of parsing them.
  // Linear in line.size(); never allocates.
  bool Parse(std::string_view line, ParsedLine* out);

  // The date order learned so far in kAuto mode (kAuto if none yet), or the
  // configured one.
  DateOrder effective_date_order() const { return order_; }

 private:
  // Parses "[pid:tid] DATE TIME[ AM|PM]   " at the start of *line, advancing
  // *line past it. Fills *out->time when the timestamp is valid.
  void ParseHeader(std::string_view* line, ParsedLine* out);
  bool ParseMessage(std::string_view msg, ParsedLine* out) const;

  const DominoParserOptions options_;
  DateOrder order_;
};

}  // namespace rampart::agent
