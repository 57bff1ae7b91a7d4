#include "agent/daemon/agent_config.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <exception>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/duration.h"
#include "common/edit_distance.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "yaml-cpp/yaml.h"

namespace rampart::agent {
namespace {

// Every key per section; "" is the root. Drives the unknown-key check, the
// did-you-mean suggestion and AgentConfigKeys().
const std::map<std::string, std::vector<std::string>>& Schema() {
  static const auto* schema =
      new std::map<std::string, std::vector<std::string>>{
          {"",
           {"servers", "agent_id", "site", "time_zone", "logs",
            "read_existing_logs", "parser", "state_dir", "firewall",
            "allowlist", "batch", "spool", "reconnect", "local_fallback",
            "insecure", "tls", "metrics"}},
          {"tls", {"ca_file", "cert_file", "key_file"}},
          {"metrics", {"listen", "allow_non_loopback"}},
          {"logs", {"path", "date_order"}},
          {"parser", {"successes", "tls_failures", "sessions"}},
          {"firewall",
           {"backend", "leave_rules_on_stop", "repair_interval",
            "nftables_table", "exec_add", "exec_remove", "exec_flush",
            "netsh_output_dir", "min_prefix_ipv4", "min_prefix_ipv6",
            "max_blocked_ipv4_addresses", "max_blocked_ipv6_subnets",
            "protect_gateway", "protect_dns_resolvers"}},
          {"batch", {"max_events", "flush_interval"}},
          {"spool", {"max_bytes", "fsync"}},
          {"reconnect", {"backoff_min", "backoff_max", "heartbeat_interval"}},
          {"local_fallback",
           {"enabled", "activate_after", "failures", "window", "ban_duration",
            "max_bans"}},
      };
  return *schema;
}

std::string Where(const YAML::Node& node) {
  const YAML::Mark m = node.Mark();
  if (m.is_null()) {
    return "";
  }
  return absl::StrFormat("%d:%d: ", m.line + 1, m.column + 1);
}

absl::Status Error(const YAML::Node& node, std::string_view path,
                   std::string_view problem) {
  return absl::InvalidArgumentError(
      absl::StrFormat("%s%s: %s", Where(node), path, problem));
}

std::string Join(std::string_view section, std::string_view key) {
  return section.empty() ? std::string(key)
                         : absl::StrFormat("%s.%s", section, key);
}

// Checks that `node` is a map whose keys are all in Schema()[section].
absl::Status CheckKeys(const YAML::Node& node, const std::string& section,
                       std::string_view path) {
  if (!node.IsMap()) {
    return Error(node, path.empty() ? "(document)" : path, "must be a map");
  }
  const std::vector<std::string>& known = Schema().at(section);
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (std::find(known.begin(), known.end(), key) != known.end()) {
      continue;
    }
    std::string best;
    size_t best_distance = 4;
    for (const std::string& k : known) {
      const size_t d = EditDistance(key, k);
      if (d < best_distance) {
        best_distance = d;
        best = k;
      }
    }
    std::string msg = "unknown key";
    if (!best.empty()) {
      msg += absl::StrFormat(" (did you mean \"%s\"?)", best);
    }
    return Error(kv.first, Join(path, Abbreviate(key, 64)), msg);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> GetString(const YAML::Node& n,
                                      std::string_view path) {
  if (!n.IsScalar()) {
    return Error(n, path, "must be a string");
  }
  return n.Scalar();
}

absl::StatusOr<bool> GetBool(const YAML::Node& n, std::string_view path) {
  if (n.IsScalar()) {
    const std::string s = n.Scalar();
    if (s == "true") {
      return true;
    }
    if (s == "false") {
      return false;
    }
  }
  return Error(n, path, "must be true or false");
}

absl::StatusOr<int64_t> GetInt(const YAML::Node& n, std::string_view path,
                               int64_t min, int64_t max) {
  if (!n.IsScalar()) {
    return Error(n, path, "must be an integer");
  }
  const std::string s = n.Scalar();
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) {
    return Error(n, path,
                 absl::StrFormat("\"%s\" is not an integer", Abbreviate(s)));
  }
  if (v < min || v > max) {
    return Error(n, path,
                 absl::StrFormat("%d is outside [%d, %d]", v, min, max));
  }
  return v;
}

absl::StatusOr<absl::Duration> GetDuration(const YAML::Node& n,
                                           std::string_view path,
                                           absl::Duration min,
                                           absl::Duration max) {
  if (!n.IsScalar()) {
    return Error(n, path, "must be a duration such as 500ms, 90s or 1h30m");
  }
  absl::StatusOr<absl::Duration> d = ParseAgentDuration(n.Scalar());
  if (!d.ok()) {
    return Error(n, path, std::string(d.status().message()));
  }
  if (*d < min || *d > max) {
    return Error(
        n, path,
        absl::StrFormat("%s is outside [%s, %s]", n.Scalar(),
                        absl::FormatDuration(min), absl::FormatDuration(max)));
  }
  return *d;
}

absl::StatusOr<std::vector<std::string>> GetStringList(const YAML::Node& n,
                                                       std::string_view path) {
  if (!n.IsSequence()) {
    return Error(n, path, "must be a list of strings");
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    ASSIGN_OR_RETURN(std::string s,
                     GetString(n[i], absl::StrFormat("%s[%d]", path, i)));
    out.push_back(std::move(s));
  }
  return out;
}

bool ValidAgentId(std::string_view id) {
  if (id.empty() || id.size() > 63) {
    return false;
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) {
      return false;
    }
  }
  return true;
}

bool ValidSite(std::string_view site) {
  return site.size() <= 63 && std::all_of(site.begin(), site.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
         });
}

// The sections, each reading its keys into `config`.
absl::Status ReadRoot(const YAML::Node& root, AgentConfig* c) {
  RETURN_IF_ERROR(CheckKeys(root, "", ""));
  for (const auto& kv : root) {
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (key == "servers") {
      ASSIGN_OR_RETURN(c->servers, GetStringList(v, key));
      for (size_t i = 0; i < c->servers.size(); ++i) {
        if (absl::Status s = ValidateServerAddress(c->servers[i]); !s.ok()) {
          return Error(v[i], absl::StrFormat("servers[%d]", i),
                       std::string(s.message()));
        }
      }
    } else if (key == "agent_id") {
      ASSIGN_OR_RETURN(c->agent_id, GetString(v, key));
      if (!ValidAgentId(c->agent_id)) {
        return Error(v, key,
                     "must be 1-63 bytes of [a-z0-9._-] starting with a "
                     "letter or digit");
      }
    } else if (key == "site") {
      ASSIGN_OR_RETURN(c->site, GetString(v, key));
      if (!ValidSite(c->site)) {
        return Error(v, key, "must be 0-63 bytes of [A-Za-z0-9._-]");
      }
    } else if (key == "time_zone") {
      ASSIGN_OR_RETURN(c->time_zone, GetString(v, key));
      absl::TimeZone tz;
      if (!c->time_zone.empty() && !absl::LoadTimeZone(c->time_zone, &tz)) {
        return Error(v, key,
                     absl::StrFormat("unknown time zone \"%s\"",
                                     Abbreviate(c->time_zone)));
      }
    } else if (key == "logs") {
      if (!v.IsSequence()) {
        return Error(v, key, "must be a list of {path, date_order}");
      }
      c->logs.clear();
      for (size_t i = 0; i < v.size(); ++i) {
        const std::string path = absl::StrFormat("logs[%d]", i);
        LogSourceConfig log;
        if (v[i].IsScalar()) {
          log.path = v[i].Scalar();
        } else {
          RETURN_IF_ERROR(CheckKeys(v[i], "logs", path));
          for (const auto& lkv : v[i]) {
            const std::string lk = lkv.first.Scalar();
            if (lk == "path") {
              ASSIGN_OR_RETURN(log.path, GetString(lkv.second, path + ".path"));
            } else {
              ASSIGN_OR_RETURN(std::string order,
                               GetString(lkv.second, path + ".date_order"));
              absl::StatusOr<DateOrder> o = ParseDateOrder(order);
              if (!o.ok()) {
                return Error(lkv.second, path + ".date_order",
                             "must be auto, mdy, dmy or ymd");
              }
              log.date_order = *o;
            }
          }
        }
        if (log.path.empty() || log.path[0] != '/') {
          return Error(v[i], path + ".path", "must be an absolute path");
        }
        c->logs.push_back(std::move(log));
      }
    } else if (key == "read_existing_logs") {
      ASSIGN_OR_RETURN(c->read_existing_logs, GetBool(v, key));
    } else if (key == "parser") {
      RETURN_IF_ERROR(CheckKeys(v, "parser", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        ASSIGN_OR_RETURN(bool b, GetBool(p.second, Join(key, k)));
        (k == "successes"  ? c->successes
         : k == "sessions" ? c->sessions
                           : c->tls_failures) = b;
      }
    } else if (key == "state_dir") {
      ASSIGN_OR_RETURN(c->state_dir, GetString(v, key));
    } else if (key == "insecure") {
      ASSIGN_OR_RETURN(c->insecure, GetBool(v, key));
    } else if (key == "tls") {
      RETURN_IF_ERROR(CheckKeys(v, "tls", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        ASSIGN_OR_RETURN(std::string path, GetString(p.second, Join(key, k)));
        (k == "ca_file"     ? c->tls_ca_file
         : k == "cert_file" ? c->tls_cert_file
                            : c->tls_key_file) = std::move(path);
      }
    } else if (key == "metrics") {
      RETURN_IF_ERROR(CheckKeys(v, "metrics", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        if (k == "listen") {
          ASSIGN_OR_RETURN(c->metrics.listen,
                           GetString(p.second, Join(key, k)));
          MetricsEndpointConfig probe = c->metrics;
          probe.allow_non_loopback = true;  // checked once flags are in
          if (absl::Status s = ResolveMetricsListen(&probe); !s.ok()) {
            return Error(p.second, Join(key, k), std::string(s.message()));
          }
        } else {
          ASSIGN_OR_RETURN(c->metrics.allow_non_loopback,
                           GetBool(p.second, Join(key, k)));
        }
      }
    } else if (key == "firewall") {
      RETURN_IF_ERROR(CheckKeys(v, "firewall", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        const std::string path = Join(key, k);
        if (k == "backend") {
          ASSIGN_OR_RETURN(c->firewall.backend, GetString(p.second, path));
        } else if (k == "leave_rules_on_stop") {
          ASSIGN_OR_RETURN(c->leave_rules_on_stop, GetBool(p.second, path));
        } else if (k == "repair_interval") {
          ASSIGN_OR_RETURN(
              c->repair_interval,
              GetDuration(p.second, path, absl::Seconds(10), absl::Hours(24)));
        } else if (k == "nftables_table") {
          ASSIGN_OR_RETURN(c->firewall.nftables.table,
                           GetString(p.second, path));
        } else if (k == "exec_add") {
          ASSIGN_OR_RETURN(c->firewall.exec.add_command,
                           GetStringList(p.second, path));
        } else if (k == "exec_remove") {
          ASSIGN_OR_RETURN(c->firewall.exec.remove_command,
                           GetStringList(p.second, path));
        } else if (k == "exec_flush") {
          ASSIGN_OR_RETURN(c->firewall.exec.flush_command,
                           GetStringList(p.second, path));
        } else if (k == "min_prefix_ipv4") {
          ASSIGN_OR_RETURN(int64_t n, GetInt(p.second, path, 8, 32));
          c->limits.min_prefix_v4 = static_cast<int>(n);
        } else if (k == "min_prefix_ipv6") {
          ASSIGN_OR_RETURN(int64_t n, GetInt(p.second, path, 16, 128));
          c->limits.min_prefix_v6 = static_cast<int>(n);
        } else if (k == "max_blocked_ipv4_addresses") {
          ASSIGN_OR_RETURN(int64_t n,
                           GetInt(p.second, path, 1, int64_t{1} << 32));
          c->limits.max_blocked_ipv4_addresses = static_cast<uint64_t>(n);
        } else if (k == "max_blocked_ipv6_subnets") {
          ASSIGN_OR_RETURN(int64_t n,
                           GetInt(p.second, path, 1, int64_t{1} << 48));
          c->limits.max_blocked_ipv6_subnets = static_cast<uint64_t>(n);
        } else if (k == "protect_gateway") {
          ASSIGN_OR_RETURN(c->limits.protect_gateway, GetBool(p.second, path));
        } else if (k == "protect_dns_resolvers") {
          ASSIGN_OR_RETURN(c->limits.protect_dns_resolvers,
                           GetBool(p.second, path));
        } else {
          ASSIGN_OR_RETURN(c->firewall.netsh.output_dir,
                           GetString(p.second, path));
        }
      }
    } else if (key == "allowlist") {
      ASSIGN_OR_RETURN(std::vector<std::string> cidrs, GetStringList(v, key));
      c->allowlist.clear();
      for (size_t i = 0; i < cidrs.size(); ++i) {
        std::string text = cidrs[i];
        if (text.find('/') == std::string::npos) {
          if (auto ip = IpAddress::Parse(text); ip.has_value()) {
            text = IpPrefix::Host(*ip).ToString();
          }
        }
        absl::StatusOr<IpPrefix> p = IpPrefix::FromString(text);
        if (!p.ok()) {
          return Error(v[i], absl::StrFormat("allowlist[%d]", i),
                       std::string(p.status().message()));
        }
        c->allowlist.push_back(*p);
      }
    } else if (key == "batch") {
      RETURN_IF_ERROR(CheckKeys(v, "batch", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        if (k == "max_events") {
          ASSIGN_OR_RETURN(int64_t n, GetInt(p.second, Join(key, k), 1, 5000));
          c->max_events_per_batch = static_cast<int>(n);
        } else {
          ASSIGN_OR_RETURN(
              c->batch_flush_interval,
              GetDuration(p.second, Join(key, k), absl::Milliseconds(50),
                          absl::Seconds(60)));
        }
      }
    } else if (key == "spool") {
      RETURN_IF_ERROR(CheckKeys(v, "spool", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        if (k == "max_bytes") {
          ASSIGN_OR_RETURN(int64_t n, GetInt(p.second, Join(key, k), 8 << 20,
                                             int64_t{64} << 30));
          c->spool_max_bytes = static_cast<uint64_t>(n);
        } else {
          ASSIGN_OR_RETURN(std::string f, GetString(p.second, Join(key, k)));
          if (f == "every_append") {
            c->spool_fsync = FsyncPolicy::kEveryAppend;
          } else if (f == "explicit") {
            c->spool_fsync = FsyncPolicy::kExplicit;
          } else if (f == "never") {
            c->spool_fsync = FsyncPolicy::kNever;
          } else {
            return Error(p.second, Join(key, k),
                         "must be every_append, explicit or never");
          }
        }
      }
    } else if (key == "reconnect") {
      RETURN_IF_ERROR(CheckKeys(v, "reconnect", key));
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        if (k == "heartbeat_interval") {
          ASSIGN_OR_RETURN(c->heartbeat_interval,
                           GetDuration(p.second, Join(key, k), absl::Seconds(5),
                                       absl::Seconds(300)));
          continue;
        }
        ASSIGN_OR_RETURN(absl::Duration d,
                         GetDuration(p.second, Join(key, k),
                                     absl::Milliseconds(10), absl::Hours(1)));
        (k == "backoff_min" ? c->backoff_min : c->backoff_max) = d;
      }
    } else if (key == "local_fallback") {
      RETURN_IF_ERROR(CheckKeys(v, "local_fallback", key));
      LocalFallbackConfig& f = c->local_fallback;
      for (const auto& p : v) {
        const std::string k = p.first.Scalar();
        const std::string path = Join(key, k);
        if (k == "enabled") {
          ASSIGN_OR_RETURN(f.enabled, GetBool(p.second, path));
        } else if (k == "activate_after") {
          ASSIGN_OR_RETURN(
              f.activate_after,
              GetDuration(p.second, path, absl::Seconds(10), absl::Hours(24)));
        } else if (k == "failures") {
          ASSIGN_OR_RETURN(int64_t n, GetInt(p.second, path, 3, 10000));
          f.failures = static_cast<int>(n);
        } else if (k == "window") {
          ASSIGN_OR_RETURN(
              f.window,
              GetDuration(p.second, path, absl::Minutes(1), absl::Hours(24)));
        } else if (k == "ban_duration") {
          ASSIGN_OR_RETURN(f.ban_duration,
                           GetDuration(p.second, path, absl::Minutes(1),
                                       absl::Hours(24 * 7)));
        } else {
          ASSIGN_OR_RETURN(int64_t n, GetInt(p.second, path, 0, 5000));
          f.max_bans = static_cast<int>(n);
        }
      }
    }
  }
  if (c->backoff_min > c->backoff_max) {
    return absl::InvalidArgumentError(
        "reconnect.backoff_min must not exceed reconnect.backoff_max");
  }
  return absl::OkStatus();
}

std::string DefaultAgentId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) {
    return "";
  }
  std::string id = AsciiLower(host);
  // Keep the first label only if the full name is too long.
  if (id.size() > 63) {
    id = id.substr(0, id.find('.'));
  }
  return id;
}

// The decimal port number `text` if it is in min..65535 (min is 1 for a
// server to dial, 0 where "any free port" is allowed), else nullopt.
std::optional<int> ParsePortNumber(std::string_view text, int min) {
  int p = 0;
  const auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), p);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() ||
      p < min || p > 65535) {
    return std::nullopt;
  }
  return p;
}

}  // namespace

absl::StatusOr<absl::Duration> ParseAgentDuration(std::string_view text) {
  return ParseDuration(text, {.milliseconds = true});
}

absl::Status ValidateServerAddress(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "\"%s\" is not HOST:PORT (%s)", Abbreviate(text, 64), why));
  };
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return bad("IPv6 needs the form [ADDRESS]:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    const std::optional<IpAddress> ip = IpAddress::Parse(host);
    if (!ip.has_value() || !ip->is_v6()) {
      return bad("not an IPv6 address in brackets");
    }
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return bad("missing port");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return bad("IPv6 addresses need brackets");
    }
    const bool host_ok =
        !host.empty() && host.size() <= 253 &&
        std::all_of(host.begin(), host.end(), [](char c) {
          return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '.' || c == '-';
        });
    if (!host_ok) {
      return bad("bad host");
    }
  }
  if (!ParsePortNumber(port, 1).has_value()) {
    return bad("port must be 1..65535");
  }
  return absl::OkStatus();
}

absl::Status ResolveMetricsListen(MetricsEndpointConfig* metrics) {
  metrics->host.clear();
  metrics->port = 0;
  const std::string_view text = metrics->listen;
  if (text.empty()) {
    return absl::OkStatus();  // off
  }
  const auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrFormat("\"%s\" is not PORT, :PORT or HOST:PORT (%s)",
                        Abbreviate(text, 64), why));
  };
  std::string_view host;
  std::string_view port = text;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() ||
        text[close + 1] != ':') {
      return bad("IPv6 needs the form [ADDRESS]:PORT");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else if (const size_t colon = text.rfind(':');
             colon != std::string_view::npos) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return bad("IPv6 addresses need brackets");
    }
  }
  const std::optional<int> p = ParsePortNumber(port, 0);
  if (!p.has_value()) {
    return bad("port must be 0..65535");
  }
  std::string resolved;
  bool loopback = false;
  if (host.empty() || host == "localhost") {
    resolved = "127.0.0.1";
    loopback = true;
  } else {
    const std::optional<IpAddress> ip = IpAddress::Parse(host);
    if (!ip.has_value() || (text[0] == '[') != ip->is_v6()) {
      return bad("the host must be an IP address or localhost");
    }
    resolved = ip->ToString();
    loopback = ip->IsLoopback();
  }
  if (!loopback && !metrics->allow_non_loopback) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "metrics endpoint %s is not a loopback address: the metrics would "
        "be readable from the network; set metrics.allow_non_loopback "
        "(--metrics-allow-non-loopback) if that is intended",
        Abbreviate(text, 64)));
  }
  metrics->host = std::move(resolved);
  metrics->port = *p;
  return absl::OkStatus();
}

absl::StatusOr<AgentConfig> ParseAgentConfig(std::string_view yaml_text) {
  AgentConfig config;
  try {
    const YAML::Node root = YAML::Load(std::string(yaml_text));
    if (root.IsNull()) {
      return config;  // empty file: defaults
    }
    RETURN_IF_ERROR(ReadRoot(root, &config));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d:%d: YAML: %s", e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrFormat("YAML: %s", e.what()));
  }
  return config;
}

absl::Status FinishAgentConfig(const AgentFlags& flags, AgentConfig* config) {
  if (!flags.servers.empty()) {
    config->servers = flags.servers;
    for (const std::string& s : config->servers) {
      RETURN_IF_ERROR(ValidateServerAddress(s));
    }
  }
  if (!flags.agent_id.empty()) {
    if (!ValidAgentId(flags.agent_id)) {
      return absl::InvalidArgumentError(
          "--agent-id must be 1-63 bytes of [a-z0-9._-] starting with a "
          "letter or digit");
    }
    config->agent_id = flags.agent_id;
  }
  if (!flags.logs.empty()) {
    config->logs.clear();
    for (const std::string& path : flags.logs) {
      if (path.empty() || path[0] != '/') {
        return absl::InvalidArgumentError(
            absl::StrFormat("--log %s: must be an absolute path", path));
      }
      config->logs.push_back(LogSourceConfig{.path = path});
    }
  }
  if (!flags.state_dir.empty()) {
    config->state_dir = flags.state_dir;
  }
  if (!flags.firewall.empty()) {
    config->firewall.backend = flags.firewall;
  }
  config->insecure = config->insecure || flags.insecure;
  for (auto [flag, field] :
       {std::pair{&flags.ca_file, &config->tls_ca_file},
        std::pair{&flags.cert_file, &config->tls_cert_file},
        std::pair{&flags.key_file, &config->tls_key_file}}) {
    if (!flag->empty()) {
      *field = *flag;
    }
  }
  if (flags.metrics_listen.has_value()) {
    config->metrics.listen = *flags.metrics_listen;
  }
  config->metrics.allow_non_loopback =
      config->metrics.allow_non_loopback || flags.metrics_allow_non_loopback;
  if (absl::Status s = ResolveMetricsListen(&config->metrics); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("metrics.listen: %s", s.message()));
  }
  if (config->agent_id.empty()) {
    config->agent_id = DefaultAgentId();
    if (!ValidAgentId(config->agent_id)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the host name \"%s\" is not a valid agent id: set agent_id",
          Abbreviate(config->agent_id)));
    }
  }
  if (config->servers.empty()) {
    return absl::InvalidArgumentError(
        "no server: set servers in the config file or pass --server");
  }
  if (config->logs.empty()) {
    return absl::InvalidArgumentError(
        "no log file: set logs in the config file or pass --log");
  }
  if (config->logs.size() > 16) {
    return absl::InvalidArgumentError("at most 16 log files");
  }
  const std::vector<std::string> names = FirewallBackendNames();
  if (std::find(names.begin(), names.end(), config->firewall.backend) ==
      names.end()) {
    std::string all;
    for (const std::string& n : names) {
      all += all.empty() ? n : "|" + n;
    }
    return absl::InvalidArgumentError(
        absl::StrFormat("firewall backend \"%s\" is not one of %s",
                        Abbreviate(config->firewall.backend), all));
  }
  if (config->state_dir.empty() || config->state_dir[0] != '/') {
    return absl::InvalidArgumentError("state_dir must be an absolute path");
  }
  if (config->firewall.backend == "windows-netsh" &&
      config->firewall.netsh.output_dir.empty()) {
    config->firewall.netsh.output_dir = config->state_dir + "/netsh";
  }
  if (config->insecure) {
    if (!config->tls_ca_file.empty() || !config->tls_cert_file.empty() ||
        !config->tls_key_file.empty()) {
      return absl::InvalidArgumentError(
          "insecure excludes the tls files (--ca-file, --cert, --key)");
    }
  } else {
    const std::string dir = config->state_dir + "/tls/";
    for (auto [field, name] : {std::pair{&config->tls_ca_file, "ca.pem"},
                               std::pair{&config->tls_cert_file, "agent.pem"},
                               std::pair{&config->tls_key_file, "agent.key"}}) {
      if (field->empty()) {
        *field = dir + name;
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AgentConfig> ResolveAgentConfig(const AgentFlags& flags) {
  AgentConfig config;
  if (!flags.config_path.empty()) {
    std::ifstream in(flags.config_path, std::ios::binary);
    if (!in) {
      return absl::NotFoundError(
          absl::StrFormat("cannot read config file %s", flags.config_path));
    }
    std::ostringstream text;
    text << in.rdbuf();
    absl::StatusOr<AgentConfig> parsed = ParseAgentConfig(text.str());
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s:%s", flags.config_path, parsed.status().message()));
    }
    config = std::move(*parsed);
  }
  RETURN_IF_ERROR(FinishAgentConfig(flags, &config));
  return config;
}

std::vector<std::string> AgentConfigKeys() {
  std::vector<std::string> keys;
  for (const std::string& root : Schema().at("")) {
    auto it = Schema().find(root);
    if (it == Schema().end()) {
      keys.push_back(root);
      continue;
    }
    for (const std::string& k : it->second) {
      keys.push_back(absl::StrFormat("%s.%s", root, k));
    }
  }
  return keys;
}

}  // namespace rampart::agent
