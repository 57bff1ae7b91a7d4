#include "ctl/cli.h"

#include <algorithm>
#include <exception>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

#include "CLI/CLI.hpp"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "common/ip_address.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/version.h"
#include "ctl/channel.h"
#include "ctl/commands.h"
#include "ctl/duration.h"
#include "ctl/exit_codes.h"
#include "ctl/import_file.h"
#include "ctl/render.h"
#include "ctl/text.h"
#include "rampart/v1/limits.h"

namespace rampart::ctl {
namespace {

using Action = std::function<int(AdminCommands&)>;
using Builder = std::function<absl::StatusOr<Action>()>;

constexpr absl::Duration kMaxBanDuration = absl::Hours(24 * 3650);

absl::Status Usage(std::string message) {
  return absl::InvalidArgumentError(std::move(message));
}

// ---------------------------------------------------------------------------
// Validation of single arguments. Each returns InvalidArgument with a
// message naming the argument.

// An IP or CIDR, canonicalised ("2001:DB8::1" -> "2001:db8::1").
absl::StatusOr<std::string> ParsePrefix(std::string_view what,
                                        std::string_view text) {
  absl::StatusOr<IpPrefix> p = IpPrefix::FromString(StripWhitespace(text));
  if (!p.ok()) {
    return Usage(absl::StrFormat("%s: %s", what, p.status().message()));
  }
  return p->ToString();
}

absl::StatusOr<std::string> ParseSingleIp(std::string_view what,
                                          std::string_view text) {
  if (text.find('/') != std::string_view::npos) {
    return Usage(absl::StrFormat(
        "%s: \"%s\" is a prefix; give a single address (for a prefix use "
        "`bans list --within` or `bans show`)",
        what, SanitizeForTerminal(Abbreviate(text, 60))));
  }
  absl::StatusOr<IpAddress> ip = IpAddress::FromString(StripWhitespace(text));
  if (!ip.ok()) {
    return Usage(absl::StrFormat("%s: %s", what, ip.status().message()));
  }
  return ip->ToString();
}

// A decimal id > 0, or nullopt if `text` is not all digits.
absl::StatusOr<std::optional<uint64_t>> ParseId(std::string_view text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
      })) {
    return std::optional<uint64_t>();
  }
  if (text.size() > 19) {
    return Usage(absl::StrFormat("id %s is too large", text));
  }
  const uint64_t id = std::stoull(std::string(text));
  if (id == 0) {
    return Usage("ids start at 1");
  }
  return std::optional<uint64_t>(id);
}

// Operator text for reasons and comments: valid UTF-8, no control
// characters, at most kMaxReasonBytes, and non-empty if required.
absl::Status CheckText(std::string_view what, std::string_view text,
                       bool required) {
  if (required && StripWhitespace(text).empty()) {
    return Usage(absl::StrFormat("%s is required (1-%d bytes)", what,
                                 v1::kMaxReasonBytes));
  }
  if (text.size() > static_cast<size_t>(v1::kMaxReasonBytes)) {
    return Usage(absl::StrFormat("%s is %d bytes long; at most %d", what,
                                 text.size(), v1::kMaxReasonBytes));
  }
  if (!IsValidUtf8(text)) {
    return Usage(absl::StrFormat("%s is not valid UTF-8", what));
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      return Usage(absl::StrFormat("%s contains a control character", what));
    }
  }
  return absl::OkStatus();
}

// Hello.agent_id syntax: 1-63 bytes of [a-z0-9._-], starting with a letter
// or digit.
absl::Status CheckAgentId(std::string_view id) {
  const auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  };
  const bool ok = !id.empty() && id.size() <= 63 && alnum(id.front()) &&
                  std::all_of(id.begin(), id.end(), [&](char c) {
                    return alnum(c) || c == '.' || c == '_' || c == '-';
                  });
  if (!ok) {
    return Usage(absl::StrFormat(
        "invalid agent name \"%s\": 1-63 characters of a-z, 0-9, '.', '_', "
        "'-', starting with a letter or digit",
        SanitizeForTerminal(Abbreviate(id, 70))));
  }
  return absl::OkStatus();
}

// Hello.site syntax: 0-63 bytes of [A-Za-z0-9._-].
absl::Status CheckSite(std::string_view site) {
  const bool ok =
      site.size() <= 63 && std::all_of(site.begin(), site.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
      });
  if (!ok) {
    return Usage(absl::StrFormat(
        "invalid site \"%s\": at most 63 characters of A-Z, a-z, 0-9, '.', "
        "'_', '-'",
        SanitizeForTerminal(Abbreviate(site, 70))));
  }
  return absl::OkStatus();
}

// A value of an enum by its lower-case short name (EnumName), excluding
// UNSPECIFIED.
template <typename E>
absl::StatusOr<E> ParseEnum(std::string_view what, std::string_view text) {
  const google::protobuf::EnumDescriptor* d =
      google::protobuf::GetEnumDescriptor<E>();
  std::vector<std::string> names;
  for (int i = 0; i < d->value_count(); ++i) {
    const int number = d->value(i)->number();
    if (number == 0) {
      continue;
    }
    std::string name = EnumName(d, number);
    if (name == AsciiLower(text)) {
      return static_cast<E>(number);
    }
    names.push_back(std::move(name));
  }
  std::string list;
  for (const std::string& n : names) {
    list += list.empty() ? n : ", " + n;
  }
  return Usage(absl::StrFormat("%s: unknown value \"%s\" (one of: %s)", what,
                               SanitizeForTerminal(Abbreviate(text, 40)),
                               list));
}

// --since for lists: a duration back from now ("24h") or an RFC 3339 time.
absl::StatusOr<absl::Time> ParseSince(std::string_view text, absl::Time now) {
  absl::Time t;
  std::string why;
  if (absl::ParseTime(absl::RFC3339_full, ToAbsl(text), &t, &why)) {
    return t;
  }
  absl::StatusOr<absl::Duration> d = ParseDuration(text);
  if (!d.ok()) {
    return Usage(absl::StrFormat(
        "--since: \"%s\" is neither a duration (24h, 7d) nor an RFC 3339 "
        "time (2025-01-31T00:00:00Z)",
        SanitizeForTerminal(Abbreviate(text, 40))));
  }
  return now - *d;
}

absl::StatusOr<ListOptions> MakeListOptions(int64_t limit) {
  if (limit < 0) {
    return Usage("--limit: must be >= 0 (0 = all)");
  }
  return ListOptions{.limit = static_cast<size_t>(limit)};
}

// A count flag in [0, max].
absl::StatusOr<uint32_t> CheckCount(std::string_view what, int64_t value,
                                    int64_t max) {
  if (value < 0 || value > max) {
    return Usage(absl::StrFormat("%s: must be 0..%d", what, max));
  }
  return static_cast<uint32_t>(value);
}

// Reads at most `max` bytes; false if the stream holds more.
bool ReadBounded(std::istream& in, size_t max, std::string* text) {
  text->clear();
  char buf[64 * 1024];
  while (in) {
    in.read(buf, sizeof(buf));
    text->append(buf, static_cast<size_t>(in.gcount()));
    if (text->size() > max) {
      return false;
    }
  }
  return true;
}

// After "A subcommand is required": the first word of `args` that names no
// command at its level (e.g. "lst" in `bans lst`), or "" if there is none.
std::string UnknownCommandWord(const CLI::App& root,
                               const std::vector<std::string>& args) {
  const CLI::App* level = &root;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--server" || arg == "--timeout" || arg == "--token" ||
        arg == "--token-file" || arg == "--ca-file" || arg == "--cert" ||
        arg == "--key") {
      ++i;  // skip the value
      continue;
    }
    if (arg.starts_with("-")) {
      continue;
    }
    const std::vector<const CLI::App*> subs =
        level->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) {
      return "";  // a leaf: words are its positionals
    }
    const auto it =
        std::find_if(subs.begin(), subs.end(),
                     [&](const CLI::App* s) { return s->get_name() == arg; });
    if (it == subs.end()) {
      return arg;
    }
    level = *it;
  }
  return "";
}

// ---------------------------------------------------------------------------

// Options of the invocation that are not a command's own.
struct GlobalFlags {
  std::string server;
  bool insecure = false;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  bool json = false;
  std::string timeout = "10s";
  std::string token;
  std::string token_file;
};

// A token as it may travel in gRPC metadata: 1-256 printable ASCII
// characters without spaces.
absl::Status CheckToken(std::string_view source, std::string_view token) {
  if (token.empty() || token.size() > 256) {
    return Usage(
        absl::StrFormat("%s: the token must be 1-256 characters", source));
  }
  for (char c : token) {
    if (c <= ' ' || c >= 0x7f) {
      return Usage(absl::StrFormat(
          "%s: the token may hold only printable ASCII without spaces",
          source));
    }
  }
  return absl::OkStatus();
}

// --token, else the first line of --token-file, else $RAMPART_TOKEN.
absl::StatusOr<std::string> ResolveToken(const GlobalFlags& flags,
                                         const CtlEnvironment& env) {
  if (!flags.token.empty() && !flags.token_file.empty()) {
    return Usage("give --token or --token-file, not both");
  }
  if (!flags.token.empty()) {
    RETURN_IF_ERROR(CheckToken("--token", flags.token));
    return flags.token;
  }
  if (!flags.token_file.empty()) {
    std::ifstream in(flags.token_file);
    std::string line;
    if (!in || !std::getline(in, line)) {
      return Usage(
          absl::StrFormat("--token-file: cannot read %s", flags.token_file));
    }
    std::string token(absl::StripAsciiWhitespace(line));
    RETURN_IF_ERROR(CheckToken("--token-file", token));
    return token;
  }
  if (!env.token.empty()) {
    std::string token(absl::StripAsciiWhitespace(env.token));
    RETURN_IF_ERROR(CheckToken("RAMPART_TOKEN", token));
    return token;
  }
  return std::string();
}

// The parsed, validated invocation.
struct Invocation {
  ChannelOptions channel;
  CommandContext context;
  Action action;
};

// CommandLine owns the CLI11 parser and the flag variables it fills. Each
// command is a leaf with a Builder that, after parsing, validates the flags
// and turns them into an Action (a request bound to an AdminCommands
// method). Thread-safety: not thread-safe; one instance per invocation.
class CommandLine {
 public:
  explicit CommandLine(const CtlEnvironment& env);

  // Parses `args`. Returns the invocation, or the exit code after printing
  // help, the version or a usage error.
  std::variant<Invocation, int> Parse(const std::vector<std::string>& args,
                                      std::ostream& out, std::ostream& err);

 private:
  struct Leaf {
    CLI::App* app;
    Builder build;
  };

  CLI::App* AddGroup(std::string_view name, std::string_view description);
  CLI::App* AddLeaf(CLI::App* parent, std::string_view name,
                    std::string_view description, Builder build);
  void AddListLimit(CLI::App* app);
  // Defines every command; one method per command group.
  void DefineCommands();
  void DefineStatus();
  void DefineBans();
  void DefineIp();
  void DefineAllow();
  void DefineAgents();
  void DefineAccounts();
  void DefineAlerts();
  void DefineReport();
  void DefineExport();
  void DefineImport();
  void DefineAudit();
  absl::Time Now() const { return env_.clock->Now(); }

  // Lifetime flags (--for / --permanent) into a request's oneof.
  template <typename Request>
  absl::Status SetLifetime(Request* request, bool required) const;

  absl::StatusOr<Action> BuildImport();

  const CtlEnvironment& env_;
  CLI::App app_{
      "rampartctl: administer a Rampart estate (bans, allowlist, "
      "agents, alerts, reports)",
      "rampartctl"};
  std::vector<Leaf> leaves_;

  GlobalFlags global_;
  // Command flags. Commands share variables with the same meaning: only one
  // command is parsed per invocation.
  std::string target_;
  std::string for_;
  bool permanent_ = false;
  std::string reason_;
  std::string scope_;
  std::string comment_;
  std::string since_;
  std::string window_;
  std::string site_;
  std::string origin_;
  std::string covering_;
  std::string within_;
  std::string format_;
  std::string output_;
  std::string actor_;
  std::string action_;
  std::string kind_;
  std::string ttl_;
  bool all_ = false;
  bool flag_a_ = false;  // --allow-broad / --forgive / --inactive / ...
  bool dry_run_ = false;
  std::vector<std::string> addresses_;  // agents protect/unprotect
  bool broad_ = false;                  // allow add --broad
  bool override_ = false;               // bans add --override-protected
  bool all_lines_ = false;
  bool csv_ = false;
  bool watch_ = false;
  bool connected_ = false;
  // Numbers are parsed as signed and range-checked here: CLI11 2.1 wraps
  // "-1" into a huge unsigned value.
  int64_t limit_ = 1000;
  int64_t count_ = 0;  // --events / --top / --min-ips
  int64_t after_ = 0;
  OutputFormat output_format_ = OutputFormat::kTable;
};

CommandLine::CommandLine(const CtlEnvironment& env) : env_(env) {
  app_.set_version_flag("--version", "rampartctl " + std::string(kVersion));
  app_.require_subcommand(1);
  // Global flags are accepted after the command too (`bans list --json`).
  app_.fallthrough();
  app_.add_option("--server", global_.server,
                  "Admin API address: HOST:PORT, [IPv6]:PORT or unix:/path "
                  "(default: $RAMPART_SERVER, else 127.0.0.1:7443)");
  app_.add_flag("--insecure", global_.insecure,
                "Plaintext, no TLS (a server started with --insecure; "
                "loopback only)");
  app_.add_option("--ca-file", global_.ca_file,
                  "CA certificate(s) that signed the server's certificate "
                  "(default: $RAMPART_CA_FILE)");
  app_.add_option("--cert", global_.cert_file,
                  "Admin client certificate, PEM (with --key; default: "
                  "$RAMPART_CERT)");
  app_.add_option("--key", global_.key_file,
                  "Its private key, PEM (default: $RAMPART_KEY)");
  app_.add_flag("--json", global_.json,
                "Print JSON (shapes in docs/rampartctl.md)");
  app_.add_option("--timeout", global_.timeout,
                  "Deadline of each call, e.g. 10s, 1m (default 10s)");
  app_.add_option("--token", global_.token,
                  "Admin API token (default: --token-file, else "
                  "$RAMPART_TOKEN); visible in ps, prefer --token-file");
  app_.add_option("--token-file", global_.token_file,
                  "File whose first line is the admin API token");
  DefineCommands();
}

CLI::App* CommandLine::AddGroup(std::string_view name,
                                std::string_view description) {
  CLI::App* group =
      app_.add_subcommand(std::string(name), std::string(description));
  group->require_subcommand(1);
  return group;
}

CLI::App* CommandLine::AddLeaf(CLI::App* parent, std::string_view name,
                               std::string_view description, Builder build) {
  CLI::App* leaf =
      parent->add_subcommand(std::string(name), std::string(description));
  leaves_.push_back({leaf, std::move(build)});
  return leaf;
}

void CommandLine::AddListLimit(CLI::App* app) {
  app->add_option("--limit", limit_,
                  "Most items to fetch (default 1000; 0 = all)");
}

template <typename Request>
absl::Status CommandLine::SetLifetime(Request* request, bool required) const {
  if (!for_.empty() && permanent_) {
    return Usage("give either --for DURATION or --permanent, not both");
  }
  if (permanent_) {
    request->set_permanent(true);
    return absl::OkStatus();
  }
  if (for_.empty()) {
    return required ? Usage(
                          "a lifetime is required: --for DURATION (e.g. "
                          "--for 2h) or --permanent")
                    : absl::OkStatus();
  }
  ASSIGN_OR_RETURN(
      absl::Duration d,
      ParseDurationInRange("--for", for_, absl::Seconds(1), kMaxBanDuration));
  SetDuration(d, request->mutable_duration());
  return absl::OkStatus();
}

void CommandLine::DefineCommands() {
  DefineStatus();
  DefineBans();
  DefineIp();
  DefineAllow();
  DefineAgents();
  DefineAccounts();
  DefineAlerts();
  DefineReport();
  DefineExport();
  DefineImport();
  DefineAudit();
}

void CommandLine::DefineStatus() {
  AddLeaf(&app_, "status", "Server health and counts",
          []() -> absl::StatusOr<Action> {
            return Action([](AdminCommands& c) { return c.Status(); });
          });
}

void CommandLine::DefineBans() {
  CLI::App* bans = AddGroup("bans", "List, show, add and remove bans");
  CLI::App* cmd = AddLeaf(
      bans, "list", "List bans (newest first)",
      [this]() -> absl::StatusOr<Action> {
        v1::ListBansRequest r;
        r.set_state(all_ ? v1::BAN_STATE_FILTER_ALL
                         : v1::BAN_STATE_FILTER_ACTIVE);
        if (!covering_.empty()) {
          ASSIGN_OR_RETURN(std::string p, ParsePrefix("--covering", covering_));
          r.set_covering(p);
        }
        if (!within_.empty()) {
          ASSIGN_OR_RETURN(std::string p, ParsePrefix("--within", within_));
          r.set_within(p);
        }
        if (!origin_.empty()) {
          ASSIGN_OR_RETURN(v1::BanOrigin o,
                           ParseEnum<v1::BanOrigin>("--origin", origin_));
          r.set_origin(o);
        }
        ASSIGN_OR_RETURN(ListOptions list, MakeListOptions(limit_));
        return Action(
            [r, list](AdminCommands& c) { return c.ListBans(r, list); });
      });
  cmd->add_flag("--all", all_, "Include expired and removed bans");
  cmd->add_option("--covering", covering_,
                  "Only bans containing this IP or CIDR");
  cmd->add_option("--within", within_, "Only bans inside this CIDR");
  cmd->add_option("--origin", origin_,
                  "Only this origin: auto, manual, import, local_fallback, "
                  "prefix");
  AddListLimit(cmd);

  cmd = AddLeaf(
      bans, "show", "One ban: explanation, history, enforcement",
      [this]() -> absl::StatusOr<Action> {
        v1::GetBanRequest r;
        ASSIGN_OR_RETURN(std::optional<uint64_t> id, ParseId(target_));
        if (id.has_value()) {
          r.set_id(*id);
        } else {
          ASSIGN_OR_RETURN(std::string p, ParsePrefix("bans show", target_));
          r.set_address(p);
        }
        r.set_include_inactive(flag_a_);
        return Action([r](AdminCommands& c) { return c.ShowBan(r); });
      });
  cmd->add_option("BAN", target_,
                  "Ban id, or an IP/CIDR (the most specific active ban "
                  "containing it)")
      ->required();
  cmd->add_flag("--inactive", flag_a_,
                "With an address and no active ban: the most recent past ban");

  cmd = AddLeaf(
      bans, "add", "Ban an IP or CIDR", [this]() -> absl::StatusOr<Action> {
        v1::AddBanRequest r;
        ASSIGN_OR_RETURN(std::string p, ParsePrefix("bans add", target_));
        r.set_target(p);
        if (absl::Status s = SetLifetime(&r, /*required=*/true); !s.ok()) {
          return s;
        }
        if (absl::Status s = CheckText("--reason", reason_, true); !s.ok()) {
          return s;
        }
        r.set_reason(reason_);
        if (!scope_.empty()) {
          ASSIGN_OR_RETURN(v1::BanScope sc,
                           ParseEnum<v1::BanScope>("--scope", scope_));
          r.set_scope(sc);
        }
        r.set_allow_broad_prefix(flag_a_);
        r.set_override_protected(override_);
        return Action([r](AdminCommands& c) { return c.AddBan(r); });
      });
  cmd->add_option("TARGET", target_, "IP (a /32 or /128) or CIDR")->required();
  cmd->add_option("--for", for_, "Lifetime, e.g. 2h, 30m, 7d (max 3650d)");
  cmd->add_flag("--permanent", permanent_, "No expiry");
  cmd->add_option("--reason", reason_, "Why (required, at most 256 bytes)");
  cmd->add_option("--scope", scope_,
                  "Ports: all_ports (default), mail, directory, web");
  cmd->add_flag("--allow-broad", flag_a_,
                "Allow prefixes broader than /16 (IPv4) or /32 (IPv6)");
  cmd->add_flag("--override-protected", override_,
                "Ban even an agent's protected address (admin role; "
                "audited)");

  cmd = AddLeaf(
      bans, "remove", "Lift an active ban", [this]() -> absl::StatusOr<Action> {
        v1::RemoveBanRequest r;
        ASSIGN_OR_RETURN(std::optional<uint64_t> id, ParseId(target_));
        if (id.has_value()) {
          r.set_id(*id);
        } else {
          ASSIGN_OR_RETURN(std::string p, ParsePrefix("bans remove", target_));
          r.set_target(p);
        }
        if (absl::Status s = CheckText("--reason", reason_, true); !s.ok()) {
          return s;
        }
        r.set_reason(reason_);
        r.set_forgive_score(flag_a_);
        return Action([r](AdminCommands& c) { return c.RemoveBan(r); });
      });
  cmd->add_option("BAN", target_, "Ban id, or the exact IP/CIDR of the ban")
      ->required();
  cmd->add_option("--reason", reason_, "Why (required, at most 256 bytes)");
  cmd->add_flag("--forgive", flag_a_,
                "Also reset the score and escalation history, so existing "
                "evidence does not ban it again");
}

void CommandLine::DefineIp() {
  CLI::App* cmd = AddLeaf(
      &app_, "ip",
      "Everything known about an address: score, bans, servers "
      "hit, users tried, recent events",
      [this]() -> absl::StatusOr<Action> {
        v1::LookupIpRequest r;
        ASSIGN_OR_RETURN(std::string ip, ParseSingleIp("ip", target_));
        r.set_address(ip);
        if (!window_.empty()) {
          ASSIGN_OR_RETURN(
              absl::Duration w,
              ParseDurationInRange("--window", window_, absl::Minutes(1),
                                   absl::Hours(24 * 30)));
          SetDuration(w, r.mutable_window());
        }
        ASSIGN_OR_RETURN(uint32_t events, CheckCount("--events", count_, 1000));
        r.set_max_events(events);
        return Action([r](AdminCommands& c) { return c.LookupIp(r); });
      });
  cmd->add_option("ADDRESS", target_, "A single IPv4 or IPv6 address")
      ->required();
  cmd->add_option("--window", window_, "History window, 1m..30d (default 24h)");
  cmd->add_option("--events", count_,
                  "Most recent events to show, 0..1000 (default 100)");
}

void CommandLine::DefineAllow() {
  CLI::App* allow = AddGroup("allow", "The allowlist: never-ban prefixes");
  CLI::App* cmd =
      AddLeaf(allow, "list", "List allowlist entries",
              [this]() -> absl::StatusOr<Action> {
                v1::ListAllowRequest r;
                r.set_include_expired(all_);
                ASSIGN_OR_RETURN(ListOptions list, MakeListOptions(limit_));
                return Action([r, list](AdminCommands& c) {
                  return c.ListAllow(r, list);
                });
              });
  cmd->add_flag("--all", all_, "Include lapsed entries");
  AddListLimit(cmd);

  cmd = AddLeaf(
      allow, "add",
      "Allowlist an IP or CIDR (active bans inside it are lifted)",
      [this]() -> absl::StatusOr<Action> {
        v1::AddAllowRequest r;
        ASSIGN_OR_RETURN(std::string p, ParsePrefix("allow add", target_));
        r.set_cidr(p);
        if (!for_.empty()) {
          ASSIGN_OR_RETURN(absl::Duration d,
                           ParseDurationInRange("--for", for_, absl::Seconds(1),
                                                kMaxBanDuration));
          SetDuration(d, r.mutable_duration());
        }
        if (absl::Status s = CheckText("--comment", comment_, false); !s.ok()) {
          return s;
        }
        r.set_comment(comment_);
        r.set_remove_covering_bans(flag_a_);
        r.set_allow_broad_prefix(broad_);
        return Action([r](AdminCommands& c) { return c.AddAllow(r); });
      });
  cmd->add_option("CIDR", target_, "IP or CIDR")->required();
  cmd->add_option("--for", for_, "Lifetime, e.g. 30d (default: permanent)");
  cmd->add_option("--comment", comment_, "Note, at most 256 bytes");
  cmd->add_flag("--remove-covering-bans", flag_a_,
                "Also lift active bans that contain the prefix (e.g. a /24 "
                "ban when allowlisting one address in it)");
  cmd->add_flag("--broad", broad_,
                "Allow prefixes broader than /16 (IPv4) or /32 (IPv6); needs "
                "the admin role (banning is off for the whole range)");

  cmd = AddLeaf(
      allow, "remove", "Remove an allowlist entry",
      [this]() -> absl::StatusOr<Action> {
        v1::RemoveAllowRequest r;
        ASSIGN_OR_RETURN(std::optional<uint64_t> id, ParseId(target_));
        if (id.has_value()) {
          r.set_id(*id);
        } else {
          ASSIGN_OR_RETURN(std::string p, ParsePrefix("allow remove", target_));
          r.set_cidr(p);
        }
        return Action([r](AdminCommands& c) { return c.RemoveAllow(r); });
      });
  cmd->add_option("ENTRY", target_, "Entry id, or its exact IP/CIDR")
      ->required();
}

void CommandLine::DefineAgents() {
  CLI::App* agents = AddGroup("agents", "Agents: health, enrollment");
  CLI::App* cmd =
      AddLeaf(agents, "list",
              "Agents: connected, version, last seen, enforced revision, "
              "lag",
              [this]() -> absl::StatusOr<Action> {
                v1::ListAgentsRequest r;
                r.set_connected_only(connected_);
                if (absl::Status s = CheckSite(site_); !s.ok()) {
                  return s;
                }
                r.set_site(site_);
                ASSIGN_OR_RETURN(ListOptions list, MakeListOptions(limit_));
                return Action([r, list](AdminCommands& c) {
                  return c.ListAgents(r, list);
                });
              });
  cmd->add_flag("--connected", connected_, "Only connected agents");
  cmd->add_option("--site", site_, "Only this site");
  AddListLimit(cmd);

  cmd = AddLeaf(
      agents, "enroll", "Create a one-time enrollment token for an agent",
      [this]() -> absl::StatusOr<Action> {
        v1::EnrollAgentRequest r;
        if (absl::Status s = CheckAgentId(target_); !s.ok()) {
          return s;
        }
        r.set_agent_id(target_);
        if (absl::Status s = CheckSite(site_); !s.ok()) {
          return s;
        }
        r.set_site(site_);
        if (!ttl_.empty()) {
          ASSIGN_OR_RETURN(absl::Duration d,
                           ParseDurationInRange("--ttl", ttl_, absl::Minutes(1),
                                                absl::Hours(24 * 7)));
          SetDuration(d, r.mutable_token_ttl());
        }
        r.set_reenroll(flag_a_);
        return Action([r](AdminCommands& c) { return c.EnrollAgent(r); });
      });
  cmd->add_option("NAME", target_, "Agent id (a-z, 0-9, '.', '_', '-')")
      ->required();
  cmd->add_option("--site", site_, "Site label");
  cmd->add_option("--ttl", ttl_, "Token lifetime, 1m..7d (default 24h)");
  cmd->add_flag("--reenroll", flag_a_,
                "Allow re-enrolling an enrolled agent (its old certificate "
                "is revoked when the token is used)");

  cmd = AddLeaf(
      agents, "revoke",
      "Revoke an agent: its certificate is rejected from now on",
      [this]() -> absl::StatusOr<Action> {
        v1::RevokeAgentRequest r;
        if (absl::Status s = CheckAgentId(target_); !s.ok()) {
          return s;
        }
        r.set_agent_id(target_);
        if (absl::Status s = CheckText("--reason", reason_, true); !s.ok()) {
          return s;
        }
        r.set_reason(reason_);
        return Action([r](AdminCommands& c) { return c.RevokeAgent(r); });
      });
  cmd->add_option("NAME", target_, "Agent id")->required();
  cmd->add_option("--reason", reason_, "Why (required, at most 256 bytes)");

  for (const bool unprotect : {false, true}) {
    cmd =
        AddLeaf(agents, unprotect ? "unprotect" : "protect",
                unprotect ? "Withdraw the protection of an agent's addresses"
                          : "Approve addresses as an agent's own: never banned "
                            "(admin role; audited)",
                [this, unprotect]() -> absl::StatusOr<Action> {
                  v1::SetAgentProtectionRequest r;
                  if (absl::Status s = CheckAgentId(target_); !s.ok()) {
                    return s;
                  }
                  r.set_agent_id(target_);
                  if (addresses_.empty() || addresses_.size() > 64) {
                    return absl::InvalidArgumentError(
                        "ADDRESS: give 1 to 64 addresses");
                  }
                  for (const std::string& a : addresses_) {
                    if (!IpAddress::Parse(a)) {
                      return absl::InvalidArgumentError(absl::StrFormat(
                          "ADDRESS: \"%s\" is not an IP address", a));
                    }
                    r.add_addresses(a);
                  }
                  r.set_unprotect(unprotect);
                  return Action([r](AdminCommands& c) {
                    return c.SetAgentProtection(r);
                  });
                });
    cmd->add_option("NAME", target_, "Agent id")->required();
    cmd->add_option("ADDRESS", addresses_, "IP addresses (1-64)")->required();
  }
}

void CommandLine::DefineAccounts() {
  CLI::App* accounts = AddGroup("accounts", "Accounts under attack");
  CLI::App* cmd =
      AddLeaf(accounts, "list",
              "Accounts under attack (most attacking addresses first)",
              [this]() -> absl::StatusOr<Action> {
                v1::ListAccountsRequest r;
                if (!window_.empty()) {
                  ASSIGN_OR_RETURN(absl::Duration w,
                                   ParseDurationInRange("--window", window_,
                                                        absl::Minutes(1),
                                                        absl::Hours(24 * 30)));
                  SetDuration(w, r.mutable_window());
                }
                ASSIGN_OR_RETURN(uint32_t min_ips,
                                 CheckCount("--min-ips", count_, 1000000));
                r.set_min_distinct_ips(min_ips);
                ASSIGN_OR_RETURN(ListOptions list, MakeListOptions(limit_));
                return Action([r, list](AdminCommands& c) {
                  return c.ListAccounts(r, list);
                });
              });
  cmd->add_option("--window", window_,
                  "Window, 1m..30d (default: the policy's account window)");
  cmd->add_option("--min-ips", count_,
                  "Only accounts attacked from at least this many addresses "
                  "(default: policy)");
  AddListLimit(cmd);
}

void CommandLine::DefineAlerts() {
  CLI::App* cmd = AddLeaf(
      &app_, "alerts", "Compromise alerts; --watch to follow",
      [this]() -> absl::StatusOr<Action> {
        if (watch_) {
          if (!since_.empty() || !kind_.empty()) {
            return Usage(
                "--since and --kind do not apply to --watch (use --after ID to "
                "replay alerts after a known one)");
          }
          if (after_ < 0) {
            return Usage("--after: must be >= 0");
          }
          v1::WatchAlertsRequest r;
          r.set_after_alert_id(static_cast<uint64_t>(after_));
          return Action([r](AdminCommands& c) { return c.WatchAlerts(r); });
        }
        if (after_ != 0) {
          return Usage("--after applies only to --watch");
        }
        v1::ListAlertsRequest r;
        if (!since_.empty()) {
          ASSIGN_OR_RETURN(absl::Time t, ParseSince(since_, Now()));
          SetTimestamp(t, r.mutable_since());
        }
        if (!kind_.empty()) {
          ASSIGN_OR_RETURN(v1::AlertKind k,
                           ParseEnum<v1::AlertKind>("--kind", kind_));
          r.set_kind(k);
        }
        ASSIGN_OR_RETURN(ListOptions list, MakeListOptions(limit_));
        return Action(
            [r, list](AdminCommands& c) { return c.ListAlerts(r, list); });
      });
  cmd->add_option("--since", since_,
                  "Only alerts raised since: a duration back (24h) or an "
                  "RFC 3339 time (default: last 7 days)");
  cmd->add_option("--kind", kind_, "Only this kind: success_after_failures");
  cmd->add_flag("--watch", watch_,
                "Stream alerts as they are raised, until the server ends the "
                "stream");
  cmd->add_option("--after", after_,
                  "With --watch: first replay retained alerts with an id "
                  "greater than this");
  AddListLimit(cmd);
}

void CommandLine::DefineReport() {
  CLI::App* cmd = AddLeaf(
      &app_, "report",
      "Summary: top offenders, new bans, targeted accounts, "
      "compromise alerts",
      [this]() -> absl::StatusOr<Action> {
        v1::ReportRequest r;
        if (!since_.empty()) {
          ASSIGN_OR_RETURN(
              absl::Duration d,
              ParseDurationInRange("--since", since_, absl::Minutes(1),
                                   absl::Hours(24 * 90)));
          SetDuration(d, r.mutable_since());
        }
        ASSIGN_OR_RETURN(uint32_t top, CheckCount("--top", count_, 1000));
        r.set_top_n(top);
        if (csv_) {
          if (global_.json) {
            return Usage("give either --json or --csv, not both");
          }
          output_format_ = OutputFormat::kCsv;
        }
        return Action([r](AdminCommands& c) { return c.Report(r); });
      });
  cmd->add_option("--since", since_,
                  "Period ending now, 1m..90d (default 24h)");
  cmd->add_option("--top", count_, "Length of each top list (default 20)");
  cmd->add_flag("--csv", csv_, "Print CSV (layout in docs/rampartctl.md)");
}

void CommandLine::DefineExport() {
  CLI::App* cmd = AddLeaf(
      &app_, "export", "Active bans in a firewall-ready format (one revision)",
      [this]() -> absl::StatusOr<Action> {
        if (global_.json) {
          return Usage("export does not print JSON; choose --format");
        }
        ASSIGN_OR_RETURN(v1::ExportFormat f,
                         ParseEnum<v1::ExportFormat>("--format", format_));
        const ExportOptions options{.format = f, .output_path = output_};
        return Action(
            [options](AdminCommands& c) { return c.Export(options); });
      });
  cmd->add_option("--format", format_, "plain, nft, netsh or csv")->required();
  cmd->add_option("--output,-o", output_,
                  "Write to this file (replaced only once the export is "
                  "complete) instead of standard output");
}

void CommandLine::DefineImport() {
  CLI::App* cmd = AddLeaf(
      &app_, "import", "Bulk-ban from a plain list or CSV file (one revision)",
      [this]() { return BuildImport(); });
  cmd->add_option("FILE", target_,
                  "The list: `<ip-or-cidr> [# reason]` per line, or CSV as "
                  "written by `export --format csv`; - for standard input")
      ->required();
  cmd->add_option("--format", format_, "auto (default), plain or csv");
  cmd->add_option("--for", for_,
                  "Lifetime of lines without one (required for plain lists)");
  cmd->add_flag("--permanent", permanent_,
                "Lines without a lifetime never "
                "expire");
  cmd->add_option("--reason", reason_,
                  "Reason for lines without one (required)");
  cmd->add_option("--scope", scope_,
                  "Ports for lines without a scope (default all_ports)");
  cmd->add_flag("--dry-run", dry_run_,
                "Have the server check every line; commit nothing");
  cmd->add_flag("--all-lines", all_lines_,
                "Report every line, not only those not added");
}

void CommandLine::DefineAudit() {
  CLI::App* cmd = AddLeaf(
      &app_, "audit", "The admin action log (newest first)",
      [this]() -> absl::StatusOr<Action> {
        v1::ListAuditRequest r;
        if (!since_.empty()) {
          ASSIGN_OR_RETURN(absl::Time t, ParseSince(since_, Now()));
          SetTimestamp(t, r.mutable_since());
        }
        if (absl::Status s = CheckText("--actor", actor_, false); !s.ok()) {
          return s;
        }
        if (absl::Status s = CheckText("--action", action_, false); !s.ok()) {
          return s;
        }
        r.set_actor(actor_);
        r.set_action(action_);
        ASSIGN_OR_RETURN(ListOptions list, MakeListOptions(limit_));
        return Action(
            [r, list](AdminCommands& c) { return c.ListAudit(r, list); });
      });
  cmd->add_option("--since", since_,
                  "Only records since: a duration back (7d) or an RFC 3339 "
                  "time");
  cmd->add_option("--actor", actor_, "Only this actor");
  cmd->add_option("--action", action_,
                  "Only this action: ban.add, ban.remove, allow.add, "
                  "allow.remove, import, agent.enroll, agent.revoke");
  AddListLimit(cmd);
}

absl::StatusOr<Action> CommandLine::BuildImport() {
  const ImportFileLimits limits;
  std::string text;
  std::string name = target_;
  if (target_ == "-") {
    name = "standard input";
    if (env_.in == nullptr) {
      return Usage("import: standard input is not available");
    }
    if (!ReadBounded(*env_.in, limits.max_bytes + 3, &text)) {
      return Usage(absl::StrFormat(
          "import: the input is larger than %d bytes; split it into several "
          "imports",
          limits.max_bytes));
    }
  } else {
    std::ifstream file(target_, std::ios::binary);
    if (!file) {
      return Usage(absl::StrFormat("import: cannot open %s",
                                   SanitizeForTerminal(target_)));
    }
    if (!ReadBounded(file, limits.max_bytes + 3, &text)) {
      return Usage(absl::StrFormat(
          "import: %s is larger than %d bytes; split it into several imports",
          SanitizeForTerminal(target_), limits.max_bytes));
    }
    if (file.bad()) {
      return Usage(absl::StrFormat("import: cannot read %s",
                                   SanitizeForTerminal(target_)));
    }
  }
  ImportFileFormat format;
  if (format_.empty() || format_ == "auto") {
    format = DetectImportFormat(text);
  } else if (format_ == "plain") {
    format = ImportFileFormat::kPlain;
  } else if (format_ == "csv") {
    format = ImportFileFormat::kCsv;
  } else {
    return Usage(absl::StrFormat(
        "--format: unknown value \"%s\" (one of: auto, plain, csv)",
        SanitizeForTerminal(Abbreviate(format_, 40))));
  }
  absl::StatusOr<ImportFile> file = ParseImportFile(text, format, limits);
  if (!file.ok()) {
    return Usage(absl::StrFormat("import: %s: %s", SanitizeForTerminal(name),
                                 file.status().message()));
  }
  if (file->error_count > 0) {
    std::string message =
        absl::StrFormat("import: %s has %d invalid %s; nothing was sent:",
                        SanitizeForTerminal(name), file->error_count,
                        file->error_count == 1 ? "line" : "lines");
    for (const ImportFileError& e : file->errors) {
      absl::StrAppendFormat(&message, "\n  %s:%d: %s",
                            SanitizeForTerminal(name), e.line,
                            SanitizeForTerminal(e.message));
    }
    if (file->error_count > file->errors.size()) {
      absl::StrAppendFormat(&message, "\n  ... and %d more",
                            file->error_count - file->errors.size());
    }
    return Usage(std::move(message));
  }
  if (file->entries.empty()) {
    return Usage(absl::StrFormat("import: %s contains no addresses",
                                 SanitizeForTerminal(name)));
  }
  ImportOptions options{.file_name = name};
  v1::ImportRequest& r = options.request;
  r.set_format(format == ImportFileFormat::kCsv ? v1::IMPORT_FORMAT_CSV
                                                : v1::IMPORT_FORMAT_PLAIN);
  if (absl::Status s =
          SetLifetime(&r, /*required=*/format == ImportFileFormat::kPlain);
      !s.ok()) {
    return s;
  }
  if (format == ImportFileFormat::kCsv &&
      r.lifetime_case() == v1::ImportRequest::LIFETIME_NOT_SET) {
    for (const ImportFileEntry& e : file->entries) {
      if (!e.expires_at.has_value()) {
        return Usage(absl::StrFormat(
            "import: %s:%d has no expires_at; give --for DURATION or "
            "--permanent for such lines",
            SanitizeForTerminal(name), e.line));
      }
    }
  }
  if (absl::Status s = CheckText("--reason", reason_, true); !s.ok()) {
    return s;
  }
  r.set_reason(reason_);
  if (!scope_.empty()) {
    ASSIGN_OR_RETURN(v1::BanScope sc,
                     ParseEnum<v1::BanScope>("--scope", scope_));
    r.set_scope(sc);
  }
  r.set_dry_run(dry_run_);
  r.set_report_all_lines(all_lines_);
  r.set_text(std::move(file->text));
  return Action([options = std::move(options)](AdminCommands& c) {
    return c.Import(options);
  });
}

std::variant<Invocation, int> CommandLine::Parse(
    const std::vector<std::string>& args, std::ostream& out,
    std::ostream& err) {
  if (args.empty()) {
    err << app_.help();
    return kExitUsage;
  }
  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app_.parse(std::move(reversed));
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app_.exit(e, out, err);  // --help, --version
      return kExitOk;
    }
    std::string path = "rampartctl";
    for (const CLI::App* sub = &app_; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      path += " " + sub->get_name();
    }
    std::string message = e.what();
    if (const std::string word = UnknownCommandWord(app_, args);
        !word.empty() && dynamic_cast<const CLI::RequiredError*>(&e)) {
      message = absl::StrFormat("unknown command \"%s\"", word);
    }
    err << "rampartctl: " << SanitizeForTerminal(message) << "\nRun '" << path
        << " --help' for usage.\n";
    return kExitUsage;
  }
  const Leaf* leaf = nullptr;
  for (const Leaf& l : leaves_) {
    if (l.app->parsed()) {
      leaf = &l;
    }
  }
  if (leaf == nullptr) {
    err << app_.help();
    return kExitUsage;
  }
  std::string path = leaf->app->get_name();
  if (leaf->app->get_parent() != &app_) {
    path = leaf->app->get_parent()->get_name() + " " + path;
  }
  const auto usage_error = [&](const absl::Status& s) {
    err << "rampartctl: " << s.message() << "\nRun 'rampartctl " << path
        << " --help' for usage.\n";
    return kExitUsage;
  };

  Invocation inv;
  inv.context.clock = env_.clock;
  inv.context.server = !global_.server.empty() ? global_.server
                       : !env_.server.empty()  ? env_.server
                                               : std::string(kDefaultServer);
  if (absl::Status s = ValidateServerTarget(inv.context.server); !s.ok()) {
    return usage_error(
        global_.server.empty()
            ? Usage(absl::StrFormat("RAMPART_SERVER: %s", s.message()))
            : s);
  }
  inv.channel.target = inv.context.server;
  inv.channel.insecure = global_.insecure;
  inv.channel.ca_file =
      !global_.ca_file.empty() ? global_.ca_file : env_.ca_file;
  inv.channel.cert_file =
      !global_.cert_file.empty() ? global_.cert_file : env_.cert_file;
  inv.channel.key_file =
      !global_.key_file.empty() ? global_.key_file : env_.key_file;
  if (global_.insecure &&
      (!global_.ca_file.empty() || !global_.cert_file.empty() ||
       !global_.key_file.empty())) {
    return usage_error(
        Usage("--insecure excludes --ca-file, --cert and --key"));
  }
  if (inv.channel.cert_file.empty() != inv.channel.key_file.empty()) {
    return usage_error(Usage("--cert and --key go together"));
  }
  absl::StatusOr<absl::Duration> timeout = ParseDurationInRange(
      "--timeout", global_.timeout, absl::Seconds(1), absl::Hours(1));
  if (!timeout.ok()) {
    return usage_error(timeout.status());
  }
  inv.context.timeout = *timeout;
  absl::StatusOr<std::string> token = ResolveToken(global_, env_);
  if (!token.ok()) {
    return usage_error(token.status());
  }
  inv.context.token = *std::move(token);
  output_format_ = global_.json ? OutputFormat::kJson : OutputFormat::kTable;
  absl::StatusOr<Action> action = leaf->build();
  if (!action.ok()) {
    return usage_error(action.status());
  }
  inv.context.format = output_format_;
  inv.action = *std::move(action);
  return inv;
}

int Run(const std::vector<std::string>& args,
        v1::AdminService::StubInterface* stub, std::ostream& out,
        std::ostream& err, const CtlEnvironment& env_in) {
  try {
    CtlEnvironment env = env_in;
    if (env.clock == nullptr) {
      env.clock = &RealClock::Get();
    }
    CommandLine command_line(env);
    std::variant<Invocation, int> parsed = command_line.Parse(args, out, err);
    if (const int* code = std::get_if<int>(&parsed)) {
      return *code;
    }
    Invocation& inv = std::get<Invocation>(parsed);
    std::unique_ptr<v1::AdminService::StubInterface> owned_stub;
    std::shared_ptr<grpc::Channel> channel;
    if (stub == nullptr) {
      absl::StatusOr<std::shared_ptr<grpc::Channel>> ch =
          MakeAdminChannel(inv.channel);
      if (!ch.ok()) {
        err << "rampartctl: " << ch.status().message() << '\n';
        return kExitUsage;
      }
      channel = *std::move(ch);
      owned_stub = v1::AdminService::NewStub(channel);
      stub = owned_stub.get();
      inv.context.channel = channel.get();
    }
    AdminCommands commands(*stub, inv.context, out, err);
    const int code = inv.action(commands);
    out.flush();
    if (!out) {
      err << "rampartctl: could not write the output\n";
      return code == kExitOk ? kExitError : code;
    }
    return code;
  } catch (const std::exception& e) {
    err << "rampartctl: internal error: " << SanitizeForTerminal(e.what())
        << '\n';
    return kExitError;
  }
}

}  // namespace

int RunCtl(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err, const CtlEnvironment& env) {
  return Run(args, nullptr, out, err, env);
}

int RunCtlWithStub(const std::vector<std::string>& args,
                   v1::AdminService::StubInterface& stub, std::ostream& out,
                   std::ostream& err, const CtlEnvironment& env) {
  return Run(args, &stub, out, err, env);
}

}  // namespace rampart::ctl
