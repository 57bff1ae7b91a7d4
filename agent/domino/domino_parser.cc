#include "agent/domino/domino_parser.h"

#include "absl/strings/str_format.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

using std::string_view;

// Bounds on the bracketed thread/task ids Domino prints; anything longer is
// not such an id, which keeps hostile lines cheap.
constexpr size_t kMaxPrefixId = 96;

constexpr string_view kInetTrailer =
    " authentication failure using internet password";
constexpr string_view kLockSuffix = ": User is locked out";
constexpr string_view kIpLockoutUser = "IP Address";
// Markers end without their trailing space: trailing blanks are trimmed from
// the line, and an empty host must not let a marker inside the user win.
constexpr string_view kConnectingHost = " ; connecting host";
constexpr string_view kAuthFailedForUser = "Authentication failed for user ";
constexpr string_view kAuthSucceededForUser =
    "Authentication succeeded for user ";
constexpr string_view kConnectionFrom = "Connection from [";
constexpr string_view kRejectedForPolicy = " rejected for policy reasons";
constexpr string_view kTlsConnection = "TLS/SSL connection ";
constexpr string_view kLoggedInFrom = " logged in from";
constexpr string_view kLoggedInConnecting = " logged in; connecting host";

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Texts the address is anchored on; a user field holding one of them could
// have forged the address (if the line was cut after it).
constexpr string_view kAnchors[] = {
    "; connecting host", " authentication failure using internet password",
    " logged in from"};

// A control byte other than TAB (which ends no line and moves no text).
bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

// Checks the attacker-controlled user field of a line whose address was
// read after it; clears the address of a suspect line.
void CheckUser(ParsedLine* out) {
  const string_view user = out->user;
  Suspicion why = Suspicion::kNone;
  if (user.size() > kMaxTrustedUserBytes) {
    why = Suspicion::kLongUser;
  } else {
    for (char c : user) {
      if (IsControl(c)) {
        why = Suspicion::kControlInUser;
        break;
      }
    }
    if (why == Suspicion::kNone) {
      for (string_view a : kAnchors) {
        if (user.find(a) != string_view::npos) {
          why = Suspicion::kMarkerInUser;
          break;
        }
      }
    }
  }
  if (why != Suspicion::kNone) {
    out->suspicion = why;
    out->ip = std::nullopt;
  }
}

// Reads 1..max_digits decimal digits at s[*pos]; returns the digit count.
int ReadNumber(string_view s, size_t* pos, int max_digits, int* value) {
  int n = 0;
  int v = 0;
  while (*pos < s.size() && n < max_digits && IsDigit(s[*pos])) {
    v = v * 10 + (s[*pos] - '0');
    ++*pos;
    ++n;
  }
  *value = v;
  return n;
}

size_t SkipSpaces(string_view s, size_t pos) {
  while (pos < s.size() && s[pos] == ' ') {
    ++pos;
  }
  return pos;
}

bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30,
                                  31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// Protocol named by the 4-byte tag at the start of `s` in the given case
// ("smtp"/"SMTP"), or kUnknown.
Protocol ProtocolTag(string_view s, bool upper) {
  if (s.size() < 4) {
    return Protocol::kUnknown;
  }
  const string_view tag = s.substr(0, 4);
  static constexpr struct {
    string_view lower, upper;
    Protocol protocol;
  } kTags[] = {{"smtp", "SMTP", Protocol::kSmtp},
               {"imap", "IMAP", Protocol::kImap},
               {"pop3", "POP3", Protocol::kPop3},
               {"ldap", "LDAP", Protocol::kLdap},
               {"http", "HTTP", Protocol::kHttp}};
  for (const auto& t : kTags) {
    if (tag == (upper ? t.upper : t.lower)) {
      return t.protocol;
    }
  }
  return Protocol::kUnknown;
}

// Parses the host part of a task line: "IP", "[IP]", "name (IP)" or
// "name [IP]". Returns nullopt if no valid address is there.
std::optional<IpAddress> ParseHost(string_view h) {
  h = StripWhitespace(h);
  if (!h.empty() && (h.back() == ')' || h.back() == ']')) {
    const char open = h.back() == ')' ? '(' : '[';
    const size_t o = h.rfind(open);
    if (o == string_view::npos) {
      return std::nullopt;
    }
    return IpAddress::Parse(h.substr(o + 1, h.size() - o - 2));
  }
  return IpAddress::Parse(h);
}

// "<user><marker><host>": the user is everything before the LAST marker, so
// a user name that itself contains the marker cannot spoof the address.
void SplitUserHost(string_view rest, string_view marker, ParsedLine* out) {
  const size_t m = rest.rfind(marker);
  if (m != string_view::npos) {
    out->user = rest.substr(0, m);
    out->ip = ParseHost(rest.substr(m + marker.size()));
    CheckUser(out);
    return;
  }
  // Empty user written with a single space: "for user ; connecting host X".
  const string_view bare = marker.substr(1);  // "; connecting host"
  if (rest.starts_with(bare)) {
    out->user = {};
    out->ip = ParseHost(rest.substr(bare.size()));
    return;
  }
  out->user = rest;  // recognised, but no address: non-actionable
  out->ip = std::nullopt;
  CheckUser(out);
}

// Family A / A-lock. `body` follows "<proto>: ".
bool ParseInternetPassword(string_view body, Protocol protocol,
                           ParsedLine* out) {
  EventKind kind = EventKind::kAuthFailure;
  if (body.ends_with(kLockSuffix)) {
    body.remove_suffix(kLockSuffix.size());
    kind = EventKind::kLockout;
  }
  if (!body.ends_with(kInetTrailer)) {
    return false;
  }
  body.remove_suffix(kInetTrailer.size());
  out->ip = std::nullopt;
  // The address is the last bracketed field before the trailer.
  if (!body.empty() && body.back() == ']') {
    if (const size_t open = body.rfind('['); open != string_view::npos) {
      out->ip = IpAddress::Parse(body.substr(open + 1, body.size() - open - 2));
      body = body.substr(0, open);
      if (!body.empty() && body.back() == ' ') {
        body.remove_suffix(1);
      }
    }
  }
  if (kind == EventKind::kLockout && body == kIpLockoutUser) {
    body = {};  // Domino 12 IP-based lockout: no account involved
  }
  out->kind = kind;
  out->protocol = protocol;
  out->family = LineFamily::kInternetPassword;
  out->user = body;
  CheckUser(out);
  return true;
}

// Family D: "IP connected", "name (IP) connected", "IP disconnected. ...".
bool ParseSession(string_view r, Protocol protocol, ParsedLine* out) {
  const size_t sp = r.find(' ');
  if (sp == 0 || sp == string_view::npos) {
    return false;
  }
  string_view ip_text = r.substr(0, sp);
  string_view rest = r.substr(sp);
  if (rest.starts_with(" (")) {
    const size_t close = rest.find(')');
    if (close == string_view::npos) {
      return false;
    }
    ip_text = rest.substr(2, close - 2);
    rest = rest.substr(close + 1);
  }
  constexpr string_view kConnected = " connected";
  constexpr string_view kDisconnected = " disconnected";
  if (rest == kConnected) {
    out->kind = EventKind::kConnect;
  } else if (rest.starts_with(kDisconnected) &&
             (rest.size() == kDisconnected.size() ||
              rest[kDisconnected.size()] == '.' ||
              rest[kDisconnected.size()] == ' ')) {
    out->kind = EventKind::kDisconnect;
  } else {
    return false;
  }
  out->ip = IpAddress::Parse(ip_text);
  out->protocol = protocol;
  out->family = LineFamily::kSession;
  out->user = {};
  return true;
}

// Reads "ADDR(PORT)" at the start of *s, advancing past it.
bool ReadAddrPort(string_view* s, string_view* addr, int* port) {
  const size_t open = s->find('(');
  if (open == string_view::npos || open == 0 || open > 64) {
    return false;
  }
  *addr = s->substr(0, open);
  size_t pos = open + 1;
  if (ReadNumber(*s, &pos, 5, port) == 0 || pos >= s->size() ||
      (*s)[pos] != ')') {
    return false;
  }
  s->remove_prefix(pos + 1);
  return true;
}

// Family E: "TLS/SSL connection SRC(port) -> DST(port) failed with ...".
bool ParseTls(string_view s, ParsedLine* out) {
  string_view src, dst;
  int src_port = 0, dst_port = 0;
  if (!ReadAddrPort(&s, &src, &src_port) || !ConsumePrefix(&s, " -> ") ||
      !ReadAddrPort(&s, &dst, &dst_port) || !s.starts_with(" failed")) {
    return false;
  }
  if (src.size() >= 2 && src.front() == '[' && src.back() == ']') {
    src = src.substr(1, src.size() - 2);
  }
  out->kind = EventKind::kTlsFailure;
  out->protocol = ProtocolForPort(dst_port);
  out->family = LineFamily::kTls;
  out->ip = IpAddress::Parse(src);
  out->user = {};
  return true;
}

}  // namespace

absl::StatusOr<DateOrder> ParseDateOrder(std::string_view text) {
  const std::string lower = AsciiLower(text);
  if (lower == "auto") return DateOrder::kAuto;
  if (lower == "mdy") return DateOrder::kMdy;
  if (lower == "dmy") return DateOrder::kDmy;
  if (lower == "ymd") return DateOrder::kYmd;
  return absl::InvalidArgumentError(absl::StrFormat(
      "invalid date order \"%s\": expected one of auto, mdy, dmy, ymd",
      Abbreviate(text, 40)));
}

std::string_view DateOrderName(DateOrder order) {
  switch (order) {
    case DateOrder::kAuto:
      return "auto";
    case DateOrder::kMdy:
      return "mdy";
    case DateOrder::kDmy:
      return "dmy";
    case DateOrder::kYmd:
      return "ymd";
  }
  return "auto";
}

DominoParser::DominoParser(const DominoParserOptions& options)
    : options_(options), order_(options.date_order) {}

std::string_view SuspicionName(Suspicion suspicion) {
  switch (suspicion) {
    case Suspicion::kNone:
      return "none";
    case Suspicion::kLongUser:
      return "long_user";
    case Suspicion::kControlInUser:
      return "control_in_user";
    case Suspicion::kMarkerInUser:
      return "marker_in_user";
    case Suspicion::kPadded:
      return "padded";
  }
  return "none";
}

bool DominoParser::Parse(std::string_view line, ParsedLine* out) {
  // Every blank ParseHost would strip counts, so padding cannot hide in
  // '\v' or '\f' either.
  size_t blanks = 0;
  while (!line.empty() && IsAsciiSpace(line.back())) {
    line.remove_suffix(1);
    ++blanks;
  }
  out->has_time = false;
  out->suspicion = Suspicion::kNone;
  ParseHeader(&line, out);
  if (!ParseMessage(line, out)) {
    return false;
  }
  const bool has_user = out->family == LineFamily::kInternetPassword ||
                        out->family == LineFamily::kServerTask ||
                        out->family == LineFamily::kSuccess;
  if (has_user && blanks > kMaxTrailingBlanks &&
      out->suspicion == Suspicion::kNone) {
    out->suspicion = Suspicion::kPadded;
    out->ip = std::nullopt;
  }
  return true;
}

void DominoParser::ParseHeader(std::string_view* line, ParsedLine* out) {
  const string_view s = *line;
  size_t p = 0;
  // Optional DEBUG_THREADID prefix: "[pid:thread-tid] ".
  if (!s.empty() && s[0] == '[') {
    const size_t close = s.substr(0, kMaxPrefixId).find(']');
    if (close != string_view::npos) {
      p = SkipSpaces(s, close + 1);
    }
  }
  *line = s.substr(p);

  // DATE: three numeric fields separated by one of / . -
  size_t q = p;
  int f1 = 0, f2 = 0, f3 = 0;
  const int n1 = ReadNumber(s, &q, 4, &f1);
  if (n1 == 0 || q >= s.size()) {
    return;
  }
  const char sep = s[q];
  if (sep != '/' && sep != '.' && sep != '-') {
    return;
  }
  ++q;
  const int n2 = ReadNumber(s, &q, 2, &f2);
  if (n2 == 0 || q >= s.size() || s[q] != sep) {
    return;
  }
  ++q;
  const int n3 = ReadNumber(s, &q, 4, &f3);
  if (n3 == 0 || q >= s.size() || s[q] != ' ') {
    return;
  }
  q = SkipSpaces(s, q);
  // TIME: H[H]:MM:SS[.cc][ AM|PM]
  int hh = 0, mm = 0, ss = 0, frac = 0;
  if (ReadNumber(s, &q, 2, &hh) == 0 || q >= s.size() || s[q] != ':') {
    return;
  }
  ++q;
  if (ReadNumber(s, &q, 2, &mm) != 2 || q >= s.size() || s[q] != ':') {
    return;
  }
  ++q;
  if (ReadNumber(s, &q, 2, &ss) != 2) {
    return;
  }
  if (q < s.size() && (s[q] == '.' || s[q] == ',') && q + 1 < s.size() &&
      IsDigit(s[q + 1])) {
    ++q;
    ReadNumber(s, &q, 3, &frac);
  }
  if (q < s.size() && s[q] != ' ') {
    return;  // "10:15:32x" is not a timestamp
  }
  size_t msg = SkipSpaces(s, q);
  int ampm = 0;  // 1 = AM, 2 = PM
  if (msg + 2 <= s.size() && (msg + 2 == s.size() || s[msg + 2] == ' ')) {
    const char a = static_cast<char>(s[msg] & ~0x20);
    const char m = static_cast<char>(s[msg + 1] & ~0x20);
    if ((a == 'A' || a == 'P') && m == 'M') {
      ampm = a == 'A' ? 1 : 2;
      msg = SkipSpaces(s, msg + 2);
    }
  }
  *line = s.substr(msg);  // the header is lexically complete

  // Semantics: resolve the date order, validate ranges.
  int year, month, day;
  if (n1 >= 3) {  // "2024-03-06": year first is unambiguous
    if (n3 > 2) {
      return;
    }
    year = f1;
    month = f2;
    day = f3;
  } else {
    if (n3 != 2 && n3 != 4) {
      return;
    }
    year = n3 == 4 ? f3 : (f3 < 70 ? 2000 + f3 : 1900 + f3);
    DateOrder order = options_.date_order;
    if (order != DateOrder::kMdy && order != DateOrder::kDmy) {
      // kAuto (or kYmd contradicted by the line): a field > 12 decides and
      // is remembered; otherwise use what was learned, else the separator.
      if (f1 > 12 && f2 <= 12) {
        order_ = DateOrder::kDmy;
      } else if (f2 > 12 && f1 <= 12) {
        order_ = DateOrder::kMdy;
      }
      order = order_;
      if (order != DateOrder::kMdy && order != DateOrder::kDmy) {
        order = sep == '/' ? DateOrder::kMdy : DateOrder::kDmy;
      }
    }
    month = order == DateOrder::kMdy ? f1 : f2;
    day = order == DateOrder::kMdy ? f2 : f1;
  }
  if (month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month) ||
      year < 1970 || year > 2199) {
    return;
  }
  if (ampm != 0) {
    if (hh < 1 || hh > 12) {
      return;
    }
    hh = (hh % 12) + (ampm == 2 ? 12 : 0);
  }
  if (hh > 23 || mm > 59 || ss > 60) {
    return;
  }
  if (ss == 60) {
    ss = 59;  // leap second: keep it in the same minute
  }
  out->has_time = true;
  out->time = absl::CivilSecond(year, month, day, hh, mm, ss);
}

bool DominoParser::ParseMessage(std::string_view msg, ParsedLine* out) const {
  if (msg.size() < 6) {
    return false;
  }
  const char c0 = msg[0];
  // Family A: lower-case "<proto>: ".
  if (c0 >= 'a' && c0 <= 'z') {
    if (msg[4] != ':' || msg[5] != ' ') {
      return false;
    }
    const Protocol protocol = ProtocolTag(msg, /*upper=*/false);
    if (protocol == Protocol::kUnknown) {
      return false;
    }
    return ParseInternetPassword(msg.substr(6), protocol, out);
  }
  if (c0 == 'T') {
    return options_.tls_failures && msg.starts_with(kTlsConnection) &&
           ParseTls(msg.substr(kTlsConnection.size()), out);
  }
  // Families B, C, D, F: "<PROTO> Server: ..." or "<PROTO> Server [id] ...".
  if (msg.size() < 13 || msg.substr(4, 7) != " Server") {
    return false;
  }
  const Protocol protocol = ProtocolTag(msg, /*upper=*/true);
  if (protocol == Protocol::kUnknown || protocol == Protocol::kHttp) {
    return false;
  }
  string_view r = msg.substr(11);
  if (r.starts_with(": ")) {
    r.remove_prefix(2);
  } else if (r.starts_with(" [")) {
    const size_t close = r.substr(0, kMaxPrefixId).find(']');
    if (close == string_view::npos) {
      return false;
    }
    r.remove_prefix(close + 1);
    ConsumePrefix(&r, ":");
    r = r.substr(SkipSpaces(r, 0));
  } else {
    return false;
  }
  out->protocol = protocol;
  if (ConsumePrefix(&r, kAuthFailedForUser)) {
    out->kind = EventKind::kAuthFailure;
    out->family = LineFamily::kServerTask;
    SplitUserHost(r, kConnectingHost, out);
    return true;
  }
  if (ConsumePrefix(&r, kConnectionFrom)) {
    const size_t close = r.find(']');
    if (close == string_view::npos ||
        !r.substr(close + 1).starts_with(kRejectedForPolicy)) {
      return false;
    }
    out->kind = EventKind::kPolicyReject;
    out->family = LineFamily::kPolicyReject;
    out->ip = IpAddress::Parse(r.substr(0, close));
    out->user = {};
    return true;
  }
  if (options_.successes) {
    if (ConsumePrefix(&r, kAuthSucceededForUser)) {
      out->kind = EventKind::kAuthSuccess;
      out->family = LineFamily::kSuccess;
      SplitUserHost(r, kConnectingHost, out);
      return true;
    }
    const string_view marker = protocol == Protocol::kImap ? kLoggedInFrom
                               : protocol == Protocol::kPop3
                                   ? kLoggedInConnecting
                                   : string_view();
    if (!marker.empty()) {
      if (const size_t m = r.rfind(marker); m != string_view::npos) {
        out->kind = EventKind::kAuthSuccess;
        out->family = LineFamily::kSuccess;
        out->user = r.substr(0, m);
        out->ip = ParseHost(r.substr(m + marker.size()));
        CheckUser(out);
        return true;
      }
    }
  }
  return options_.sessions && ParseSession(r, protocol, out);
}

}  // namespace rampart::agent
