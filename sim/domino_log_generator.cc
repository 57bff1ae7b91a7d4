#include "sim/domino_log_generator.h"

#include <algorithm>
#include <queue>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/event_types.h"
#include "common/ip_address.h"
#include "common/json_writer.h"
#include "sim/rng.h"

namespace rampart::sim {
namespace {

using std::string_view;

// ---------------------------------------------------------------------------
// Constants and vocabularies
// ---------------------------------------------------------------------------

constexpr size_t kFlushBytes = size_t{1} << 20;
constexpr int64_t kNanosPerSecond = 1'000'000'000;
constexpr int64_t kNanosPerCenti = 10'000'000;
// Events later than this (about 100 years) are "never".
constexpr int64_t kFarFutureNanos =
    int64_t{100} * 366 * 86400 * kNanosPerSecond;
constexpr size_t kPairWindow = 64;
constexpr int kMaxAttackers = 100000;

// The server writing the log (destination of TLS lines).
constexpr string_view kServerIp = "192.0.2.1";
// Embedded in hostile user names; never the address of a line.
constexpr string_view kDecoyIp = "203.0.113.99";

constexpr string_view kAttackUsers[] = {
    "admin",     "administrator", "info",       "test",      "postmaster",
    "webmaster", "sales",         "support",    "office",    "user",
    "contact",   "mail",          "root",       "guest",     "noreply",
    "scanner",   "backup",        "marketing",  "hr",        "finance",
    "service",   "demo",          "oracle",     "smtp",      "abuse",
    "billing",   "newsletter",    "helpdesk",   "it",        "jobs",
    "kontakt",   "buchhaltung",   "verwaltung", "empfang",   "notes",
    "domino",    "lotus",         "sysadmin",   "reception", "ftp"};
constexpr string_view kFirstNames[] = {
    "John",   "Jane",   "Max",         "Anna",       "Peter",   "Maria",
    "Thomas", "Julia",  "Michael",     "Sabine",     "Daniel",  "Laura",
    "Stefan", "Petra",  "Martin",      "Claudia",    "Brian",   "Karin",
    "Frank",  "Monika", "J\u00fcrgen", "Bj\u00f6rn", "Zo\u00eb"};
constexpr string_view kLastNames[] = {
    "Doe",         "Mustermann", "Schmidt", "Meyer",    "Weber",
    "Wagner",      "Becker",     "Schulz",  "Hoffmann", "Koch",
    "Richter",     "Klein",      "Wolf",    "Neumann",  "Braun",
    "M\u00fcller", "Smith",      "Brown",   "Miller",   "Davis"};
constexpr string_view kPeerDomains[] = {"example.net",      "example.org",
                                        "mail.example.com", "partner.example",
                                        "customer.example", "lists.example.org",
                                        "bank.example",     "news.example.net"};
constexpr string_view kAttackerHostNames[] = {
    "mail.example.net", "unknown.example.org", "host.example.net",
    "dsl.example.com",  "vps.example.org",     "static.example.net"};
constexpr string_view kDatabases[] = {
    "names.nsf",         "log.nsf",     "mail.box",     "admin4.nsf",
    "events4.nsf",       "catalog.nsf", "apps/crm.nsf", "apps/hr.nsf",
    "apps/helpdesk.nsf", "statrep.nsf"};
constexpr string_view kAgents[] = {"Nightly cleanup",  "Out Of Office",
                                   "Archive mails",    "SendReminders",
                                   "ImportCSV",        "(Scheduled) Sync users",
                                   "Update statistics"};
constexpr string_view kReleases[] = {"Release 12.0.2FP2", "Release 14.0.0FP1",
                                     "Release 12.0.1", "Release 11.0.1FP6"};
constexpr string_view kTlsReasons[] = {"no supported ciphers",
                                       "rejected SSLv3 connection",
                                       "rejected unknown record type"};
constexpr string_view kHttpPaths[] = {"/favicon.ico",
                                      "/robots.txt",
                                      "/wp-login.php",
                                      "/.env",
                                      "/names.nsf?OpenDatabase",
                                      "/mail/jdoe.nsf/($Inbox)?OpenView",
                                      "/webmail.nsf",
                                      "/homepage.nsf",
                                      "/admin.php"};
constexpr string_view kHexCodes[] = {"07:92: 0A:0A", "02:4B: 13:1F",
                                     "0F:1C: 00:06", "01:A0: 0B:02"};
constexpr string_view kLongUserChars =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 @[];.-_";

constexpr string_view kInetTrailer =
    " authentication failure using internet password";
constexpr string_view kLockSuffix = ": User is locked out";
constexpr string_view kConnectingHost = " ; connecting host ";

template <typename T, size_t N>
const T& Pick(Rng& rng, const T (&items)[N]) {
  return items[rng.Below(static_cast<uint32_t>(N))];
}

template <typename T>
const T& Pick(Rng& rng, const std::vector<T>& items) {
  return items[rng.Below(static_cast<uint32_t>(items.size()))];
}

void AppendUint(std::string* out, uint64_t v) {
  char buf[20];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) {
    out->push_back(buf[--n]);
  }
}

void AppendPadded(std::string* out, uint64_t v, int width, char pad = '0') {
  char buf[20];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  for (int i = n; i < width; ++i) {
    out->push_back(pad);
  }
  while (n > 0) {
    out->push_back(buf[--n]);
  }
}

void AppendHex(std::string* out, uint64_t v, int width, bool upper = true) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  for (int shift = (width - 1) * 4; shift >= 0; shift -= 4) {
    out->push_back(digits[(v >> shift) & 0xF]);
  }
}

// Saturating "now + seconds" in nanoseconds.
int64_t After(int64_t now, double seconds) {
  if (!(seconds > 0.0)) {
    return now;
  }
  const double limit = static_cast<double>(kFarFutureNanos - now) /
                       static_cast<double>(kNanosPerSecond);
  if (seconds >= limit) {
    return kFarFutureNanos;
  }
  return now + static_cast<int64_t>(seconds * 1e9);
}

// ---------------------------------------------------------------------------
// Hosts, attackers and tasks
// ---------------------------------------------------------------------------

enum class Role : uint8_t { kAttacker, kScanner, kLegit };
enum class Style : uint8_t { kNone, kBurst, kSlow, kSpray };

string_view RoleName(Role role) {
  switch (role) {
    case Role::kAttacker:
      return "attacker";
    case Role::kScanner:
      return "scanner";
    case Role::kLegit:
      return "legit";
  }
  return "";
}

string_view StyleName(Style style) {
  switch (style) {
    case Style::kNone:
      return "";
    case Style::kBurst:
      return "burst";
    case Style::kSlow:
      return "slow";
    case Style::kSpray:
      return "spray";
  }
  return "";
}

struct Host {
  std::string canonical;
  bool v6 = false;
  std::array<uint16_t, 8> groups{};  // IPv6 only
  Role role = Role::kLegit;
  Style style = Style::kNone;
  // Per-address summary.
  uint64_t failure_lines = 0;
  uint64_t attempts = 0;
  uint64_t lockouts = 0;
  uint64_t policy_rejects = 0;
  uint64_t tls_failures = 0;
  uint64_t connects = 0;
  uint64_t disconnects = 0;
  uint64_t successes = 0;
  int64_t first_sec = -1;
  int64_t last_sec = -1;
};

struct Attacker {
  int host = 0;
  Style style = Style::kBurst;
  Protocol primary = Protocol::kSmtp;
  double gap_s = 1.0;      // slow/spray: mean gap; burst: mean gap in burst
  double idle_s = 60.0;    // burst: mean pause between bursts
  double burst_mean = 20;  // burst: mean attempts per burst
  int64_t burst_left = 0;  // burst: attempts left in the current burst
  uint32_t user = 0;       // index into kAttackUsers
  int64_t user_left = 0;   // burst: attempts left on the current user
};

// Domino tasks, each with its own process id in the thread-id prefix.
enum class Task : uint8_t {
  kServer,
  kSmtp,
  kImap,
  kPop3,
  kLdap,
  kHttp,
  kRouter,
  kAmgr,
  kReplica,
  kUpdate,
};
constexpr int kTaskCount = 10;

Task TaskFor(Protocol p) {
  switch (p) {
    case Protocol::kSmtp:
      return Task::kSmtp;
    case Protocol::kImap:
      return Task::kImap;
    case Protocol::kPop3:
      return Task::kPop3;
    case Protocol::kLdap:
      return Task::kLdap;
    case Protocol::kHttp:
      return Task::kHttp;
    case Protocol::kUnknown:
      break;
  }
  return Task::kServer;
}

string_view UpperProtocol(Protocol p) {
  switch (p) {
    case Protocol::kSmtp:
      return "SMTP";
    case Protocol::kImap:
      return "IMAP";
    case Protocol::kPop3:
      return "POP3";
    case Protocol::kLdap:
      return "LDAP";
    case Protocol::kHttp:
      return "HTTP";
    case Protocol::kUnknown:
      break;
  }
  return "";
}

// How an address is written in one line.
enum class IpForm : uint8_t {
  kCanonical,
  kMapped,     // IPv4 as ::ffff:a.b.c.d
  kUpperFull,  // IPv6, eight upper-case groups, no compression
  kZone,       // IPv6 with "%eth0"
};

// What the parser makes of a user field that could have forged the address
// (agent/domino/domino_parser.h, Suspicion): "" if it is trusted, else the
// reason; such a line's truth has ip "" and "suspect":"<reason>".
string_view SuspicionOf(string_view user) {
  if (user.size() > 256) {
    return "long_user";
  }
  for (char c : user) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) {
      return "control_in_user";
    }
  }
  for (string_view anchor :
       {string_view("; connecting host"),
        string_view(" authentication failure using internet password"),
        string_view(" logged in from")}) {
    if (user.find(anchor) != string_view::npos) {
      return "marker_in_user";
    }
  }
  return "";
}

// A masked or invalid address in a failure line (truth ip "").
enum class Mask : uint8_t { kNone, kXs, kInvalid, kEmpty };

// ---------------------------------------------------------------------------
// The pairing rule, mirrored so that the truth's "dedup" is exact
// ---------------------------------------------------------------------------

// Mirrors the A+B pairing rule of the `parse` command: a recognised A/A-lock
// or B line with a timestamp is the second line of a pair if an earlier line
// of the other family with the same ip, user, protocol and second is still
// unpaired among the previous kPairWindow A/B lines (the most recent one
// pairs). Only A/B lines are observed.
class PairTracker {
 public:
  struct Key {
    bool task_family;  // B (true) or A/A-lock (false)
    Protocol protocol;
    string_view ip;  // canonical, "" when missing
    int64_t sec;
    string_view user;
  };

  // True if Observe(key) would return true.
  bool WouldPair(const Key& key) const { return Find(key) >= 0; }

  // Records the line; returns true if it is the second line of a pair.
  bool Observe(const Key& key) {
    const int match = Find(key);
    if (match >= 0) {
      ring_[static_cast<size_t>(match)].paired = true;
    }
    Entry& slot = ring_[next_];
    next_ = (next_ + 1) % kPairWindow;
    slot.used = true;
    slot.paired = match >= 0;
    slot.task_family = key.task_family;
    slot.protocol = key.protocol;
    slot.sec = key.sec;
    slot.ip.assign(key.ip.data(), key.ip.size());
    slot.user.assign(key.user.data(), key.user.size());
    return match >= 0;
  }

 private:
  struct Entry {
    bool used = false;
    bool paired = false;
    bool task_family = false;
    Protocol protocol = Protocol::kUnknown;
    int64_t sec = 0;
    std::string ip;
    std::string user;
  };

  int Find(const Key& key) const {
    for (size_t i = 1; i <= kPairWindow; ++i) {
      const size_t idx = (next_ + kPairWindow - i) % kPairWindow;
      const Entry& e = ring_[idx];
      if (!e.used) {
        break;
      }
      if (e.paired || e.task_family == key.task_family ||
          e.protocol != key.protocol || e.sec != key.sec || e.ip != key.ip ||
          e.user != key.user) {
        continue;
      }
      return static_cast<int>(idx);
    }
    return -1;
  }

  std::array<Entry, kPairWindow> ring_;
  size_t next_ = 0;
};

// ---------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------

// Noise categories, drawn per noise event by weight.
enum class Noise : uint8_t {
  kSmtpConnect,
  kSmtpDisconnect,
  kSmtpReceived,
  kRouterDelivered,
  kRouterTransfer,
  kSessionOpened,
  kSessionClosed,
  kImapSession,
  kImapLoggedOut,
  kPop3Session,
  kHttpWeb,
  kAmgr,
  kReplica,
  kUpdate,
  kTls,
  kPolicy,
  kHexCode,
  kLegitTypo,
  kRestart,
  kSmtpSuccess,
  kImapLogin,
  kPop3Login,
};

struct NoiseWeight {
  Noise noise;
  uint32_t weight;  // per 100000
  bool success;     // family F: only with options.successes
};

constexpr NoiseWeight kNoiseWeights[] = {
    {Noise::kSmtpConnect, 15000, false},
    {Noise::kSmtpDisconnect, 14000, false},
    {Noise::kSmtpReceived, 8000, false},
    {Noise::kRouterDelivered, 12000, false},
    {Noise::kRouterTransfer, 6000, false},
    {Noise::kSessionOpened, 5000, false},
    {Noise::kSessionClosed, 5000, false},
    {Noise::kImapSession, 5000, false},
    {Noise::kImapLoggedOut, 1500, false},
    {Noise::kPop3Session, 2000, false},
    {Noise::kHttpWeb, 5000, false},
    {Noise::kAmgr, 3000, false},
    {Noise::kReplica, 3000, false},
    {Noise::kUpdate, 2000, false},
    {Noise::kTls, 600, false},
    {Noise::kPolicy, 400, false},
    {Noise::kHexCode, 300, false},
    {Noise::kLegitTypo, 400, false},
    {Noise::kRestart, 3, false},
    {Noise::kSmtpSuccess, 1500, true},
    {Noise::kImapLogin, 2000, true},
    {Noise::kPop3Login, 800, true},
};

struct ProtocolWeight {
  Protocol protocol;
  uint32_t weight;
};
constexpr ProtocolWeight kAttackProtocols[] = {{Protocol::kSmtp, 45},
                                               {Protocol::kImap, 15},
                                               {Protocol::kPop3, 10},
                                               {Protocol::kHttp, 20},
                                               {Protocol::kLdap, 10}};
constexpr ProtocolWeight kLegitProtocols[] = {{Protocol::kSmtp, 35},
                                              {Protocol::kImap, 25},
                                              {Protocol::kPop3, 10},
                                              {Protocol::kHttp, 25},
                                              {Protocol::kLdap, 5}};

template <size_t N>
Protocol PickProtocol(Rng& rng, const ProtocolWeight (&table)[N]) {
  uint32_t total = 0;
  for (const ProtocolWeight& w : table) {
    total += w.weight;
  }
  uint32_t r = rng.Below(total);
  for (const ProtocolWeight& w : table) {
    if (r < w.weight) {
      return w.protocol;
    }
    r -= w.weight;
  }
  return table[0].protocol;
}

class Run {
 public:
  Run(const GeneratorOptions& options, ChunkSink& log, ChunkSink* truth)
      : o_(options),
        rng_(options.seed),
        log_sink_(log),
        truth_sink_(truth),
        hostile_thr_(Rng::Threshold(options.hostile_user_ratio)),
        masked_thr_(Rng::Threshold(options.masked_ip_ratio)),
        variant_thr_(Rng::Threshold(options.ip_variant_ratio)),
        lockout_thr_(Rng::Threshold(options.lockout_ratio)),
        legit_v6_thr_(Rng::Threshold(options.ipv6_ratio * 0.5)) {
    spaces_.assign(
        static_cast<size_t>(o_.message_spaces > 0
                                ? o_.message_spaces
                                : (o_.clock == ClockStyle::k12Hour ? 2 : 3)),
        ' ');
    const string_view first = o_.servers.front();
    const size_t slash = first.rfind('/');
    org_ = slash == string_view::npos || slash + 1 == first.size()
               ? std::string("Acme")
               : std::string(first.substr(slash + 1));
  }

  absl::StatusOr<GeneratorStats> Execute(ChunkSink* summary);

 private:
  // Setup.
  void BuildHosts();
  int AddV4Host(uint32_t addr, Role role);
  int AddV6Host(const std::array<uint16_t, 8>& groups, Role role);
  void BuildAttackers();
  void BuildPrefixes();
  void BuildUsers();

  // Time and line framing.
  void SetTime(int64_t nanos);
  void ShiftToNextSecond();
  void UpdateClockCache();
  bool HasRoom() const { return line_no_ < o_.lines; }
  void StartLine(Task task, bool single_space = false);
  void FinishLine();
  void AddTruth(EventKind kind, Protocol protocol, string_view ip,
                string_view user, bool dedup, int host, bool hostile,
                string_view suspect = "");
  void Flush();

  // Addresses.
  IpForm PickForm(const Host& h, bool v4_only = false);
  void AppendIp(std::string* out, const Host& h, IpForm form) const;
  int ConnectionHost();
  int LegitHost();
  int ScannerHost(bool v4_only);

  // Events.
  void EmitNoise();
  void EmitQuietNoise();
  void EmitRestart();
  void EmitAttackerAttempt(Attacker& a);
  void EmitAttempt(int host, Protocol protocol, string_view user, bool attacker,
                   bool hostile);
  void EmitSuccess(int host, Protocol protocol, string_view user, bool hostile);
  void EmitLegitSuccess(Protocol protocol);
  void EmitSession(Protocol protocol, bool connect);
  void EmitTls();
  void EmitPolicy();
  void MakeHostileUser(std::string* out);
  int64_t NextAttackerEvent(Attacker& a, int64_t now);

  void WriteSummary(std::string* out) const;

  const GeneratorOptions& o_;
  Rng rng_;
  ChunkSink& log_sink_;
  ChunkSink* const truth_sink_;
  const uint64_t hostile_thr_;
  const uint64_t masked_thr_;
  const uint64_t variant_thr_;
  const uint64_t lockout_thr_;
  const uint64_t legit_v6_thr_;
  std::string spaces_;
  std::string org_;

  std::vector<Host> hosts_;
  std::vector<int> legit_v4_;
  std::vector<int> legit_v6_;
  std::vector<int> scanners_v4_;
  std::vector<int> scanners_v6_;
  std::vector<int> attacker_hosts_;
  std::vector<Attacker> attackers_;
  std::vector<std::string> legit_users_;
  std::vector<std::string> spray_targets_;
  size_t spray_cursor_ = 0;
  std::array<std::vector<std::string>, kTaskCount> prefixes_;
  uint32_t noise_total_ = 0;
  uint32_t message_counter_ = 0;

  // Clock: the current line's time in centiseconds since options.start.
  int64_t cs_ = 0;
  int64_t cached_sec_ = -1;
  std::string date_time_;  // "06.03.2024 10:15:32"
  string_view meridiem_;   // " AM", " PM" or ""
  std::string iso_;        // "2024-03-06T10:15:32"
  bool any_timestamp_ = false;

  PairTracker tracker_;
  uint64_t line_no_ = 0;
  std::string log_;
  std::string truth_;
  std::string user_buf_;
  std::string scratch_;
  absl::Status status_;
  GeneratorStats stats_;
};

// --- setup -----------------------------------------------------------------

int Run::AddV4Host(uint32_t addr, Role role) {
  Host h;
  h.canonical = IpAddress::V4(addr).ToString();
  h.role = role;
  hosts_.push_back(std::move(h));
  return static_cast<int>(hosts_.size() - 1);
}

int Run::AddV6Host(const std::array<uint16_t, 8>& groups, Role role) {
  std::array<uint8_t, 16> bytes{};
  for (size_t i = 0; i < 8; ++i) {
    bytes[2 * i] = static_cast<uint8_t>(groups[i] >> 8);
    bytes[2 * i + 1] = static_cast<uint8_t>(groups[i] & 0xFF);
  }
  Host h;
  h.canonical = IpAddress::V6(bytes).ToString();
  h.v6 = true;
  h.groups = groups;
  h.role = role;
  hosts_.push_back(std::move(h));
  return static_cast<int>(hosts_.size() - 1);
}

void Run::BuildHosts() {
  // Hostile IPv4 pool: 198.51.100.1-254 and 203.0.113.1-254 without the decoy.
  std::vector<uint32_t> pool;
  for (uint32_t base : {0xC6336400u, 0xCB007100u}) {  // 198.51.100, 203.0.113
    for (uint32_t i = 1; i <= 254; ++i) {
      if (base + i != 0xCB007163u) {  // 203.0.113.99
        pool.push_back(base + i);
      }
    }
  }
  for (size_t i = pool.size() - 1; i > 0; --i) {
    std::swap(pool[i], pool[rng_.Below(static_cast<uint32_t>(i + 1))]);
  }
  const int k = o_.attackers;
  const uint64_t v6_thr = Rng::Threshold(o_.ipv6_ratio);
  size_t next_v4 = 0;
  int v6_index = 0;
  const auto hostile_v6 = [&](int index) {
    const uint32_t n = static_cast<uint32_t>(index) + 1;
    std::array<uint16_t, 8> g = {
        0x2001,
        0x0db8,
        static_cast<uint16_t>(0x8000 | rng_.Below(0x8000)),
        static_cast<uint16_t>(rng_.Below(0x10000)),
        static_cast<uint16_t>(rng_.Below(2) == 0 ? 0 : rng_.Below(0x10000)),
        0,
        static_cast<uint16_t>(n >> 16),
        static_cast<uint16_t>(n & 0xFFFF)};
    return g;
  };
  for (int i = 0; i < k; ++i) {
    int host;
    if (!rng_.Chance(v6_thr) && next_v4 < pool.size()) {
      host = AddV4Host(pool[next_v4++], Role::kAttacker);
    } else {
      host = AddV6Host(hostile_v6(v6_index++), Role::kAttacker);
    }
    attacker_hosts_.push_back(host);
  }
  // Scanners: 12 IPv4 (reusing attacker addresses when the pool is used up)
  // and a few IPv6.
  for (int i = 0; i < 12; ++i) {
    if (next_v4 < pool.size()) {
      scanners_v4_.push_back(AddV4Host(pool[next_v4++], Role::kScanner));
    } else {
      for (int h : attacker_hosts_) {
        if (!hosts_[static_cast<size_t>(h)].v6) {
          scanners_v4_.push_back(h);
          if (scanners_v4_.size() >= 12) {
            break;
          }
        }
      }
      break;
    }
  }
  if (o_.ipv6_ratio > 0.0) {
    for (int i = 0; i < 4; ++i) {
      scanners_v6_.push_back(
          AddV6Host(hostile_v6(kMaxAttackers + 1000 + i), Role::kScanner));
    }
  }
  // Legitimate clients and peer MTAs: 192.0.2.2-254, and 2001:db8:0:N::/64.
  std::vector<uint32_t> legit;
  for (uint32_t i = 2; i <= 254; ++i) {
    legit.push_back(0xC0000200u + i);
  }
  for (size_t i = legit.size() - 1; i > 0; --i) {
    std::swap(legit[i], legit[rng_.Below(static_cast<uint32_t>(i + 1))]);
  }
  for (size_t i = 0; i < 120; ++i) {
    legit_v4_.push_back(AddV4Host(legit[i], Role::kLegit));
  }
  if (o_.ipv6_ratio > 0.0) {
    for (uint16_t j = 0; j < 24; ++j) {
      legit_v6_.push_back(
          AddV6Host({0x2001, 0x0db8, 0, static_cast<uint16_t>(1 + j % 8), 0, 0,
                     static_cast<uint16_t>(rng_.Below(2) * j),
                     static_cast<uint16_t>(0x100 + j)},
                    Role::kLegit));
    }
  }
}

void Run::BuildAttackers() {
  const int k = o_.attackers;
  if (k == 0 || !(o_.attack_ratio > 0.0)) {
    for (int h : attacker_hosts_) {
      hosts_[static_cast<size_t>(h)].style = Style::kNone;
    }
    return;
  }
  // Attempts per second that make attack_ratio of the lines: an attempt
  // writes 1 line, or 2 when paired (non-HTTP, not a lockout).
  const double lines_per_attempt =
      1.0 + o_.pair_ratio * (1.0 - o_.lockout_ratio) * 0.8;
  const double budget =
      o_.lines_per_second * o_.attack_ratio / lines_per_attempt;
  double fixed = 0.0;
  for (int i = 0; i < k; ++i) {
    Attacker a;
    a.host = attacker_hosts_[static_cast<size_t>(i)];
    const double r = rng_.Uniform();
    a.style = i == 0 || r < 0.55 ? Style::kBurst
              : r < 0.8          ? Style::kSlow
                                 : Style::kSpray;
    a.primary = PickProtocol(rng_, kAttackProtocols);
    a.user = rng_.Below(static_cast<uint32_t>(std::size(kAttackUsers)));
    if (a.style == Style::kSlow) {
      a.gap_s = rng_.Uniform(120.0, 1200.0);
      fixed += 1.0 / a.gap_s;
    } else if (a.style == Style::kSpray) {
      a.gap_s = rng_.Uniform(60.0, 600.0);
      fixed += 1.0 / a.gap_s;
    } else {
      a.gap_s = 1.0 / (1.0 + 9.0 * rng_.Uniform());  // weight, for now
    }
    hosts_[static_cast<size_t>(a.host)].style = a.style;
    attackers_.push_back(a);
  }
  // Slow and spraying attackers never take more than half the budget.
  if (fixed > 0.5 * budget) {
    const double scale = fixed / (0.5 * budget);
    for (Attacker& a : attackers_) {
      if (a.style != Style::kBurst) {
        a.gap_s *= scale;
      }
    }
    fixed = 0.5 * budget;
  }
  double weights = 0.0;
  for (const Attacker& a : attackers_) {
    if (a.style == Style::kBurst) {
      weights += a.gap_s;
    }
  }
  const double burst_budget = budget - fixed;
  for (Attacker& a : attackers_) {
    if (a.style != Style::kBurst) {
      continue;
    }
    const double rate = burst_budget * a.gap_s / weights;  // attempts/s
    a.burst_mean = rng_.Uniform(10.0, 200.0);
    a.gap_s = rng_.Uniform(0.3, 4.0);
    const double cycle = a.burst_mean / rate;
    if (a.burst_mean * a.gap_s > 0.8 * cycle) {
      a.gap_s = 0.8 * cycle / a.burst_mean;
    }
    a.idle_s = cycle - a.burst_mean * a.gap_s;
  }
}

void Run::BuildPrefixes() {
  if (o_.thread_ids == ThreadIdStyle::kNone) {
    return;
  }
  for (auto& variants : prefixes_) {
    const uint32_t pid = 1000 + rng_.Below(60000);
    const uint64_t tid_base = 0x00007F0000000000ULL |
                              (static_cast<uint64_t>(rng_.Below(0x1000)) << 28);
    for (int v = 0; v < 6; ++v) {
      std::string p = "[";
      const uint32_t thread = 2 + rng_.Below(40);
      switch (o_.thread_ids) {
        case ThreadIdStyle::kLinux:
          AppendUint(&p, pid);
          p.push_back(':');
          AppendPadded(&p, thread, 5);
          p.push_back('-');
          AppendUint(&p, 1000000000u + rng_.Below(3000000000u));
          break;
        case ThreadIdStyle::kPaddedHex:
          AppendPadded(&p, pid, 6);
          p.push_back(':');
          AppendPadded(&p, thread, 6);
          p.push_back('-');
          AppendHex(&p, tid_base | (uint64_t{rng_.Below(0x10000)} << 8), 16);
          break;
        case ThreadIdStyle::kWindows:
          AppendHex(&p, pid & 0xFFFF, 4);
          p.push_back(':');
          AppendHex(&p, thread, 4);
          p.push_back('-');
          AppendHex(&p, rng_.Below(0x10000), 4);
          break;
        case ThreadIdStyle::kNone:
          break;
      }
      p.append("] ");
      variants.push_back(std::move(p));
    }
  }
}

void Run::BuildUsers() {
  for (int i = 0; i < 150; ++i) {
    const string_view first = Pick(rng_, kFirstNames);
    const string_view last = Pick(rng_, kLastNames);
    const uint32_t r = rng_.Below(10);
    std::string u;
    if (r < 4) {
      u = absl::StrFormat("%s %s", first, last);
    } else if (r < 8) {
      u = absl::StrFormat("%s.%s@%s", first, last, o_.mail_domain);
      for (char& c : u) {
        if (c >= 'A' && c <= 'Z') {
          c = static_cast<char>(c - 'A' + 'a');
        }
      }
    } else {
      u = absl::StrFormat("%s%s", first.substr(0, 1), last);
      for (char& c : u) {
        if (c >= 'A' && c <= 'Z') {
          c = static_cast<char>(c - 'A' + 'a');
        }
      }
    }
    if (i < 60) {
      spray_targets_.push_back(u);
    }
    legit_users_.push_back(std::move(u));
  }
}

// --- clock and framing -------------------------------------------------------

void Run::UpdateClockCache() {
  const int64_t sec = cs_ / 100;
  if (sec == cached_sec_) {
    return;
  }
  cached_sec_ = sec;
  const absl::CivilSecond t = o_.start + sec;
  date_time_.clear();
  AppendDate(&date_time_, t, o_.date_format);
  date_time_.push_back(' ');
  AppendClockTime(&date_time_, t, o_.clock);
  meridiem_ = Meridiem(t, o_.clock);
  iso_.clear();
  AppendIsoTime(&iso_, t);
}

void Run::SetTime(int64_t nanos) {
  cs_ = std::max(cs_, nanos / kNanosPerCenti);
  UpdateClockCache();
}

void Run::ShiftToNextSecond() {
  cs_ = (cs_ / 100 + 1) * 100;
  UpdateClockCache();
  ++stats_.pair_avoidance_shifts;
}

void Run::StartLine(Task task, bool single_space) {
  if (o_.thread_ids != ThreadIdStyle::kNone) {
    log_.append(Pick(rng_, prefixes_[static_cast<size_t>(task)]));
  }
  log_.append(date_time_);
  if (o_.hundredths) {
    log_.push_back('.');
    AppendPadded(&log_, static_cast<uint64_t>(cs_ % 100), 2);
  }
  log_.append(meridiem_);
  if (single_space) {
    log_.push_back(' ');
  } else {
    log_.append(spaces_);
  }
  if (!any_timestamp_) {
    any_timestamp_ = true;
    stats_.first_time = o_.start + cached_sec_;
  }
  stats_.last_time = o_.start + cached_sec_;
}

void Run::FinishLine() {
  log_.push_back('\n');
  ++line_no_;
  if (log_.size() >= kFlushBytes) {
    Flush();
  }
}

void Run::Flush() {
  if (!status_.ok()) {
    return;
  }
  if (!log_.empty()) {
    status_ = log_sink_.Write(log_);
    log_.clear();
  }
  if (status_.ok() && truth_sink_ != nullptr && !truth_.empty()) {
    status_ = truth_sink_->Write(truth_);
    truth_.clear();
  }
}

void Run::AddTruth(EventKind kind, Protocol protocol, string_view ip,
                   string_view user, bool dedup, int host, bool hostile,
                   string_view suspect) {
  if (!suspect.empty()) {
    ip = "";  // the parser drops the address; nobody is counted
    host = -1;
  }
  ++stats_.recognised_lines;
  ++stats_.recognised_by_kind[static_cast<size_t>(kind)];
  if (hostile) {
    ++stats_.hostile_user_lines;
  }
  if (host >= 0) {
    Host& h = hosts_[static_cast<size_t>(host)];
    switch (kind) {
      case EventKind::kAuthFailure:
        ++h.failure_lines;
        h.attempts += dedup ? 0 : 1;
        break;
      case EventKind::kLockout:
        ++h.lockouts;
        h.attempts += dedup ? 0 : 1;
        break;
      case EventKind::kPolicyReject:
        ++h.policy_rejects;
        break;
      case EventKind::kConnect:
        ++h.connects;
        break;
      case EventKind::kDisconnect:
        ++h.disconnects;
        break;
      case EventKind::kTlsFailure:
        ++h.tls_failures;
        break;
      case EventKind::kAuthSuccess:
        ++h.successes;
        break;
    }
    if (h.first_sec < 0) {
      h.first_sec = cached_sec_;
    }
    h.last_sec = cached_sec_;
  }
  if (truth_sink_ == nullptr) {
    return;
  }
  truth_.append("{\"line\":");
  AppendUint(&truth_, line_no_);
  truth_.append(",\"kind\":\"");
  truth_.append(EventKindName(kind));
  truth_.append("\",\"protocol\":\"");
  truth_.append(ProtocolName(protocol));
  truth_.append("\",\"ip\":\"");
  truth_.append(ip);
  truth_.append("\",\"user\":");
  AppendJsonString(&truth_, user);
  truth_.append(",\"time\":\"");
  truth_.append(iso_);
  truth_.append(dedup ? "\",\"dedup\":true" : "\",\"dedup\":false");
  if (!suspect.empty()) {
    truth_.append(",\"suspect\":\"");
    truth_.append(suspect);
    truth_.push_back('"');
  }
  truth_.append("}\n");
}

// --- addresses ---------------------------------------------------------------

IpForm Run::PickForm(const Host& h, bool v4_only) {
  if (!rng_.Chance(variant_thr_)) {
    return IpForm::kCanonical;
  }
  if (!h.v6) {
    return v4_only ? IpForm::kCanonical : IpForm::kMapped;
  }
  return rng_.Below(2) == 0 ? IpForm::kUpperFull : IpForm::kZone;
}

void Run::AppendIp(std::string* out, const Host& h, IpForm form) const {
  switch (form) {
    case IpForm::kCanonical:
      out->append(h.canonical);
      return;
    case IpForm::kMapped:
      out->append("::ffff:");
      out->append(h.canonical);
      return;
    case IpForm::kUpperFull:
      for (size_t i = 0; i < 8; ++i) {
        if (i > 0) {
          out->push_back(':');
        }
        // Upper-case hex without leading zeros.
        const uint16_t g = h.groups[i];
        int width = 1;
        while (width < 4 && (g >> (4 * width)) != 0) {
          ++width;
        }
        AppendHex(out, g, width);
      }
      return;
    case IpForm::kZone:
      out->append(h.canonical);
      out->append("%eth0");
      return;
  }
}

int Run::LegitHost() {
  if (!legit_v6_.empty() && rng_.Chance(legit_v6_thr_)) {
    return Pick(rng_, legit_v6_);
  }
  return Pick(rng_, legit_v4_);
}

int Run::ScannerHost(bool v4_only) {
  if (!v4_only && !scanners_v6_.empty() && rng_.Below(4) == 0) {
    return Pick(rng_, scanners_v6_);
  }
  if (scanners_v4_.empty()) {
    return Pick(rng_, legit_v4_);  // no attacker IPv4 at all; still hostile
  }
  return Pick(rng_, scanners_v4_);
}

int Run::ConnectionHost() {
  const uint32_t r = rng_.Below(100);
  if (r < 20 && !attacker_hosts_.empty()) {
    return Pick(rng_, attacker_hosts_);
  }
  if (r < 25) {
    return ScannerHost(/*v4_only=*/false);
  }
  return LegitHost();
}

// --- events ------------------------------------------------------------------

void Run::MakeHostileUser(std::string* out) {
  out->clear();
  switch (rng_.Below(20)) {
    case 0:
      return;  // empty
    case 1:
      out->append(rng_.Below(2) == 0 ? "Bad Guy" : "user with space in name");
      return;
    case 2:
      out->append(rng_.Below(2) == 0 ? " admin" : "admin ");
      return;
    case 3:
      absl::StrAppendFormat(out, "a@b@%s", o_.mail_domain);
      return;
    case 4:
      out->append(rng_.Below(2) == 0 ? "[admin]" : "x] [");
      return;
    case 5:
      absl::StrAppendFormat(out, "root [%s]", kDecoyIp);
      return;
    case 6:
      absl::StrAppendFormat(out, "admin%s%s", kConnectingHost, kDecoyIp);
      return;
    case 7:
      out->append(rng_.Below(2) == 0 ? ";" : "a;b ;c");
      return;
    case 8:
      out->append("J\u00fcrgen M\u00fcller");
      return;
    case 9:
      out->append("Zo\u00eb \u00c5ngstr\u00f6m \u65e5\u672c");
      return;
    case 10: {
      static constexpr string_view kInvalid[] = {"adm\xFFin", "M\xFCller",
                                                 "\xC3(x", "\xED\xA0\x80z"};
      out->append(Pick(rng_, kInvalid));
      return;
    }
    case 11:
      out->append(rng_.Below(2) == 0 ? "tab\there" : "\x1B[31mred\x1B[0m");
      return;
    case 12:
    case 13: {
      const int64_t n = rng_.Between(200, 300);
      for (int64_t i = 0; i < n; ++i) {
        out->push_back(kLongUserChars[rng_.Below(
            static_cast<uint32_t>(kLongUserChars.size()))]);
      }
      return;
    }
    case 14:
      out->append("IP Address");
      return;
    case 15:
      out->append("\"quoted\" \\back\\slash");
      return;
    case 16:
      absl::StrAppendFormat(out, "x%s", kInetTrailer);
      return;
    case 17:
      absl::StrAppendFormat(out, "mail.example.net (%s)", kDecoyIp);
      return;
    case 18:
      absl::StrAppendFormat(out, "x logged in from %s", kDecoyIp);
      return;
    default:
      absl::StrAppendFormat(out, "x%s", kLockSuffix);
      return;
  }
}

void Run::EmitAttempt(int host, Protocol protocol, string_view user,
                      bool attacker, bool hostile) {
  const Host& h = hosts_[static_cast<size_t>(host)];
  Mask mask = Mask::kNone;
  if (attacker && rng_.Chance(masked_thr_)) {
    mask = static_cast<Mask>(1 + rng_.Below(3));
  }
  bool lock = attacker && rng_.Chance(lockout_thr_);
  bool want_inet = true;
  bool want_task = false;
  if (!lock && protocol != Protocol::kHttp) {
    const double r = rng_.Uniform();
    if (r < o_.pair_ratio) {
      want_task = true;
    } else if (r >= o_.pair_ratio + o_.inet_only_ratio) {
      want_inet = false;
      want_task = true;
    }
  }
  const bool ip_slot_user = lock && rng_.Below(10) < 6;
  // A lockout whose user slot reads "IP Address" (written so, or a hostile
  // name that happens to be it) is IP-based: no account, user "".
  const string_view inet_user =
      ip_slot_user || (lock && user == "IP Address") ? string_view() : user;
  const string_view ip = mask == Mask::kNone ? string_view(h.canonical) : "";
  const int counted_host = mask == Mask::kNone ? host : -1;
  // The address the parser reports for a line with user field `u`.
  const auto line_ip = [&](string_view u) {
    return SuspicionOf(u).empty() ? ip : string_view();
  };
  const IpForm form = PickForm(h);

  // Keep this attempt from pairing with an earlier line by accident (same
  // ip, user, protocol and second as an unpaired line of the other family).
  // Unpaired lines of one key are all of one family (a counterpart would
  // have paired), so writing the attempt as a single line of that family
  // avoids the pair without touching the timeline (a lockout becomes a plain
  // B line). HTTP has no B line, so it moves to the next second instead.
  const auto first_key = [&] {
    return PairTracker::Key{.task_family = !want_inet,
                            .protocol = protocol,
                            .ip = line_ip(want_inet ? inet_user : user),
                            .sec = cs_ / 100,
                            .user = want_inet ? inet_user : user};
  };
  if (tracker_.WouldPair(first_key())) {
    if (protocol != Protocol::kHttp) {
      want_task = want_inet;
      want_inet = !want_inet;
      lock = lock && want_inet;  // B has no lockout form
      ++stats_.pair_avoidance_rewrites;
    }
    if (tracker_.WouldPair(first_key())) {
      ShiftToNextSecond();
    }
  }
  if (attacker) {
    ++stats_.attack_attempts;
  }

  if (want_inet && HasRoom()) {
    StartLine(TaskFor(protocol));
    log_.append(ProtocolName(protocol));
    log_.append(": ");
    log_.append(ip_slot_user ? string_view("IP Address") : user);
    log_.append(" [");
    switch (mask) {
      case Mask::kNone:
        AppendIp(&log_, h, form);
        break;
      case Mask::kXs:
        log_.append("xxx.xxx.xxx.xxx");
        break;
      case Mask::kInvalid:
        log_.append("111.222.333.444");
        break;
      case Mask::kEmpty:
        break;
    }
    log_.push_back(']');
    log_.append(kInetTrailer);
    if (lock) {
      log_.append(kLockSuffix);
    }
    FinishLine();
    const PairTracker::Key key = {.task_family = false,
                                  .protocol = protocol,
                                  .ip = line_ip(inet_user),
                                  .sec = cs_ / 100,
                                  .user = inet_user};
    const bool dedup = tracker_.Observe(key);
    stats_.unexpected_dedup += dedup ? 1 : 0;
    AddTruth(lock ? EventKind::kLockout : EventKind::kAuthFailure, protocol, ip,
             inet_user, dedup, counted_host, hostile && !ip_slot_user,
             SuspicionOf(inet_user));
    stats_.attack_lines += attacker ? 1 : 0;
    stats_.masked_ip_lines += mask == Mask::kNone ? 0 : 1;
  }
  if (want_task && HasRoom()) {
    // Other tasks write in between now and then.
    if (want_inet && rng_.Below(10) == 0 && line_no_ + 1 < o_.lines) {
      EmitQuietNoise();
    }
    StartLine(TaskFor(protocol));
    const uint32_t variant = protocol == Protocol::kSmtp ? rng_.Below(10) : 0;
    if (variant == 8) {
      log_.append("SMTP Server [");
      AppendHex(&log_, rng_.Below(0x10000), 4);
      log_.push_back(':');
      AppendHex(&log_, rng_.Below(0x10000), 4);
      log_.push_back('-');
      AppendHex(&log_, rng_.Below(0x10000), 4);
      log_.append("] Authentication failed for user ");
    } else {
      log_.append(UpperProtocol(protocol));
      log_.append(" Server: Authentication failed for user ");
    }
    log_.append(user);
    log_.append(kConnectingHost);
    switch (mask) {
      case Mask::kNone:
        if (variant == 8) {
          log_.push_back('[');
          AppendIp(&log_, h, form);
          log_.push_back(']');
        } else if (variant == 9) {
          log_.append(Pick(rng_, kAttackerHostNames));
          log_.append(" (");
          AppendIp(&log_, h, form);
          log_.push_back(')');
        } else {
          AppendIp(&log_, h, form);
        }
        break;
      case Mask::kXs:
        log_.append("xxx.xxx.xxx.xxx");
        break;
      case Mask::kInvalid:
        log_.append("111.222.333.444");
        break;
      case Mask::kEmpty:
        log_.append("[]");  // never a bare empty host: lines lose trailing
                            // blanks, which would move the marker
        break;
    }
    FinishLine();
    const PairTracker::Key key = {.task_family = true,
                                  .protocol = protocol,
                                  .ip = line_ip(user),
                                  .sec = cs_ / 100,
                                  .user = user};
    const bool dedup = tracker_.Observe(key);
    if (dedup != want_inet) {
      ++stats_.unexpected_dedup;
    }
    stats_.pairs += dedup && want_inet ? 1 : 0;
    AddTruth(EventKind::kAuthFailure, protocol, ip, user, dedup, counted_host,
             hostile, SuspicionOf(user));
    stats_.attack_lines += attacker ? 1 : 0;
    stats_.masked_ip_lines += mask == Mask::kNone ? 0 : 1;
  }
}

void Run::EmitSuccess(int host, Protocol protocol, string_view user,
                      bool hostile) {
  if (!HasRoom()) {
    return;
  }
  const Host& h = hosts_[static_cast<size_t>(host)];
  StartLine(TaskFor(protocol));
  switch (protocol) {
    case Protocol::kImap:
      log_.append("IMAP Server: ");
      log_.append(user);
      log_.append(" logged in from ");
      break;
    case Protocol::kPop3:
      log_.append("POP3 Server: ");
      log_.append(user);
      log_.append(" logged in; connecting host ");
      break;
    default:
      protocol = Protocol::kSmtp;
      log_.append("SMTP Server: Authentication succeeded for user ");
      log_.append(user);
      log_.append(kConnectingHost);
      break;
  }
  AppendIp(&log_, h, PickForm(h));
  FinishLine();
  AddTruth(EventKind::kAuthSuccess, protocol, h.canonical, user, false, host,
           hostile, SuspicionOf(user));
}

void Run::EmitLegitSuccess(Protocol protocol) {
  const int host = LegitHost();
  const std::string& user = Pick(rng_, legit_users_);
  EmitSuccess(host, protocol, user, /*hostile=*/false);
}

void Run::EmitSession(Protocol protocol, bool connect) {
  if (!HasRoom()) {
    return;
  }
  const int host = ConnectionHost();
  const Host& h = hosts_[static_cast<size_t>(host)];
  StartLine(TaskFor(protocol));
  log_.append(UpperProtocol(protocol));
  log_.append(" Server: ");
  const IpForm form = PickForm(h);
  if (connect && protocol == Protocol::kSmtp && rng_.Below(4) == 0) {
    if (h.role == Role::kLegit) {
      log_.append("mx");
      AppendUint(&log_, rng_.Below(8));
      log_.push_back('.');
      log_.append(Pick(rng_, kPeerDomains));
    } else {
      log_.append(Pick(rng_, kAttackerHostNames));
    }
    log_.append(" (");
    AppendIp(&log_, h, form);
    log_.push_back(')');
  } else {
    AppendIp(&log_, h, form);
  }
  if (connect) {
    log_.append(" connected");
  } else if (protocol == Protocol::kSmtp) {
    static constexpr uint32_t kMessages[] = {0, 0, 0, 1, 1, 1, 2, 3};
    log_.append(" disconnected. ");
    AppendUint(&log_, Pick(rng_, kMessages));
    log_.append(" message[s] received");
  } else {
    log_.append(" disconnected");
  }
  FinishLine();
  AddTruth(connect ? EventKind::kConnect : EventKind::kDisconnect, protocol,
           h.canonical, "", false, host, false);
}

void Run::EmitTls() {
  if (!HasRoom()) {
    return;
  }
  static constexpr int kPorts[] = {443, 443, 443, 443, 443, 443, 443,
                                   443, 443, 443, 993, 993, 995, 465,
                                   465, 587, 25,  636, 80,  143, 110};
  const int host = ScannerHost(/*v4_only=*/true);
  const Host& h = hosts_[static_cast<size_t>(host)];
  const int port = Pick(rng_, kPorts);
  StartLine(Task::kHttp);
  log_.append("TLS/SSL connection ");
  log_.append(h.canonical);
  log_.push_back('(');
  AppendUint(&log_, 1024 + rng_.Below(64511));
  log_.append(") -> ");
  log_.append(kServerIp);
  log_.push_back('(');
  AppendUint(&log_, static_cast<uint64_t>(port));
  log_.append(") failed with ");
  log_.append(Pick(rng_, kTlsReasons));
  FinishLine();
  AddTruth(EventKind::kTlsFailure, ProtocolForPort(port), h.canonical, "",
           false, host, false);
}

void Run::EmitPolicy() {
  if (!HasRoom()) {
    return;
  }
  const int host = !attacker_hosts_.empty() && rng_.Below(10) < 3
                       ? Pick(rng_, attacker_hosts_)
                       : ScannerHost(/*v4_only=*/false);
  const Host& h = hosts_[static_cast<size_t>(host)];
  StartLine(Task::kSmtp);
  if (rng_.Below(5) == 0) {
    log_.append("SMTP Server: Connection from [");
  } else {
    log_.append("SMTP Server [");
    AppendPadded(&log_, 1000 + rng_.Below(60000), 6);
    log_.push_back(':');
    AppendPadded(&log_, 2 + rng_.Below(40), 6);
    log_.push_back('-');
    // One draw per statement: argument evaluation order is unspecified.
    const uint64_t tid_high = rng_.Below(0x10000);
    AppendHex(&log_, (tid_high << 32) | (rng_.Next() >> 32), 16);
    log_.append("] Connection from [");
  }
  AppendIp(&log_, h, PickForm(h));
  log_.append(
      "] rejected for policy reasons. IP address of connecting host not "
      "found in reverse DNS lookup.");
  FinishLine();
  AddTruth(EventKind::kPolicyReject, Protocol::kSmtp, h.canonical, "", false,
           host, false);
}

// Lines no parser may recognise (used alone and between the lines of a pair).
void Run::EmitQuietNoise() {
  if (!HasRoom()) {
    return;
  }
  const uint32_t r = rng_.Below(4);
  if (r == 0) {
    StartLine(Task::kRouter);
    log_.append("Router: Message ");
    message_counter_ += 1 + rng_.Below(8);
    AppendHex(&log_, message_counter_, 8);
    log_.append(" delivered to ");
    log_.append(Pick(rng_, kFirstNames));
    log_.push_back(' ');
    log_.append(Pick(rng_, kLastNames));
    log_.push_back('/');
    log_.append(org_);
    log_.append(" from ");
    log_.append(Pick(rng_, kAttackUsers));
    log_.push_back('@');
    log_.append(Pick(rng_, kPeerDomains));
    log_.append(" OF");
    AppendHex(&log_, rng_.Next() >> 32, 8);
    log_.push_back('.');
    AppendHex(&log_, rng_.Next() >> 32, 8);
    log_.append("-ON");
    AppendHex(&log_, rng_.Next() >> 32, 8);
    log_.push_back('.');
    AppendHex(&log_, rng_.Next() >> 32, 8);
    log_.append(" Size: ");
    AppendUint(&log_, 1 + rng_.Below(9000));
    log_.append("K Time: 00:00:0");
    AppendUint(&log_, rng_.Below(3));
    log_.append(" Hop Count: ");
    AppendUint(&log_, 1 + rng_.Below(3));
  } else if (r == 1) {
    StartLine(Task::kAmgr);
    const bool start = rng_.Below(2) == 0;
    log_.append(start ? "AMgr: Start executing agent '" : "AMgr: Agent '");
    log_.append(Pick(rng_, kAgents));
    log_.append("' in 'mail/");
    scratch_.assign(Pick(rng_, kLastNames));
    for (char& c : scratch_) {
      if (c >= 'A' && c <= 'Z') {
        c = static_cast<char>(c - 'A' + 'a');
      }
    }
    log_.append(scratch_);
    log_.append(start ? ".nsf'" : ".nsf' completed execution");
  } else if (r == 2) {
    StartLine(Task::kHttp);
    static constexpr string_view kHttp[] = {
        "HTTP Web Server: Lotus Notes Exception - File does not exist [",
        "HTTP Web Server: Lotus Notes Exception - Entry not found in index [",
        "HTTP Web Server: Couldn't find design note - $$ViewTemplateDefault ["};
    log_.append(Pick(rng_, kHttp));
    log_.append(Pick(rng_, kHttpPaths));
    log_.push_back(']');
  } else {
    StartLine(Task::kServer);
    log_.append("Opened session for ");
    log_.append(Pick(rng_, kFirstNames));
    log_.push_back(' ');
    log_.append(Pick(rng_, kLastNames));
    log_.push_back('/');
    log_.append(org_);
    log_.append(" (");
    log_.append(Pick(rng_, kReleases));
    log_.push_back(')');
  }
  FinishLine();
}

// A server restart: banner lines without a timestamp, then task start-ups.
void Run::EmitRestart() {
  static constexpr string_view kBanner[] = {
      "HCL Domino (r) Server (64 Bit), Release 12.0.2FP2, March 15, 2023",
      "Copyright (c) HCL America, Inc. 1987, 2023. All Rights Reserved.",
  };
  for (string_view line : kBanner) {
    if (!HasRoom()) {
      return;
    }
    log_.append(line);
    FinishLine();
  }
  static constexpr string_view kStartup[] = {
      "Server started on physical node ",
      "SMTP Server: Started",
      "Database Replicator started",
  };
  for (size_t i = 0; i < std::size(kStartup); ++i) {
    if (!HasRoom()) {
      return;
    }
    StartLine(i == 1 ? Task::kSmtp : Task::kServer);
    log_.append(kStartup[i]);
    if (i == 0) {
      log_.append(o_.servers.front());
    }
    FinishLine();
  }
}

void Run::EmitNoise() {
  uint32_t r = rng_.Below(noise_total_);
  Noise noise = Noise::kRouterDelivered;
  for (const NoiseWeight& w : kNoiseWeights) {
    if (w.success && !o_.successes) {
      continue;
    }
    if (r < w.weight) {
      noise = w.noise;
      break;
    }
    r -= w.weight;
  }
  switch (noise) {
    case Noise::kSmtpConnect:
      EmitSession(Protocol::kSmtp, true);
      return;
    case Noise::kSmtpDisconnect:
      EmitSession(Protocol::kSmtp, false);
      return;
    case Noise::kImapSession:
      EmitSession(Protocol::kImap, rng_.Below(2) == 0);
      return;
    case Noise::kPop3Session:
      EmitSession(Protocol::kPop3, rng_.Below(2) == 0);
      return;
    case Noise::kTls:
      EmitTls();
      return;
    case Noise::kPolicy:
      EmitPolicy();
      return;
    case Noise::kRestart:
      EmitRestart();
      return;
    case Noise::kLegitTypo: {
      const int host = LegitHost();
      const std::string& user = Pick(rng_, legit_users_);
      EmitAttempt(host, PickProtocol(rng_, kLegitProtocols), user,
                  /*attacker=*/false, /*hostile=*/false);
      return;
    }
    case Noise::kSmtpSuccess:
      EmitLegitSuccess(Protocol::kSmtp);
      return;
    case Noise::kImapLogin:
      EmitLegitSuccess(Protocol::kImap);
      return;
    case Noise::kPop3Login:
      EmitLegitSuccess(Protocol::kPop3);
      return;
    case Noise::kRouterDelivered:
    case Noise::kAmgr:
    case Noise::kHttpWeb:
    case Noise::kSessionOpened:
      EmitQuietNoise();
      return;
    default:
      break;
  }
  if (!HasRoom()) {
    return;
  }
  switch (noise) {
    case Noise::kSmtpReceived:
      StartLine(Task::kSmtp);
      log_.append("SMTP Server: Message ");
      message_counter_ += 1 + rng_.Below(8);
      AppendHex(&log_, message_counter_, 8);
      log_.append(" (MessageID: <");
      AppendHex(&log_, rng_.Next() >> 32, 8);
      log_.push_back('.');
      AppendHex(&log_, rng_.Next() >> 32, 8);
      log_.push_back('@');
      log_.append(Pick(rng_, kPeerDomains));
      log_.append(">) received from mx");
      AppendUint(&log_, rng_.Below(8));
      log_.push_back('.');
      log_.append(Pick(rng_, kPeerDomains));
      log_.append(" size ");
      AppendUint(&log_, 900 + rng_.Below(4000000));
      log_.append(" bytes");
      break;
    case Noise::kRouterTransfer: {
      StartLine(Task::kRouter);
      const string_view domain = Pick(rng_, kPeerDomains);
      const Host& mta = hosts_[static_cast<size_t>(Pick(rng_, legit_v4_))];
      if (rng_.Below(2) == 0) {
        log_.append("Router: Transferring mail to domain ");
        log_.append(domain);
        log_.append(" (host mx.");
        log_.append(domain);
        log_.append(" [");
        log_.append(mta.canonical);
        log_.append("]) via SMTP");
      } else {
        log_.append("Router: Transferred ");
        AppendUint(&log_, 1 + rng_.Below(5));
        log_.append(" messages to mx.");
        log_.append(domain);
        log_.append(" (host ");
        log_.append(mta.canonical);
        log_.append(") via SMTP");
      }
      break;
    }
    case Noise::kSessionClosed:
      StartLine(Task::kServer);
      log_.append("Closed session for ");
      log_.append(Pick(rng_, kFirstNames));
      log_.push_back(' ');
      log_.append(Pick(rng_, kLastNames));
      log_.push_back('/');
      log_.append(org_);
      log_.append(" Databases accessed: ");
      AppendPadded(&log_, 1 + rng_.Below(11), 5, ' ');
      log_.append("  Documents read: ");
      AppendPadded(&log_, rng_.Below(400), 5, ' ');
      log_.append("  Documents written: ");
      AppendPadded(&log_, rng_.Below(20), 5, ' ');
      break;
    case Noise::kImapLoggedOut:
      StartLine(Task::kImap);
      log_.append("IMAP Server: ");
      log_.append(Pick(rng_, legit_users_));
      log_.append(" logged out");
      break;
    case Noise::kReplica: {
      StartLine(Task::kReplica);
      const string_view peer =
          o_.servers.size() > 1
              ? string_view(o_.servers[1 + rng_.Below(static_cast<uint32_t>(
                                               o_.servers.size() - 1))])
              : string_view(o_.servers.front());
      const uint32_t k = rng_.Below(10);
      if (k < 3) {
        log_.append("Starting replication with server ");
        log_.append(peer);
      } else if (k < 6) {
        const bool pull = rng_.Below(2) == 0;
        log_.append(pull ? "Pulling " : "Pushing ");
        log_.append(Pick(rng_, kDatabases));
        log_.append(pull ? " from " : " to ");
        log_.append(peer);
      } else if (k < 9) {
        log_.append("Finished replication with server ");
        log_.append(peer);
      } else {
        log_.append("Database Replicator started");
      }
      break;
    }
    case Noise::kUpdate: {
      StartLine(Task::kUpdate);
      const string_view db = Pick(rng_, kDatabases);
      const uint32_t k = rng_.Below(10);
      if (k < 5) {
        log_.append("Updating views in ");
        log_.append(db);
      } else if (k < 8) {
        log_.append("Compacting ");
        log_.append(db);
        log_.append(" (Mail)");
      } else {
        log_.append("Compacted ");
        log_.append(db);
        log_.append(", ");
        AppendUint(&log_, 1 + rng_.Below(90000));
        log_.append("K bytes recovered (");
        AppendUint(&log_, rng_.Below(40));
        log_.append("%)");
      }
      break;
    }
    case Noise::kHexCode:
    default:
      // Message files missing for the locale: codes instead of text.
      StartLine(Task::kServer, /*single_space=*/true);
      log_.append(Pick(rng_, kHexCodes));
      break;
  }
  FinishLine();
}

void Run::EmitAttackerAttempt(Attacker& a) {
  const Protocol protocol =
      rng_.Below(100) < 85 ? a.primary : PickProtocol(rng_, kAttackProtocols);
  user_buf_.clear();
  switch (a.style) {
    case Style::kBurst:
      // Dictionary attack: many passwords for one name, then the next name.
      if (a.user_left <= 0) {
        a.user = rng_.Below(static_cast<uint32_t>(std::size(kAttackUsers)));
        a.user_left = 1 + static_cast<int64_t>(rng_.Exponential(7.0));
      }
      --a.user_left;
      user_buf_.append(kAttackUsers[a.user]);
      break;
    case Style::kSlow:
      a.user = (a.user + 1) % static_cast<uint32_t>(std::size(kAttackUsers));
      user_buf_.append(kAttackUsers[a.user]);
      break;
    case Style::kSpray:
    case Style::kNone:
      // Password spraying: the botnet walks the organisation's directory.
      user_buf_.append(spray_targets_[spray_cursor_]);
      spray_cursor_ = (spray_cursor_ + 1) % spray_targets_.size();
      break;
  }
  if (a.style != Style::kSpray && rng_.Below(4) == 0) {
    absl::StrAppendFormat(&user_buf_, "@%s", o_.mail_domain);
  }
  const bool hostile = rng_.Chance(hostile_thr_);
  if (hostile) {
    MakeHostileUser(&user_buf_);
  }
  EmitAttempt(a.host, protocol, user_buf_, /*attacker=*/true, hostile);
  // Rarely the guess is right (a compromised account).
  if (o_.successes && protocol != Protocol::kHttp &&
      protocol != Protocol::kLdap && rng_.Below(2000) == 0) {
    EmitSuccess(a.host, protocol, user_buf_, hostile);
  }
}

int64_t Run::NextAttackerEvent(Attacker& a, int64_t now) {
  switch (a.style) {
    case Style::kBurst:
      if (a.burst_left > 0) {
        --a.burst_left;
        return After(now, rng_.Exponential(a.gap_s));
      }
      a.burst_left = static_cast<int64_t>(rng_.Exponential(a.burst_mean - 1));
      return After(now, rng_.Exponential(a.idle_s));
    case Style::kSlow:
      return After(now, a.gap_s * rng_.Uniform(0.85, 1.15));
    case Style::kSpray:
    case Style::kNone:
      break;
  }
  return After(now, rng_.Exponential(a.gap_s));
}

void Run::WriteSummary(std::string* out) const {
  for (const Host& h : hosts_) {
    if (h.first_sec < 0) {
      continue;
    }
    absl::StrAppendFormat(
        out,
        "{\"ip\":\"%s\",\"role\":\"%s\",\"style\":\"%s\","
        "\"failure_lines\":%d,\"attempts\":%d,\"lockouts\":%d,"
        "\"policy_rejects\":%d,\"tls_failures\":%d,\"connects\":%d,"
        "\"disconnects\":%d,\"successes\":%d,\"first\":\"",
        h.canonical, RoleName(h.role), StyleName(h.style), h.failure_lines,
        h.attempts, h.lockouts, h.policy_rejects, h.tls_failures, h.connects,
        h.disconnects, h.successes);
    AppendIsoTime(out, o_.start + h.first_sec);
    out->append("\",\"last\":\"");
    AppendIsoTime(out, o_.start + h.last_sec);
    out->append("\"}\n");
  }
}

absl::StatusOr<GeneratorStats> Run::Execute(ChunkSink* summary) {
  BuildHosts();
  BuildAttackers();
  BuildPrefixes();
  BuildUsers();
  for (const NoiseWeight& w : kNoiseWeights) {
    if (!w.success || o_.successes) {
      noise_total_ += w.weight;
    }
  }
  message_counter_ = rng_.Below(0x1000000);
  log_.reserve(kFlushBytes + 8192);
  if (truth_sink_ != nullptr) {
    truth_.reserve(kFlushBytes + 8192);
  }
  UpdateClockCache();

  // Event queue: (time in ns, source); source 0 is noise, i > 0 attacker i-1.
  using Event = std::pair<int64_t, size_t>;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> queue;
  const bool noise = o_.attack_ratio < 1.0;
  const double noise_gap_s =
      noise ? 1.0 / (o_.lines_per_second * (1.0 - o_.attack_ratio)) : 0.0;
  if (noise) {
    EmitRestart();  // a console.log starts with the server
    queue.push({0, 0});
  }
  for (size_t i = 0; i < attackers_.size(); ++i) {
    Attacker& a = attackers_[i];
    double first_s;
    if (a.style == Style::kBurst) {
      first_s = rng_.Uniform(0.0, i == 0 ? 60.0 : a.idle_s);
      a.burst_left = static_cast<int64_t>(rng_.Exponential(a.burst_mean - 1));
    } else if (a.style == Style::kSlow) {
      first_s = rng_.Uniform(0.0, a.gap_s);
    } else {
      first_s = rng_.Exponential(a.gap_s);
    }
    queue.push({After(0, first_s), i + 1});
  }

  while (HasRoom() && status_.ok() && !queue.empty()) {
    const auto [when, source] = queue.top();
    queue.pop();
    SetTime(when);
    if (source == 0) {
      EmitNoise();
      queue.push({After(when, rng_.Exponential(noise_gap_s)), 0});
    } else {
      Attacker& a = attackers_[source - 1];
      EmitAttackerAttempt(a);
      queue.push({NextAttackerEvent(a, when), source});
    }
  }
  Flush();
  if (!status_.ok()) {
    return status_;
  }
  stats_.lines = line_no_;
  if (summary != nullptr) {
    std::string text;
    WriteSummary(&text);
    if (absl::Status s = summary->Write(text); !s.ok()) {
      return s;
    }
  }
  return stats_;
}

bool IsPrintableAscii(string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x20 && c < 0x7F; });
}

}  // namespace

std::string_view ThreadIdStyleName(ThreadIdStyle style) {
  switch (style) {
    case ThreadIdStyle::kNone:
      return "none";
    case ThreadIdStyle::kLinux:
      return "linux";
    case ThreadIdStyle::kPaddedHex:
      return "hex";
    case ThreadIdStyle::kWindows:
      return "windows";
  }
  return "none";
}

absl::StatusOr<ThreadIdStyle> ParseThreadIdStyle(std::string_view name) {
  for (ThreadIdStyle s : {ThreadIdStyle::kNone, ThreadIdStyle::kLinux,
                          ThreadIdStyle::kPaddedHex, ThreadIdStyle::kWindows}) {
    if (ThreadIdStyleName(s) == name) {
      return s;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("invalid thread-id prefix \"%s\": expected one of "
                      "none, linux, hex, windows",
                      name.substr(0, 40)));
}

absl::Status ValidateGeneratorOptions(const GeneratorOptions& o) {
  const auto ratio = [](double v, string_view name) -> absl::Status {
    if (!(v >= 0.0 && v <= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s must be in [0, 1], got %g", name, v));
    }
    return absl::OkStatus();
  };
  for (const auto& [v, name] : {std::pair{o.attack_ratio, "attack_ratio"},
                                {o.ipv6_ratio, "ipv6_ratio"},
                                {o.hostile_user_ratio, "hostile_user_ratio"},
                                {o.masked_ip_ratio, "masked_ip_ratio"},
                                {o.ip_variant_ratio, "ip_variant_ratio"},
                                {o.pair_ratio, "pair_ratio"},
                                {o.inet_only_ratio, "inet_only_ratio"},
                                {o.lockout_ratio, "lockout_ratio"}}) {
    if (absl::Status s = ratio(v, name); !s.ok()) {
      return s;
    }
  }
  if (o.pair_ratio + o.inet_only_ratio > 1.0) {
    return absl::InvalidArgumentError(
        "pair_ratio + inet_only_ratio must not exceed 1");
  }
  if (!(o.lines_per_second > 0.0 && o.lines_per_second <= 1e6)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "lines_per_second must be in (0, 1e6], got %g", o.lines_per_second));
  }
  if (o.attackers < 0 || o.attackers > kMaxAttackers) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "attackers must be in [0, %d], got %d", kMaxAttackers, o.attackers));
  }
  if (o.attack_ratio > 0.0 && o.attackers == 0) {
    return absl::InvalidArgumentError("attack_ratio > 0 needs attackers > 0");
  }
  if (o.message_spaces < 0 || o.message_spaces > 3) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "message_spaces must be 0 (Domino's default) or 1..3, got %d",
        o.message_spaces));
  }
  if (o.start.year() < 1970 || o.start.year() > 2199) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "start year must be in [1970, 2199], got %d", o.start.year()));
  }
  // Keep the log well inside the simulator's 100-year horizon.
  constexpr double kMaxSpanSeconds = 50.0 * 365 * 86400;
  if (static_cast<double>(o.lines) / o.lines_per_second > kMaxSpanSeconds) {
    return absl::InvalidArgumentError(
        "lines / lines_per_second spans more than 50 years");
  }
  if (o.servers.empty()) {
    return absl::InvalidArgumentError("servers must not be empty");
  }
  for (const std::string& s : o.servers) {
    if (s.empty() || s.size() > 100 || !IsPrintableAscii(s)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "server name must be 1..100 printable ASCII bytes: \"%s\"",
          string_view(s).substr(0, 40)));
    }
  }
  if (o.mail_domain.empty() || o.mail_domain.size() > 100 ||
      !std::all_of(o.mail_domain.begin(), o.mail_domain.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '-';
      })) {
    return absl::InvalidArgumentError(
        "mail_domain must be 1..100 bytes of letters, digits, '.' and '-'");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DominoLogGenerator>> DominoLogGenerator::Create(
    const GeneratorOptions& options) {
  if (absl::Status s = ValidateGeneratorOptions(options); !s.ok()) {
    return s;
  }
  return std::unique_ptr<DominoLogGenerator>(new DominoLogGenerator(options));
}

absl::StatusOr<GeneratorStats> DominoLogGenerator::Generate(
    ChunkSink& log, ChunkSink* truth, ChunkSink* summary) const {
  Run run(options_, log, truth);
  return run.Execute(summary);
}

absl::StatusOr<GeneratedLog> GenerateToStrings(
    const GeneratorOptions& options) {
  absl::StatusOr<std::unique_ptr<DominoLogGenerator>> gen =
      DominoLogGenerator::Create(options);
  if (!gen.ok()) {
    return gen.status();
  }
  GeneratedLog out;
  StringChunkSink log(&out.log);
  StringChunkSink truth(&out.truth);
  StringChunkSink summary(&out.summary);
  absl::StatusOr<GeneratorStats> stats =
      (*gen)->Generate(log, &truth, &summary);
  if (!stats.ok()) {
    return stats.status();
  }
  out.stats = *stats;
  return out;
}

}  // namespace rampart::sim
