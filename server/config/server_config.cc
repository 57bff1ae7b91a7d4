#include "server/config/server_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <map>
#include <new>
#include <span>
#include <sstream>
#include <system_error>
#include <utility>
#include <variant>

#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "common/edit_distance.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/parser.h"
#include "yaml-cpp/yaml.h"

namespace rampart::server {
namespace {

// ---------------------------------------------------------------------------
// Schema tables. The reader, ServerConfigToYaml, ServerConfigKeys() and the
// "did you mean" suggestions are all driven by these, so they cannot drift
// from one another.

constexpr int64_t kMaxSeconds = 36500LL * 86400;  // kMaxConfigDuration
static_assert(absl::Seconds(kMaxSeconds) == kMaxConfigDuration);

// One scalar or list key of a section struct S. Integers are checked against
// [min, max]; durations against [min, max] seconds; doubles and lists are
// checked by the section's own validation (ValidatePolicy).
template <typename S>
struct Key {
  std::string_view name;
  std::variant<int S::*, int64_t S::*, size_t S::*, double S::*,
               absl::Duration S::*, std::vector<int> S::*>
      member;
  int64_t min = 0;
  int64_t max = 0;
};

constexpr int64_t kIntMin = std::numeric_limits<int>::min();
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// Every Policy field, in declaration order; YAML key == C++ field name. The
// ranges here only keep values representable: ValidatePolicy (server/core)
// is the single source of the real rules.
constexpr Key<Policy> kPolicyKeys[] = {
    {"half_life", &Policy::half_life, 0, kMaxSeconds},
    {"ban_threshold", &Policy::ban_threshold},
    {"weight_auth_failure", &Policy::weight_auth_failure},
    {"weight_lockout", &Policy::weight_lockout},
    {"weight_policy_reject", &Policy::weight_policy_reject},
    {"weight_tls_failure", &Policy::weight_tls_failure},
    {"protocol_smtp", &Policy::protocol_smtp},
    {"protocol_imap", &Policy::protocol_imap},
    {"protocol_pop3", &Policy::protocol_pop3},
    {"protocol_ldap", &Policy::protocol_ldap},
    {"protocol_http", &Policy::protocol_http},
    {"protocol_unknown", &Policy::protocol_unknown},
    {"server_window", &Policy::server_window, 0, kMaxSeconds},
    {"server_factor", &Policy::server_factor},
    {"max_servers_counted", &Policy::max_servers_counted, kIntMin, kIntMax},
    {"ban_base", &Policy::ban_base, 0, kMaxSeconds},
    {"ban_factor", &Policy::ban_factor},
    {"ban_max", &Policy::ban_max, 0, kMaxSeconds},
    {"ban_jitter", &Policy::ban_jitter},
    {"history_clean_period", &Policy::history_clean_period, 0, kMaxSeconds},
    {"v6_score_prefix", &Policy::v6_score_prefix, kIntMin, kIntMax},
    {"v4_ladder", &Policy::v4_ladder, 0, 128},
    {"v6_ladder", &Policy::v6_ladder, 0, 128},
    {"prefix_k", &Policy::prefix_k, kIntMin, kIntMax},
    {"prefix_member_fraction", &Policy::prefix_member_fraction},
    {"prefix_window", &Policy::prefix_window, 0, kMaxSeconds},
    {"account_window", &Policy::account_window, 0, kMaxSeconds},
    {"account_min_ips", &Policy::account_min_ips, kIntMin, kIntMax},
    {"account_min_servers", &Policy::account_min_servers, kIntMin, kIntMax},
    {"compromise_lookback", &Policy::compromise_lookback, 0, kMaxSeconds},
};

using Retention = ServerConfig::Retention;
constexpr Key<Retention> kRetentionKeys[] = {
    {"events", &Retention::events, 86400, kMaxSeconds},
    {"journal_revisions", &Retention::journal_revisions, 1000,
     1'000'000'000'000},
};

using Distribution = BanDistributor::Options;
constexpr Key<Distribution> kDistributionKeys[] = {
    {"journal_window", &Distribution::journal_window, 1, 1'000'000},
    {"max_delta", &Distribution::max_delta, 1, 1'000'000},
};

using Limits = ServerConfig::Limits;
constexpr Key<Limits> kLimitsKeys[] = {
    {"max_agents", &Limits::max_agents, 1, 100'000},
    {"max_message_bytes", &Limits::max_message_bytes, 4 * 1024 * 1024,
     64 * 1024 * 1024},
    {"max_events_per_batch", &Limits::max_events_per_batch, 1, 5000},
    {"agent_send_queue", &Limits::agent_send_queue, 4, 10'000},
    {"heartbeat_timeout", &Limits::heartbeat_timeout, 15, 3600},
    {"keepalive_time", &Limits::keepalive_time, 10, 7200},
    {"keepalive_timeout", &Limits::keepalive_timeout, 1, 300},
    {"keepalive_min_agent_interval", &Limits::keepalive_min_agent_interval, 1,
     3600},
    {"agent_events_per_second", &Limits::agent_events_per_second, 1, 1'000'000},
    {"agent_events_burst", &Limits::agent_events_burst, 1, 10'000'000},
    {"agent_new_bans_per_minute", &Limits::agent_new_bans_per_minute, 1,
     100'000},
    {"hello_timeout", &Limits::hello_timeout, 1, 300},
    {"max_unauthenticated_streams", &Limits::max_unauthenticated_streams, 1,
     100'000},
    {"max_unauthenticated_streams_per_address",
     &Limits::max_unauthenticated_streams_per_address, 1, 100'000},
    {"max_unauthenticated_streams_per_connection",
     &Limits::max_unauthenticated_streams_per_connection, 1, 100'000},
    {"max_score_entries", &Limits::max_score_entries, 1000, 100'000'000},
    {"max_account_entries", &Limits::max_account_entries, 1000, 100'000'000},
    {"agent_new_keys_per_minute", &Limits::agent_new_keys_per_minute, 1,
     10'000'000},
};

constexpr std::string_view kRootKeys[] = {
    "server",       "policy", "allowlist", "retention", "housekeeping_interval",
    "distribution", "limits", "admin",     "tls",
};
constexpr std::string_view kAdminKeys[] = {"bootstrap_token_file"};
constexpr std::string_view kServerKeys[] = {
    "listen",    "http_listen", "db", "insecure", "allow_insecure_non_loopback",
    "reflection"};
constexpr std::string_view kTlsKeys[] = {
    "cert_file", "key_file", "client_ca_file", "ca_key_file", "cert_ttl"};
constexpr absl::Duration kMinCertTtl = absl::Hours(1);
constexpr absl::Duration kMaxCertTtl = absl::Hours(24 * 825);
constexpr std::string_view kAllowKeys[] = {"cidr", "expires", "comment"};

constexpr absl::Duration kMinHousekeeping = absl::Seconds(1);
constexpr absl::Duration kMaxHousekeeping = absl::Hours(1);
// Allowlist comments share the protocol's reason/comment limit.
constexpr size_t kMaxCommentBytes = 256;
constexpr std::string_view kAllowlistActor = "config";

// Counts the fields of an aggregate: the largest N for which T{x1, ..., xN}
// compiles with arguments convertible to anything. Used below so that adding
// a field to Policy or a section struct without a key breaks the build.
struct AnyField {
  template <typename T>
  operator T() const;  // NOLINT(google-explicit-constructor): never defined
};
template <typename T, typename... A>
constexpr size_t CountFields() {
  if constexpr (requires { T{A{}..., AnyField{}}; }) {
    return CountFields<T, A..., AnyField>();
  } else {
    return sizeof...(A);
  }
}
static_assert(CountFields<Policy>() == std::size(kPolicyKeys),
              "a Policy field has no config key: add it to kPolicyKeys, "
              "docs/configuration.md and deploy/rampart-server.example.yaml");
static_assert(CountFields<Retention>() == std::size(kRetentionKeys));
static_assert(CountFields<Distribution>() == std::size(kDistributionKeys));
static_assert(CountFields<Limits>() == std::size(kLimitsKeys));

template <typename S, size_t N>
std::vector<std::string_view> NamesOf(const Key<S> (&keys)[N]) {
  std::vector<std::string_view> names;
  for (const Key<S>& k : keys) {
    names.push_back(k.name);
  }
  return names;
}

// ---------------------------------------------------------------------------
// Text helpers.

// `s` in double quotes with control characters, quotes and backslashes
// escaped, cut to `max` bytes: safe to embed hostile input in a message, and
// a valid YAML double-quoted scalar when not cut.
std::string Quote(std::string_view s,
                  size_t max = std::numeric_limits<size_t>::max()) {
  return QuoteEscaped(s, max);
}
std::string QuoteShort(std::string_view s) { return Quote(s, 64); }

// A YAML key as it appears in a path: verbatim when it is a tame identifier,
// quoted otherwise.
std::string KeyForPath(std::string_view key) {
  const bool tame = !key.empty() && key.size() <= 64 &&
                    std::all_of(key.begin(), key.end(), [](char c) {
                      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                             (c >= '0' && c <= '9') || c == '_' || c == '-';
                    });
  return tame ? std::string(key) : Quote(key, 32);
}

std::string JoinPath(std::string_view path, std::string_view key) {
  if (path.empty()) {
    return KeyForPath(key);
  }
  return absl::StrFormat("%s.%s", path, KeyForPath(key));
}

// Offset of the first byte that is not valid UTF-8 or is a control character
// (C0 other than tab/LF/CR, DEL; with `allow_whitespace` false also tab, LF
// and CR), or npos. Sets *why.
size_t FindBadByte(std::string_view s, bool allow_whitespace,
                   std::string* why) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      const bool space_ok =
          allow_whitespace && (c == '\t' || c == '\n' || c == '\r');
      if ((c < 0x20 && !space_ok) || c == 0x7f) {
        *why = c == 0 ? "NUL byte (not a text file?)"
                      : absl::StrFormat("control character 0x%02x", c);
        return i;
      }
      ++i;
      continue;
    }
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) {
      const size_t want = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      *why = c >= 0xc2 && c <= 0xf4 && i + want > s.size()
                 ? "invalid UTF-8 (truncated sequence)"
                 : "invalid UTF-8";
      return i;
    }
    // C1 controls (U+0080..U+009F, encoded C2 80..C2 9F) are as unprintable
    // as C0 ones.
    if (const auto next = static_cast<unsigned char>(s[i + 1]);
        c == 0xc2 && next <= 0x9f) {
      *why = absl::StrFormat("control character U+%04X",
                             static_cast<uint32_t>(next));
      return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// absl::Status::message() is an absl::string_view, a distinct type here.
std::string_view MessageOf(const absl::Status& s) {
  return std::string_view(s.message().data(), s.message().size());
}

// Shortest text that std::from_chars reads back as exactly `v`.
std::string FormatDouble(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) {
    return absl::StrFormat("%.17g", v);
  }
  return std::string(buf, end);
}

// RFC 3339 with the offset as +00:00 (what absl prints for UTC).
std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

// ---------------------------------------------------------------------------
// libpq key=value connection strings (the syntax of libpq's conninfo_parse).

struct Keyword {
  std::string key;
  std::string value;
};

// Error messages give offsets only, never text: it may be a password.
absl::StatusOr<std::vector<Keyword>> ParseConninfo(std::string_view s) {
  std::vector<Keyword> words;
  size_t i = 0;
  auto skip_space = [&] {
    while (i < s.size() && IsAsciiSpace(s[i])) {
      ++i;
    }
  };
  while (true) {
    skip_space();
    if (i == s.size()) {
      break;
    }
    const size_t key_start = i;
    while (i < s.size() && s[i] != '=' && !IsAsciiSpace(s[i])) {
      ++i;
    }
    const std::string_view key = s.substr(key_start, i - key_start);
    const bool key_ok = std::all_of(key.begin(), key.end(), [](char c) {
      return IsAlpha(c) || IsDigit(c) || c == '_';
    });
    if (key.empty() || !key_ok) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "libpq key=value string: expected a keyword at offset %d",
          key_start));
    }
    skip_space();
    if (i == s.size() || s[i] != '=') {
      return absl::InvalidArgumentError(absl::StrFormat(
          "libpq key=value string: missing \"=\" after the keyword at offset "
          "%d",
          key_start));
    }
    ++i;
    skip_space();
    std::string value;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          value += s[i + 1];
          i += 2;
        } else if (s[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          value += s[i++];
        }
      }
      if (!closed) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "libpq key=value string: unterminated quoted value for the "
            "keyword at offset %d",
            key_start));
      }
    } else {
      while (i < s.size() && !IsAsciiSpace(s[i])) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          ++i;
        }
        value += s[i++];
      }
    }
    words.push_back(Keyword{std::string(key), std::move(value)});
  }
  if (words.empty()) {
    return absl::InvalidArgumentError(
        "libpq key=value string is empty (e.g. postgresql:host=db "
        "dbname=rampart)");
  }
  return words;
}

std::string QuoteConninfoValue(std::string_view v) {
  const bool plain = !v.empty() && std::none_of(v.begin(), v.end(), [](char c) {
    return IsAsciiSpace(c) || c == '\'' || c == '\\';
  });
  if (plain) {
    return std::string(v);
  }
  std::string quoted = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') {
      quoted += '\\';
    }
    quoted += c;
  }
  quoted += '\'';
  return quoted;
}

// True for keywords / parameters that carry a secret: password,
// sslpassword. `name` may be percent-encoded (URI query parameters are
// decoded by libpq).
bool IsSecretName(std::string_view name) {
  std::string decoded;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size()) {
      unsigned value = 0;
      const auto [end, ec] =
          std::from_chars(name.data() + i + 1, name.data() + i + 3, value, 16);
      if (ec == std::errc() && end == name.data() + i + 3) {
        decoded += static_cast<char>(value);
        i += 2;
        continue;
      }
    }
    decoded += name[i];
  }
  return AsciiLower(decoded).find("password") != std::string::npos;
}

// The URI with the user-info password and any password query parameter
// replaced by "***". Errs on the side of hiding: everything between the first
// ":" after the scheme and the last "@" before the query counts as password.
std::string RedactPostgresUri(std::string_view uri) {
  const size_t scheme_end = uri.find("://");
  if (scheme_end == std::string_view::npos) {
    return "postgresql://***";
  }
  const size_t body_start = scheme_end + 3;
  std::string redacted(uri.substr(0, body_start));
  std::string_view body = uri.substr(body_start);
  const size_t q = body.find('?');
  std::string_view before_query = body.substr(0, q);
  if (const size_t at = before_query.rfind('@'); at != std::string_view::npos) {
    const std::string_view userinfo = before_query.substr(0, at);
    if (const size_t colon = userinfo.find(':');
        colon != std::string_view::npos) {
      redacted += userinfo.substr(0, colon);
      redacted += ":***";
    } else {
      redacted += userinfo;
    }
    redacted += before_query.substr(at);
  } else {
    redacted += before_query;
  }
  if (q == std::string_view::npos) {
    return redacted;
  }
  redacted += '?';
  std::string_view query = body.substr(q + 1);
  bool first = true;
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    if (!first) {
      redacted += '&';
    }
    first = false;
    const size_t eq = param.find('=');
    if (eq != std::string_view::npos && IsSecretName(param.substr(0, eq))) {
      redacted += param.substr(0, eq);
      redacted += "=***";
    } else {
      redacted += param;
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return redacted;
}

// DNS host name: letters, digits, '-', dots between labels of 1..63 bytes,
// not all-numeric (that would be a mistyped IPv4 address).
bool IsDnsName(std::string_view host) {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  bool all_numeric = true;
  size_t label = 0;
  for (size_t i = 0; i <= host.size(); ++i) {
    if (i == host.size() || host[i] == '.') {
      if (label == 0 || label > 63 || host[i - 1] == '-') {
        return false;
      }
      label = 0;
      continue;
    }
    const char c = host[i];
    if (!IsAlpha(c) && !IsDigit(c) && c != '-') {
      return false;
    }
    if (label == 0 && c == '-') {
      return false;
    }
    all_numeric = all_numeric && IsDigit(c);
    ++label;
  }
  return !all_numeric;
}

// Whether two listen addresses could not both be bound: the same non-zero
// port, unless both are specific IP literals that differ. (A name may resolve
// to the other address; a wildcard overlaps everything.)
bool Collide(const HostPort& a, const HostPort& b) {
  if (a.port == 0 || a.port != b.port) {
    return false;
  }
  const std::optional<IpAddress> ia = a.ip();
  const std::optional<IpAddress> ib = b.ip();
  if (ia && ib && !ia->IsUnspecified() && !ib->IsUnspecified()) {
    return *ia == *ib;
  }
  return true;
}

absl::Status CheckListenPair(const HostPort& listen, const HostPort& http) {
  if (Collide(listen, http)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the gRPC and HTTP listen addresses collide (%s and %s); use "
        "different ports",
        listen.ToString(), http.ToString()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Pass 1: bound the document before building a node tree.

// Thrown by BoundsChecker to stop the parser; never escapes LoadServerConfig.
struct BoundExceeded {
  YAML::Mark mark;
  std::string message;
};

// Counts events while yaml-cpp parses (no nodes are built), so a hostile
// document is rejected after at most kMaxConfigNodes events and
// kMaxConfigDepth levels of parser recursion, whatever its size.
class BoundsChecker final : public YAML::EventHandler {
 public:
  int documents() const { return documents_; }

  // YAML::EventHandler
  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) {
      throw BoundExceeded{
          mark, "more than one YAML document; the config is one document"};
    }
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Count(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Count(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&,
                       YAML::anchor_t, YAML::EmitterStyle::value) override {
    Enter(mark);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Enter(mark);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void Count(const YAML::Mark& mark) {
    if (++nodes_ > kMaxConfigNodes) {
      throw BoundExceeded{
          mark, absl::StrFormat("more than %d YAML nodes; refusing to "
                                "process the document",
                                kMaxConfigNodes)};
    }
  }
  void Enter(const YAML::Mark& mark) {
    Count(mark);
    if (++depth_ > kMaxConfigDepth) {
      throw BoundExceeded{
          mark, absl::StrFormat("mappings and lists nested more than %d "
                                "deep",
                                kMaxConfigDepth)};
    }
  }

  int documents_ = 0;
  int nodes_ = 0;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------
// Pass 2: the schema reader.

// A value to read: its node, where to point errors, and its YAML path.
struct Value {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;
};

// One key of a mapping.
struct Field {
  std::string key;
  YAML::Mark key_mark;
  Value value;
};

class ConfigReader {
 public:
  explicit ConfigReader(std::string_view source) : source_(source) {}

  absl::StatusOr<ServerConfig> Read(const YAML::Node& root) const {
    ServerConfig config;
    const Value top{root, root.Mark(), ""};
    if (!root.IsNull() && !root.IsMap()) {
      return Error(top, absl::StrFormat("expected a mapping of sections at "
                                        "the top level, got %s",
                                        Describe(root)));
    }
    ASSIGN_OR_RETURN(std::vector<Field> fields, ReadMapping(top, kRootKeys));
    std::optional<Value> listen_value;
    std::optional<Value> http_value;
    std::optional<Value> server_value;
    for (const Field& f : fields) {
      if (f.key == "server") {
        server_value = f.value;
        RETURN_IF_ERROR(
            ReadServer(f.value, &config, &listen_value, &http_value));
      } else if (f.key == "policy") {
        RETURN_IF_ERROR(ReadPolicy(f, &config.policy));
      } else if (f.key == "allowlist") {
        RETURN_IF_ERROR(ReadAllowlist(f.value, &config.allowlist_seed));
      } else if (f.key == "retention") {
        RETURN_IF_ERROR(
            ReadSection(f.value, kRetentionKeys, &config.retention));
      } else if (f.key == "housekeeping_interval") {
        ASSIGN_OR_RETURN(
            config.housekeeping_interval,
            DurationIn(f.value, kMinHousekeeping, kMaxHousekeeping));
      } else if (f.key == "distribution") {
        RETURN_IF_ERROR(
            ReadSection(f.value, kDistributionKeys, &config.distribution));
      } else if (f.key == "limits") {
        RETURN_IF_ERROR(ReadSection(f.value, kLimitsKeys, &config.limits));
      } else if (f.key == "admin") {
        ASSIGN_OR_RETURN(const std::vector<Field> admin_fields,
                         ReadMapping(f.value, kAdminKeys));
        for (const Field& a : admin_fields) {
          ASSIGN_OR_RETURN(config.admin.bootstrap_token_file, String(a.value));
        }
      } else if (f.key == "tls") {
        RETURN_IF_ERROR(ReadTls(f.value, &config.tls));
      }
    }
    if (absl::Status s = CheckListenPair(config.listen, config.http_listen);
        !s.ok()) {
      const std::optional<Value>& where =
          http_value ? http_value
                     : (listen_value ? listen_value : server_value);
      return where ? Error(*where, MessageOf(s)) : s;
    }
    return config;
  }

 private:
  absl::Status ErrorAt(const YAML::Mark& mark, std::string_view path,
                       std::string_view message) const {
    std::string where = source_;
    if (!mark.is_null()) {
      where += absl::StrFormat(":%d:%d", mark.line + 1, mark.column + 1);
    }
    if (path.empty()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: %s", where, message));
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s: %s", where, path, message));
  }
  absl::Status Error(const Value& v, std::string_view message) const {
    return ErrorAt(v.mark, v.path, message);
  }

  static std::string Describe(const YAML::Node& n) {
    switch (n.Type()) {
      case YAML::NodeType::Map:
        return "a mapping";
      case YAML::NodeType::Sequence:
        return "a list";
      case YAML::NodeType::Scalar:
        return n.Tag() == "!" ? absl::StrFormat("the quoted string %s",
                                                QuoteShort(n.Scalar()))
                              : QuoteShort(n.Scalar());
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        break;
    }
    return "null";
  }

  static absl::Status CheckTag(const YAML::Node& n) {
    // "?" = plain/untagged, "!" = quoted or block scalar; both are ordinary
    // YAML. Explicit tags (!!int, !custom) are not part of the format.
    if (n.IsNull() || n.Tag() == "?" || n.Tag() == "!") {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "YAML tags are not supported (got %s)", Quote(n.Tag(), 40)));
  }

  // OK if `v` is an untagged scalar; otherwise "expected <what>, got ...".
  absl::Status CheckScalar(const Value& v, std::string_view what) const {
    if (v.node.IsNull()) {
      return Error(v, absl::StrFormat("missing value (expected %s)", what));
    }
    if (!v.node.IsScalar()) {
      return Error(
          v, absl::StrFormat("expected %s, got %s", what, Describe(v.node)));
    }
    if (absl::Status s = CheckTag(v.node); !s.ok()) {
      return Error(v, MessageOf(s));
    }
    return absl::OkStatus();
  }

  // Reads a section. Null (an empty section) yields no fields. Rejects
  // non-mappings, non-string, unknown and duplicate keys.
  absl::StatusOr<std::vector<Field>> ReadMapping(
      const Value& v, std::span<const std::string_view> known) const {
    std::vector<Field> fields;
    if (v.node.IsNull()) {
      return fields;
    }
    if (!v.node.IsMap()) {
      return Error(
          v, absl::StrFormat("expected a mapping, got %s", Describe(v.node)));
    }
    if (absl::Status s = CheckTag(v.node); !s.ok()) {
      return Error(v, MessageOf(s));
    }
    for (auto it = v.node.begin(); it != v.node.end(); ++it) {
      // Copies: the iterator's pair is a temporary proxy.
      const YAML::Node key_node = it->first;
      const YAML::Mark key_mark = key_node.Mark();
      if (!key_node.IsScalar() || !CheckTag(key_node).ok()) {
        return ErrorAt(key_mark, v.path,
                       absl::StrFormat("keys must be plain strings, got %s",
                                       Describe(key_node)));
      }
      const std::string& key = key_node.Scalar();
      const std::string path = JoinPath(v.path, key);
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        return ErrorAt(
            key_mark, path,
            absl::StrFormat("unknown key%s", Suggest(v.path, key, known)));
      }
      for (const Field& f : fields) {
        if (f.key == key) {
          return ErrorAt(
              key_mark, path,
              absl::StrFormat("duplicate key (first at %d:%d)",
                              f.key_mark.line + 1, f.key_mark.column + 1));
        }
      }
      const YAML::Node value = it->second;
      // A null value ("key:" with nothing after it) has no useful mark of its
      // own: point at the key.
      fields.push_back(
          Field{key, key_mark,
                Value{value, value.IsNull() ? key_mark : value.Mark(), path}});
    }
    return fields;
  }

  // " (did you mean X?)", " (valid keys: ...)" or "".
  static std::string Suggest(std::string_view section, std::string_view key,
                             std::span<const std::string_view> known) {
    if (key.size() <= 64) {
      const std::string lower = AsciiLower(key);
      std::string_view best;
      size_t best_distance = std::numeric_limits<size_t>::max();
      for (std::string_view k : known) {
        const size_t d = EditDistance(lower, k);
        if (d < best_distance) {
          best = k;
          best_distance = d;
        }
      }
      const size_t allowed =
          std::clamp<size_t>(std::max(key.size(), best.size()) / 3, 1, 3);
      if (best_distance <= allowed) {
        return absl::StrFormat(" (did you mean %s?)", best);
      }
      // Right key, wrong section ("half_life" at the top level).
      for (const std::string& full : ServerConfigKeys()) {
        std::string_view last = full;
        if (const size_t dot = last.rfind('.'); dot != std::string_view::npos) {
          last.remove_prefix(dot + 1);
        }
        std::string_view parent(full.data(), full.size() - last.size());
        if (!parent.empty()) {
          parent.remove_suffix(1);
        }
        if (last == lower && parent != section) {
          return absl::StrFormat(" (did you mean %s?)", full);
        }
      }
    }
    if (known.size() <= 8) {
      std::string list;
      for (std::string_view k : known) {
        list += list.empty() ? "" : ", ";
        list += k;
      }
      return absl::StrFormat(" (valid keys: %s)", list);
    }
    return " (see docs/configuration.md)";
  }

  // --- Typed values ---------------------------------------------------------

  // A string without control characters (YAML escapes can produce them) and
  // valid UTF-8.
  absl::StatusOr<std::string> String(const Value& v) const {
    RETURN_IF_ERROR(CheckScalar(v, "a string"));
    const std::string& s = v.node.Scalar();
    std::string why;
    if (const size_t bad = FindBadByte(s, /*allow_whitespace=*/false, &why);
        bad != std::string_view::npos) {
      return Error(v,
                   absl::StrFormat("%s at offset %d of the string", why, bad));
    }
    return s;
  }

  // true / false (YAML 1.2 core schema spellings only).
  absl::StatusOr<bool> Bool(const Value& v) const {
    RETURN_IF_ERROR(CheckScalar(v, "true or false"));
    const std::string& s = v.node.Scalar();
    if (v.node.Tag() == "?" && (s == "true" || s == "True" || s == "TRUE")) {
      return true;
    }
    if (v.node.Tag() == "?" && (s == "false" || s == "False" || s == "FALSE")) {
      return false;
    }
    return Error(
        v, absl::StrFormat("expected true or false, got %s", QuoteShort(s)));
  }

  absl::StatusOr<int64_t> Integer(const Value& v, int64_t min,
                                  int64_t max) const {
    RETURN_IF_ERROR(CheckScalar(v, "an integer"));
    const std::string& s = v.node.Scalar();
    std::string_view digits = s;
    ConsumePrefix(&digits, "-");
    const bool all_digits =
        !digits.empty() && std::all_of(digits.begin(), digits.end(), IsDigit);
    if (v.node.Tag() != "?" || !all_digits ||
        (digits.size() > 1 && digits[0] == '0')) {
      std::string hint;
      if (v.node.Tag() == "!") {
        hint = " (remove the quotes)";
      } else if (all_digits) {
        hint = " (no leading zeros)";
      }
      return Error(v, absl::StrFormat("expected an integer, got %s%s",
                                      Describe(v.node), hint));
    }
    int64_t value = 0;
    const auto [end, ec] =
        std::from_chars(s.data(), s.data() + s.size(), value);
    if (ec != std::errc() || end != s.data() + s.size() || value < min ||
        value > max) {
      return Error(v, absl::StrFormat("must be between %d and %d (got %s)", min,
                                      max, Abbreviate(s, 40)));
    }
    return value;
  }

  absl::StatusOr<double> Number(const Value& v) const {
    RETURN_IF_ERROR(CheckScalar(v, "a number"));
    const std::string& s = v.node.Scalar();
    double value = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value,
                                           std::chars_format::general);
    if (v.node.Tag() != "?" || s.empty() || ec != std::errc() ||
        end != s.data() + s.size() || !std::isfinite(value)) {
      return Error(v,
                   absl::StrFormat(
                       "expected a finite number, got %s%s", Describe(v.node),
                       v.node.Tag() == "!" ? " (remove the quotes)" : ""));
    }
    return value;
  }

  absl::StatusOr<absl::Duration> DurationIn(const Value& v, absl::Duration min,
                                            absl::Duration max) const {
    RETURN_IF_ERROR(CheckScalar(v, "a duration such as \"30m\""));
    absl::StatusOr<absl::Duration> d = ParseConfigDuration(v.node.Scalar());
    if (!d.ok()) {
      return Error(v, MessageOf(d.status()));
    }
    if (*d < min || *d > max) {
      return Error(v, absl::StrFormat("must be between %s and %s (got %s)",
                                      FormatConfigDuration(min),
                                      FormatConfigDuration(max),
                                      FormatConfigDuration(*d)));
    }
    return *d;
  }

  absl::StatusOr<std::vector<int>> IntList(const Value& v, int64_t min,
                                           int64_t max) const {
    if (v.node.IsNull()) {
      return Error(v,
                   "missing value (expected a list of integers such as [24], "
                   "or [] for none)");
    }
    if (!v.node.IsSequence()) {
      return Error(v, absl::StrFormat("expected a list of integers, got %s",
                                      Describe(v.node)));
    }
    if (absl::Status s = CheckTag(v.node); !s.ok()) {
      return Error(v, MessageOf(s));
    }
    std::vector<int> list;
    int index = 0;
    for (auto it = v.node.begin(); it != v.node.end(); ++it, ++index) {
      const Value item{*it, it->IsNull() ? v.mark : it->Mark(),
                       absl::StrFormat("%s[%d]", v.path, index)};
      ASSIGN_OR_RETURN(const int64_t n, Integer(item, min, max));
      list.push_back(static_cast<int>(n));
    }
    return list;
  }

  // Reads one table-driven key into `*s`.
  template <typename S>
  absl::Status ReadKey(const Value& v, const Key<S>& key, S* s) const {
    return std::visit(
        [&](auto member) -> absl::Status {
          using T = std::remove_reference_t<decltype(s->*member)>;
          if constexpr (std::is_same_v<T, absl::Duration>) {
            ASSIGN_OR_RETURN(s->*member, DurationIn(v, absl::Seconds(key.min),
                                                    absl::Seconds(key.max)));
          } else if constexpr (std::is_same_v<T, double>) {
            ASSIGN_OR_RETURN(s->*member, Number(v));
          } else if constexpr (std::is_same_v<T, std::vector<int>>) {
            ASSIGN_OR_RETURN(s->*member, IntList(v, key.min, key.max));
          } else {
            ASSIGN_OR_RETURN(const int64_t n, Integer(v, key.min, key.max));
            s->*member = static_cast<T>(n);
          }
          return absl::OkStatus();
        },
        key.member);
  }

  // Reads a table-driven section into `*s` (keys not given keep their
  // value); returns the fields read.
  template <typename S, size_t N>
  absl::StatusOr<std::vector<Field>> ReadKeys(const Value& section,
                                              const Key<S> (&keys)[N],
                                              S* s) const {
    const std::vector<std::string_view> names = NamesOf(keys);
    ASSIGN_OR_RETURN(std::vector<Field> fields, ReadMapping(section, names));
    for (const Field& f : fields) {
      for (const Key<S>& k : keys) {
        if (k.name == f.key) {
          RETURN_IF_ERROR(ReadKey(f.value, k, s));
        }
      }
    }
    return fields;
  }
  template <typename S, size_t N>
  absl::Status ReadSection(const Value& section, const Key<S> (&keys)[N],
                           S* s) const {
    return ReadKeys(section, keys, s).status();
  }

  // --- Sections -------------------------------------------------------------

  // Sets *listen_value / *http_value to the values read, for errors about
  // the pair.
  absl::Status ReadServer(const Value& section, ServerConfig* config,
                          std::optional<Value>* listen_value,
                          std::optional<Value>* http_value) const {
    ASSIGN_OR_RETURN(const std::vector<Field> fields,
                     ReadMapping(section, kServerKeys));
    for (const Field& f : fields) {
      const Value& v = f.value;
      if (f.key == "listen" || f.key == "http_listen") {
        ASSIGN_OR_RETURN(const std::string text, String(v));
        absl::StatusOr<HostPort> hp = ParseHostPort(text);
        if (!hp.ok()) {
          return Error(v, MessageOf(hp.status()));
        }
        (f.key == "listen" ? config->listen : config->http_listen) = *hp;
        (f.key == "listen" ? *listen_value : *http_value) = v;
      } else if (f.key == "db") {
        ASSIGN_OR_RETURN(const std::string text, String(v));
        absl::StatusOr<DatabaseTarget> target = ParseDatabaseTarget(text);
        if (!target.ok()) {
          return Error(v, MessageOf(target.status()));
        }
        config->database = *std::move(target);
      } else if (f.key == "insecure") {
        ASSIGN_OR_RETURN(config->insecure, Bool(v));
      } else if (f.key == "allow_insecure_non_loopback") {
        ASSIGN_OR_RETURN(config->allow_insecure_non_loopback, Bool(v));
      } else if (f.key == "reflection") {
        ASSIGN_OR_RETURN(config->reflection, Bool(v));
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadTls(const Value& section, ServerConfig::Tls* tls) const {
    ASSIGN_OR_RETURN(const std::vector<Field> fields,
                     ReadMapping(section, kTlsKeys));
    for (const Field& f : fields) {
      if (f.key == "cert_ttl") {
        ASSIGN_OR_RETURN(tls->cert_ttl,
                         DurationIn(f.value, kMinCertTtl, kMaxCertTtl));
        continue;
      }
      ASSIGN_OR_RETURN(std::string path, String(f.value));
      if (path.size() > 4096) {  // "" = not set
        return Error(f.value, "a file path is at most 4096 bytes");
      }
      if (f.key == "cert_file") {
        tls->cert_file = std::move(path);
      } else if (f.key == "key_file") {
        tls->key_file = std::move(path);
      } else if (f.key == "client_ca_file") {
        tls->client_ca_file = std::move(path);
      } else if (f.key == "ca_key_file") {
        tls->ca_key_file = std::move(path);
      }
    }
    return absl::OkStatus();
  }

  absl::Status ReadPolicy(const Field& section, Policy* policy) const {
    ASSIGN_OR_RETURN(const std::vector<Field> fields,
                     ReadKeys(section.value, kPolicyKeys, policy));
    // Range checks live in ValidatePolicy ("policy.<field> must be ...");
    // point its verdict at the offending key.
    const absl::Status valid = ValidatePolicy(*policy);
    if (valid.ok()) {
      return valid;
    }
    std::string_view message = MessageOf(valid);
    if (!ConsumePrefix(&message, "policy.")) {
      return Error(section.value, message);
    }
    const size_t space = message.find(' ');
    const std::string_view field = message.substr(0, space);
    const std::string_view rule =
        space == std::string_view::npos ? "" : message.substr(space + 1);
    for (const Field& f : fields) {
      if (f.key == field) {
        return Error(f.value, rule);
      }
    }
    // The failing field kept its default; another key made it invalid
    // (e.g. ban_base above the default ban_max).
    return ErrorAt(section.key_mark, absl::StrFormat("policy.%s", field),
                   absl::StrFormat("%s; policy.%s is not set, so its default "
                                   "applies: set it too",
                                   rule, field));
  }

  absl::Status ReadAllowlist(const Value& v,
                             std::vector<AllowEntry>* entries) const {
    if (v.node.IsNull()) {
      return absl::OkStatus();
    }
    if (!v.node.IsSequence()) {
      return Error(v, absl::StrFormat("expected a list of entries "
                                      "({cidr, expires, comment}), got %s",
                                      Describe(v.node)));
    }
    if (absl::Status s = CheckTag(v.node); !s.ok()) {
      return Error(v, MessageOf(s));
    }
    std::map<IpPrefix, std::pair<int, YAML::Mark>> seen;
    int index = 0;
    for (auto it = v.node.begin(); it != v.node.end(); ++it, ++index) {
      const Value item{*it, it->IsNull() ? v.mark : it->Mark(),
                       absl::StrFormat("%s[%d]", v.path, index)};
      if (!item.node.IsMap()) {
        return Error(
            item, absl::StrFormat("expected a mapping with cidr (and optional "
                                  "expires, comment), got %s",
                                  Describe(item.node)));
      }
      ASSIGN_OR_RETURN(const std::vector<Field> fields,
                       ReadMapping(item, kAllowKeys));
      AllowEntry entry;
      entry.actor = std::string(kAllowlistActor);
      bool has_cidr = false;
      for (const Field& f : fields) {
        if (f.key == "cidr") {
          ASSIGN_OR_RETURN(const std::string text, String(f.value));
          // Checked here first: IpPrefix::FromString overflows an int on a
          // long non-numeric length (signed overflow; reported upstream).
          if (const size_t slash = text.find('/'); slash != std::string::npos) {
            const std::string_view length =
                std::string_view(text).substr(slash + 1);
            if (length.empty() || length.size() > 3 ||
                !std::all_of(length.begin(), length.end(), IsDigit)) {
              return Error(f.value,
                           absl::StrFormat("invalid prefix length in %s",
                                           QuoteShort(text)));
            }
          }
          absl::StatusOr<IpPrefix> prefix = IpPrefix::FromString(text);
          if (!prefix.ok()) {
            return Error(f.value, MessageOf(prefix.status()));
          }
          if (prefix->length() == 0) {
            return Error(f.value,
                         "a /0 entry would allowlist every address and "
                         "disable banning");
          }
          if (auto [pos, inserted] =
                  seen.try_emplace(*prefix, index, f.value.mark);
              !inserted) {
            return Error(f.value, absl::StrFormat(
                                      "duplicate allowlist entry %s (first at "
                                      "allowlist[%d], %d:%d)",
                                      prefix->ToString(), pos->second.first,
                                      pos->second.second.line + 1,
                                      pos->second.second.column + 1));
          }
          entry.prefix = *prefix;
          has_cidr = true;
        } else if (f.key == "comment") {
          ASSIGN_OR_RETURN(entry.comment, String(f.value));
          if (entry.comment.size() > kMaxCommentBytes) {
            return Error(f.value, absl::StrFormat("longer than %d bytes (%d)",
                                                  kMaxCommentBytes,
                                                  entry.comment.size()));
          }
        } else if (f.key == "expires") {
          ASSIGN_OR_RETURN(const std::string text, String(f.value));
          absl::Time t;
          std::string err;
          // absl::ParseTime also accepts "infinite-future": only finite
          // times in years 1970..9999 are meaningful here.
          if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
              t < absl::UnixEpoch() ||
              t >= absl::FromCivil(absl::CivilSecond(10000, 1, 1, 0, 0, 0),
                                   absl::UTCTimeZone())) {
            return Error(f.value,
                         absl::StrFormat("expected an RFC 3339 time such as "
                                         "\"2030-01-01T00:00:00Z\", got %s",
                                         QuoteShort(text)));
          }
          entry.expires = t;
        }
      }
      if (!has_cidr) {
        return Error(item, "missing required key cidr");
      }
      entries->push_back(std::move(entry));
    }
    return absl::OkStatus();
  }

  std::string source_;
};

// ---------------------------------------------------------------------------
// Writing YAML.

template <typename S>
std::string FormatKeyValue(const Key<S>& key, const S& s) {
  return std::visit(
      [&](auto member) -> std::string {
        using T = std::remove_cvref_t<decltype(s.*member)>;
        const T& value = s.*member;
        if constexpr (std::is_same_v<T, absl::Duration>) {
          return FormatConfigDuration(value);
        } else if constexpr (std::is_same_v<T, double>) {
          return FormatDouble(value);
        } else if constexpr (std::is_same_v<T, std::vector<int>>) {
          std::string list = "[";
          for (size_t i = 0; i < value.size(); ++i) {
            list += absl::StrFormat("%s%d", i == 0 ? "" : ", ", value[i]);
          }
          return list + "]";
        } else {
          return absl::StrFormat("%d", value);
        }
      },
      key.member);
}

template <typename S, size_t N>
void WriteSection(std::string_view name, const Key<S> (&keys)[N], const S& s,
                  std::string* yaml) {
  *yaml += absl::StrFormat("%s:\n", name);
  for (const Key<S>& k : keys) {
    *yaml += absl::StrFormat("  %s: %s\n", k.name, FormatKeyValue(k, s));
  }
}

// " (tabs cannot indent YAML)" when the line of `mark` is indented with a
// tab, the usual cause of yaml-cpp's terse "illegal map value".
std::string TabHint(std::string_view text, const YAML::Mark& mark) {
  if (mark.is_null() || mark.line < 0) {
    return "";
  }
  size_t start = 0;
  for (int line = 0; line < mark.line; ++line) {
    start = text.find('\n', start);
    if (start == std::string_view::npos) {
      return "";
    }
    ++start;
  }
  for (size_t i = start; i < text.size() && (text[i] == ' ' || text[i] == '\t');
       ++i) {
    if (text[i] == '\t') {
      return " (a tab indents this line; YAML indents with spaces only)";
    }
  }
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------
// DatabaseTarget

std::string DatabaseTarget::ToLogString() const {
  if (kind == Kind::kSqlite) {
    return absl::StrFormat("sqlite:%s", sqlite_path);
  }
  if (pg_dsn.starts_with("postgresql://") ||
      pg_dsn.starts_with("postgres://")) {
    return RedactPostgresUri(pg_dsn);
  }
  absl::StatusOr<std::vector<Keyword>> words = ParseConninfo(pg_dsn);
  if (!words.ok()) {
    return "postgresql:password=***";
  }
  std::string text = "postgresql:";
  for (size_t i = 0; i < words->size(); ++i) {
    const Keyword& w = (*words)[i];
    text += absl::StrFormat(
        "%s%s=%s", i == 0 ? "" : " ", w.key,
        IsSecretName(w.key) ? "***" : QuoteConninfoValue(w.value));
  }
  return text;
}

absl::StatusOr<DatabaseTarget> ParseDatabaseTarget(std::string_view text) {
  constexpr std::string_view kForms =
      "expected sqlite:PATH, a postgresql:// or postgres:// URI, or "
      "postgresql:KEY=VALUE ...";
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("database is empty; %s", kForms));
  }
  std::string why;
  if (FindBadByte(text, /*allow_whitespace=*/false, &why) !=
      std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("database contains a %s; %s",
                        why.starts_with("invalid") ? "invalid UTF-8 sequence"
                                                   : "control character",
                        kForms));
  }
  DatabaseTarget target;
  std::string_view rest = text;
  if (ConsumePrefix(&rest, "sqlite:")) {
    if (rest.starts_with("//")) {
      return absl::InvalidArgumentError(
          "sqlite: takes a file path, not a URL (sqlite:rampart.db or "
          "sqlite:/var/lib/rampart/rampart.db)");
    }
    target.kind = DatabaseTarget::Kind::kSqlite;
    target.sqlite_path = rest.empty() ? "rampart.db" : std::string(rest);
    return target;
  }
  target.kind = DatabaseTarget::Kind::kPostgres;
  target.sqlite_path.clear();
  if (text.starts_with("postgresql://") || text.starts_with("postgres://")) {
    if (const size_t space = text.find(' '); space != std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "PostgreSQL URI has a space at offset %d (percent-encode it as "
          "%%20)",
          space));
    }
    target.pg_dsn = std::string(text);
    return target;
  }
  if (ConsumePrefix(&rest, "postgresql:")) {
    RETURN_IF_ERROR(ParseConninfo(rest).status());
    target.pg_dsn = std::string(StripWhitespace(rest));
    return target;
  }
  // Quote only a scheme-looking prefix: the rest may be a connection string
  // with a password in it.
  const size_t colon = text.find(':');
  const std::string_view scheme = text.substr(0, colon);
  const bool scheme_like =
      colon != std::string_view::npos && !scheme.empty() &&
      scheme.size() <= 20 && IsAlpha(scheme[0]) &&
      std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return IsAlpha(c) || IsDigit(c) || c == '+' || c == '-' || c == '.';
      });
  if (scheme == "postgres") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the key=value form is prefixed postgresql: (not postgres:); %s",
        kForms));
  }
  if (scheme_like) {
    return absl::InvalidArgumentError(
        absl::StrFormat("unsupported database scheme %s; %s",
                        QuoteShort(text.substr(0, colon + 1)), kForms));
  }
  if (text.find('=') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "prefix a libpq key=value string with postgresql:; %s", kForms));
  }
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s has no scheme (did you mean sqlite:%s?); %s",
                        QuoteShort(text), Abbreviate(text, 64), kForms));
  }
  return absl::InvalidArgumentError(
      absl::StrFormat("unrecognised database; %s", kForms));
}

// ---------------------------------------------------------------------------
// HostPort

bool HostPort::IsLoopback() const {
  if (const std::optional<IpAddress> addr = ip()) {
    return addr->IsLoopback();
  }
  return host == "localhost";
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) {
    return absl::StrFormat("[%s]:%d", host, port);
  }
  return absl::StrFormat("%s:%d", host, port);
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("invalid address %s: %s", QuoteShort(text), why));
  };
  if (text.empty()) {
    return bad("empty; expected HOST:PORT such as 127.0.0.1:7443");
  }
  HostPort hp;
  std::string_view port_text;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return bad("missing \"]\" after the IPv6 address");
    }
    const std::string_view host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!ConsumePrefix(&rest, ":")) {
      return bad("expected :PORT after \"]\"");
    }
    if (host.find('%') != std::string_view::npos) {
      return bad("zone ids (%eth0) are not supported; use a global address");
    }
    const std::optional<IpAddress> addr = IpAddress::Parse(host);
    if (!addr || host.find(':') == std::string_view::npos) {
      return bad("not a valid IPv6 address inside [...]");
    }
    hp.host = addr->ToString();
    port_text = rest;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return bad("missing :PORT (e.g. 127.0.0.1:7443)");
    }
    if (text.find(':') != colon) {
      return bad("an IPv6 address needs brackets: [ADDRESS]:PORT");
    }
    const std::string_view host = text.substr(0, colon);
    if (host.empty()) {
      return bad("missing host (use 0.0.0.0 or [::] for every address)");
    }
    if (host.find('%') != std::string_view::npos) {
      return bad("host is neither an IP address nor a DNS name");
    }
    if (const std::optional<IpAddress> addr = IpAddress::Parse(host)) {
      hp.host = addr->ToString();
    } else if (IsDnsName(host)) {
      hp.host = AsciiLower(host);
    } else {
      return bad("host is neither an IP address nor a DNS name");
    }
    port_text = text.substr(colon + 1);
  }
  int port = 0;
  const bool digits_ok =
      !port_text.empty() && port_text.size() <= 5 &&
      std::all_of(port_text.begin(), port_text.end(), IsDigit);
  if (digits_ok) {
    std::from_chars(port_text.data(), port_text.data() + port_text.size(),
                    port);
  }
  if (!digits_ok || port > 65535) {
    return bad("port must be a number from 0 to 65535");
  }
  hp.port = port;
  return hp;
}

// ---------------------------------------------------------------------------
// Durations

absl::StatusOr<absl::Duration> ParseConfigDuration(std::string_view text) {
  return ParseDuration(text, {.max = kMaxConfigDuration});
}

std::string FormatConfigDuration(absl::Duration d) {
  if (d > kMaxConfigDuration) {
    return absl::FormatDuration(d);
  }
  return FormatDurationUnits(d);
}

// ---------------------------------------------------------------------------
// Loading

absl::StatusOr<ServerConfig> LoadServerConfig(std::string_view yaml_text,
                                              std::string_view source_name) {
  const std::string source =
      source_name.empty() ? std::string("<config>") : std::string(source_name);
  auto at = [&](const YAML::Mark& mark, std::string_view message) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s:%d:%d: %s", source, mark.line + 1, mark.column + 1, message));
  };
  if (yaml_text.size() > kMaxConfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: config is %d bytes; the limit is %d bytes", source,
                        yaml_text.size(), kMaxConfigBytes));
  }
  std::string why;
  if (const size_t bad =
          FindBadByte(yaml_text, /*allow_whitespace=*/true, &why);
      bad != std::string_view::npos) {
    const std::string_view before = yaml_text.substr(0, bad);
    const size_t line = std::count(before.begin(), before.end(), '\n') + 1;
    const size_t line_start = before.rfind('\n');
    const size_t column =
        line_start == std::string_view::npos ? bad + 1 : bad - line_start;
    return absl::InvalidArgumentError(
        absl::StrFormat("%s:%d:%d: %s; the config must be UTF-8 text", source,
                        line, column, why));
  }
  try {
    // Pass 1: parse to events only, enforcing the document bounds.
    {
      std::istringstream stream{std::string(yaml_text)};
      YAML::Parser parser(stream);
      BoundsChecker checker;
      while (parser.HandleNextDocument(checker)) {
      }
      if (checker.documents() == 0) {
        return ServerConfig{};
      }
    }
    // Pass 2: build the (now bounded) node tree and read the schema.
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    return ConfigReader(source).Read(root);
  } catch (const BoundExceeded& e) {
    return at(e.mark, e.message);
  } catch (const YAML::DeepRecursion& e) {
    return at(e.mark, "YAML nesting too deep");
  } catch (const YAML::ParserException& e) {
    return at(e.mark, absl::StrFormat("YAML syntax error: %s%s", e.msg,
                                      TabHint(yaml_text, e.mark)));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: YAML error: %s", source, e.what()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%s: out of memory while parsing", source));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrFormat(
        "%s: unexpected error while parsing: %s", source, e.what()));
  }
}

absl::StatusOr<ServerConfig> LoadServerConfigFile(const std::string& path) {
  auto os_error = [&](std::string_view what, int err) {
    return absl::Status(absl::ErrnoToStatusCode(err),
                        absl::StrFormat("%s: cannot %s config file: %s", path,
                                        what, std::strerror(err)));
  };
  // O_NONBLOCK: opening a FIFO must not hang start-up (it is rejected below).
  const int fd =
      ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    return os_error("open", errno);
  }
  struct Closer {
    int to_close;
    ~Closer() { ::close(to_close); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    return os_error("stat", errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: not a regular file", path));
  }
  auto too_large = [&](int64_t size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: config is %d bytes; the limit is %d bytes", path,
                        size, kMaxConfigBytes));
  };
  if (st.st_size > static_cast<off_t>(kMaxConfigBytes)) {
    return too_large(st.st_size);
  }
  // Read at most one byte past the limit: the file may grow meanwhile.
  std::string text(kMaxConfigBytes + 1, '\0');
  size_t used = 0;
  while (used < text.size()) {
    const ssize_t n = ::read(fd, text.data() + used, text.size() - used);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return os_error("read", errno);
    }
    if (n == 0) {
      break;
    }
    used += static_cast<size_t>(n);
  }
  if (used > kMaxConfigBytes) {
    return too_large(static_cast<int64_t>(used));
  }
  text.resize(used);
  return LoadServerConfig(text, path);
}

// ---------------------------------------------------------------------------
// Flags

absl::Status ApplyFlagOverrides(const ServerFlags& flags,
                                ServerConfig* config) {
  auto flag_error = [](std::string_view flag, const absl::Status& s) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s: %s", flag, MessageOf(s)));
  };
  HostPort listen = config->listen;
  HostPort http_listen = config->http_listen;
  DatabaseTarget database = config->database;
  if (flags.listen) {
    absl::StatusOr<HostPort> hp = ParseHostPort(*flags.listen);
    if (!hp.ok()) {
      return flag_error("--listen", hp.status());
    }
    listen = *std::move(hp);
  }
  if (flags.http_listen) {
    absl::StatusOr<HostPort> hp = ParseHostPort(*flags.http_listen);
    if (!hp.ok()) {
      return flag_error("--http-listen", hp.status());
    }
    http_listen = *std::move(hp);
  }
  if (flags.db) {
    absl::StatusOr<DatabaseTarget> target = ParseDatabaseTarget(*flags.db);
    if (!target.ok()) {
      return flag_error("--db", target.status());
    }
    database = *std::move(target);
  }
  if (absl::Status s = CheckListenPair(listen, http_listen); !s.ok()) {
    return flag_error(flags.http_listen ? "--http-listen" : "--listen", s);
  }
  config->listen = std::move(listen);
  config->http_listen = std::move(http_listen);
  config->database = std::move(database);
  if (flags.bootstrap_token_file) {
    config->admin.bootstrap_token_file = *flags.bootstrap_token_file;
  }
  config->insecure = config->insecure || flags.insecure;
  config->allow_insecure_non_loopback =
      config->allow_insecure_non_loopback || flags.allow_insecure_non_loopback;
  return absl::OkStatus();
}

absl::Status ValidateTransport(const ServerConfig& config) {
  const ServerConfig::Tls& tls = config.tls;
  const bool any_tls = !tls.cert_file.empty() || !tls.key_file.empty() ||
                       !tls.client_ca_file.empty() || !tls.ca_key_file.empty();
  if (config.insecure) {
    if (any_tls) {
      return absl::InvalidArgumentError(
          "--insecure and the tls section exclude each other: remove one");
    }
    if (!config.listen.IsLoopback() && !config.allow_insecure_non_loopback) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "--insecure on %s, which is not a loopback address, would let "
          "anyone on the network forge agents and make admin calls; configure "
          "the tls section (docs/security.md), or listen on 127.0.0.1, or add "
          "--allow-insecure-non-loopback if a trusted network really needs "
          "plaintext",
          config.listen.ToString()));
    }
    return absl::OkStatus();
  }
  if (tls.cert_file.empty() || tls.key_file.empty() ||
      tls.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "no TLS material: set tls.cert_file, tls.key_file and "
        "tls.client_ca_file (deploy/make-certs.sh makes them; "
        "docs/security.md), or pass --insecure for plaintext on loopback");
  }
  return absl::OkStatus();
}

absl::StatusOr<ServerConfig> ResolveServerConfig(const ServerFlags& flags) {
  ServerConfig config;
  if (flags.config) {
    ASSIGN_OR_RETURN(config, LoadServerConfigFile(*flags.config));
  }
  RETURN_IF_ERROR(ApplyFlagOverrides(flags, &config));
  return config;
}

// ---------------------------------------------------------------------------
// Products

CorrelatorOptions MakeCorrelatorOptions(const ServerConfig& config) {
  return CorrelatorOptions{.policy = config.policy};
}

BanDistributor::Options MakeBanDistributorOptions(const ServerConfig& config) {
  return config.distribution;
}

std::vector<AllowEntry> AllowlistSeedToApply(
    const std::vector<AllowEntry>& seed,
    const std::vector<AllowEntry>& current) {
  std::map<IpPrefix, const AllowEntry*> live;
  for (const AllowEntry& e : current) {
    live[e.prefix] = &e;
  }
  std::vector<AllowEntry> changes;
  for (const AllowEntry& e : seed) {
    const auto it = live.find(e.prefix);
    if (it == live.end() || it->second->expires != e.expires ||
        it->second->comment != e.comment) {
      changes.push_back(e);
    }
  }
  return changes;
}

std::string ServerConfigToYaml(const ServerConfig& config) {
  std::string yaml;
  yaml += "server:\n";
  yaml += absl::StrFormat("  listen: %s\n", Quote(config.listen.ToString()));
  yaml += absl::StrFormat("  http_listen: %s\n",
                          Quote(config.http_listen.ToString()));
  yaml += absl::StrFormat("  db: %s\n", Quote(config.database.ToLogString()));
  yaml +=
      absl::StrFormat("  insecure: %s\n", config.insecure ? "true" : "false");
  yaml +=
      absl::StrFormat("  allow_insecure_non_loopback: %s\n",
                      config.allow_insecure_non_loopback ? "true" : "false");
  yaml += absl::StrFormat("  reflection: %s\n",
                          config.reflection ? "true" : "false");
  WriteSection("policy", kPolicyKeys, config.policy, &yaml);
  if (config.allowlist_seed.empty()) {
    yaml += "allowlist: []\n";
  } else {
    yaml += "allowlist:\n";
    for (const AllowEntry& e : config.allowlist_seed) {
      yaml += absl::StrFormat("  - cidr: %s\n", Quote(e.prefix.ToString()));
      if (e.expires) {
        yaml += absl::StrFormat("    expires: %s\n",
                                Quote(FormatRfc3339(*e.expires)));
      }
      if (!e.comment.empty()) {
        yaml += absl::StrFormat("    comment: %s\n", Quote(e.comment));
      }
    }
  }
  WriteSection("retention", kRetentionKeys, config.retention, &yaml);
  yaml += absl::StrFormat("housekeeping_interval: %s\n",
                          FormatConfigDuration(config.housekeeping_interval));
  WriteSection("distribution", kDistributionKeys, config.distribution, &yaml);
  WriteSection("limits", kLimitsKeys, config.limits, &yaml);
  if (!config.admin.bootstrap_token_file.empty()) {
    yaml += absl::StrFormat("admin:\n  bootstrap_token_file: %s\n",
                            Quote(config.admin.bootstrap_token_file));
  }
  yaml += "tls:\n";
  yaml += absl::StrFormat("  cert_file: %s\n", Quote(config.tls.cert_file));
  yaml += absl::StrFormat("  key_file: %s\n", Quote(config.tls.key_file));
  yaml += absl::StrFormat("  client_ca_file: %s\n",
                          Quote(config.tls.client_ca_file));
  yaml += absl::StrFormat("  ca_key_file: %s\n", Quote(config.tls.ca_key_file));
  yaml += absl::StrFormat("  cert_ttl: %s\n",
                          FormatConfigDuration(config.tls.cert_ttl));
  return yaml;
}

std::vector<std::string> ServerConfigKeys() {
  std::vector<std::string> keys;
  for (std::string_view k : kServerKeys) {
    keys.push_back(absl::StrFormat("server.%s", k));
  }
  for (const Key<Policy>& k : kPolicyKeys) {
    keys.push_back(absl::StrFormat("policy.%s", k.name));
  }
  for (std::string_view k : kAllowKeys) {
    keys.push_back(absl::StrFormat("allowlist[].%s", k));
  }
  for (const Key<Retention>& k : kRetentionKeys) {
    keys.push_back(absl::StrFormat("retention.%s", k.name));
  }
  keys.push_back("housekeeping_interval");
  for (const Key<Distribution>& k : kDistributionKeys) {
    keys.push_back(absl::StrFormat("distribution.%s", k.name));
  }
  for (const Key<Limits>& k : kLimitsKeys) {
    keys.push_back(absl::StrFormat("limits.%s", k.name));
  }
  for (std::string_view k : kAdminKeys) {
    keys.push_back(absl::StrFormat("admin.%s", k));
  }
  for (std::string_view k : kTlsKeys) {
    keys.push_back(absl::StrFormat("tls.%s", k));
  }
  return keys;
}

}  // namespace rampart::server
