#include "agent/firewall/ipset_firewall.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "agent/firewall/subprocess.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

bool ValidName(std::string_view name, size_t max) {
  if (name.empty() || name.size() > max) {
    return false;
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

// "<cidr>" with an explicit length (ipset prints hosts without one).
std::string Cidr(const IpPrefix& p) {
  std::string s;
  p.address().AppendTo(&s);
  s += "/" + std::to_string(p.length());
  return s;
}

// Element timeout in seconds: 0 = permanent, -1 = already expired.
int64_t TimeoutSeconds(const std::optional<absl::Time>& expires,
                       absl::Time now) {
  if (!expires.has_value()) {
    return 0;
  }
  const absl::Duration left = *expires - now;
  if (left <= absl::ZeroDuration()) {
    return -1;
  }
  if (left > kIpsetMaxTimeout) {
    return 0;  // the Enforcer removes it at expiry
  }
  return absl::ToInt64Seconds(absl::Ceil(left, absl::Seconds(1)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<IpsetFirewall>> IpsetFirewall::Create(
    const IpsetOptions& options, Clock& clock) {
  if (!ValidName(options.set_v4, 26) || !ValidName(options.set_v6, 26) ||
      options.set_v4 == options.set_v6) {
    return absl::InvalidArgumentError(
        "ipset set names must be two different [A-Za-z0-9_-]{1,26}");
  }
  if (!ValidName(options.chain, 28)) {
    return absl::InvalidArgumentError(
        "iptables chain name must match [A-Za-z0-9_-]{1,28}");
  }
  if (options.maxelem == 0) {
    return absl::InvalidArgumentError("ipset maxelem must be > 0");
  }
  if (absl::Status s = options.ports.Validate(); !s.ok()) {
    return s;
  }
  return std::unique_ptr<IpsetFirewall>(new IpsetFirewall(options, clock));
}

std::string IpsetFirewall::CreateLines() const {
  std::string s;
  for (const auto& [name, family] : {std::pair{options_.set_v4, "inet"},
                                     std::pair{options_.set_v6, "inet6"}}) {
    absl::StrAppendFormat(&s,
                          "create %s hash:net family %s maxelem %d timeout 0\n",
                          name, family, options_.maxelem);
  }
  return s;
}

std::string IpsetFirewall::RenderSnapshot(
    const std::vector<FirewallEntry>& entries, absl::Time now) const {
  std::string s = CreateLines();
  std::string body[2];
  for (const FirewallEntry& e : entries) {
    const int64_t t = TimeoutSeconds(e.expires, now);
    if (t < 0) {
      continue;
    }
    const bool v4 = e.prefix.address().is_v4();
    absl::StrAppendFormat(&body[v4 ? 0 : 1], "add %s-new %s timeout %d\n",
                          v4 ? options_.set_v4 : options_.set_v6,
                          Cidr(e.prefix), t);
  }
  for (int f = 0; f < 2; ++f) {
    const std::string& name = f == 0 ? options_.set_v4 : options_.set_v6;
    absl::StrAppendFormat(
        &s, "create %s-new hash:net family %s maxelem %d timeout 0\n", name,
        f == 0 ? "inet" : "inet6", options_.maxelem);
    absl::StrAppendFormat(&s, "flush %s-new\n", name);
    s += body[f];
    absl::StrAppendFormat(&s, "swap %s-new %s\ndestroy %s-new\n", name, name,
                          name);
  }
  return s;
}

std::string IpsetFirewall::RenderDelta(const std::vector<FirewallEntry>& adds,
                                       const std::vector<IpPrefix>& removes,
                                       absl::Time now) const {
  std::string s;
  for (const IpPrefix& p : removes) {
    absl::StrAppendFormat(
        &s, "del %s %s\n",
        p.address().is_v4() ? options_.set_v4 : options_.set_v6, Cidr(p));
  }
  for (const FirewallEntry& e : adds) {
    const int64_t t = TimeoutSeconds(e.expires, now);
    if (t < 0) {
      continue;
    }
    absl::StrAppendFormat(
        &s, "add %s %s timeout %d\n",
        e.prefix.address().is_v4() ? options_.set_v4 : options_.set_v6,
        Cidr(e.prefix), t);
  }
  return s;
}

std::string IpsetFirewall::RenderRules(bool v6) const {
  const std::string& set = v6 ? options_.set_v6 : options_.set_v4;
  std::string s = absl::StrFormat("*filter\n:%s - [0:0]\n", options_.chain);
  if (options_.ports.all_ports) {
    absl::StrAppendFormat(&s, "-A %s -m set --match-set %s src -j DROP\n",
                          options_.chain, set);
  } else {
    // multiport takes at most 15 ports per rule.
    const std::vector<uint16_t>& ports = options_.ports.tcp_ports;
    for (size_t i = 0; i < ports.size(); i += 15) {
      std::string list;
      for (size_t j = i; j < std::min(ports.size(), i + 15); ++j) {
        absl::StrAppendFormat(&list, "%s%d", j == i ? "" : ",", ports[j]);
      }
      absl::StrAppendFormat(
          &s,
          "-A %s -p tcp -m multiport --dports %s -m set --match-set %s src "
          "-j DROP\n",
          options_.chain, list, set);
    }
  }
  s += "COMMIT\n";
  return s;
}

absl::Status IpsetFirewall::Restore(const std::string& script) {
  return RunCommandChecked(
      {options_.ipset, "-exist", "restore"},
      {.input = script, .timeout = options_.command_timeout});
}

absl::Status IpsetFirewall::InstallRules() {
  for (const bool v6 : {false, true}) {
    const std::string& iptables = v6 ? options_.ip6tables : options_.iptables;
    const std::string& restore =
        v6 ? options_.ip6tables_restore : options_.iptables_restore;
    // Declaring the chain under --noflush creates it or flushes it.
    if (absl::Status s = RunCommandChecked(
            {restore, "-w", "10", "--noflush"},
            {.input = RenderRules(v6), .timeout = options_.command_timeout});
        !s.ok()) {
      return s;
    }
    absl::StatusOr<CommandResult> check =
        RunCommand({iptables, "-w", "10", "-C", "INPUT", "-j", options_.chain},
                   {.timeout = options_.command_timeout});
    if (!check.ok()) {
      return check.status();
    }
    if (check->exit_code != 0) {
      if (absl::Status s = RunCommandChecked(
              {iptables, "-w", "10", "-I", "INPUT", "1", "-j", options_.chain},
              {.timeout = options_.command_timeout});
          !s.ok()) {
        return s;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status IpsetFirewall::Install() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Restore(CreateLines()); !s.ok()) {
    return s;
  }
  return InstallRules();
}

absl::Status IpsetFirewall::ApplySnapshot(
    const std::vector<FirewallEntry>& entries) {
  const std::string script = RenderSnapshot(entries, clock_.Now());
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Restore(script); !s.ok()) {
    return s;
  }
  return InstallRules();
}

absl::Status IpsetFirewall::ApplyDelta(const std::vector<FirewallEntry>& adds,
                                       const std::vector<IpPrefix>& removes) {
  const std::string script = RenderDelta(adds, removes, clock_.Now());
  if (script.empty()) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  return Restore(script);
}

absl::StatusOr<std::vector<FirewallEntry>> IpsetFirewall::ParseSave(
    std::string_view text, std::string_view set, absl::Time now) const {
  std::vector<FirewallEntry> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text =
        nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    line = StripWhitespace(line);
    if (line.empty() || line.starts_with("create ")) {
      continue;
    }
    std::vector<std::string_view> f;
    while (!line.empty()) {
      const size_t sp = line.find(' ');
      f.push_back(line.substr(0, sp));
      line = sp == std::string_view::npos ? std::string_view()
                                          : StripWhitespace(line.substr(sp));
    }
    const auto foreign = [&] {
      return absl::FailedPreconditionError(absl::StrFormat(
          "ipset %s holds an entry Rampart did not write", set));
    };
    if (f.size() < 3 || f[0] != "add" || f[1] != set) {
      return foreign();
    }
    absl::StatusOr<IpPrefix> prefix = IpPrefix::FromString(f[2]);
    if (!prefix.ok() || prefix->address().is_v4() != (set == options_.set_v4)) {
      return foreign();
    }
    FirewallEntry e{.prefix = *prefix};
    if (f.size() == 5 && f[3] == "timeout") {
      int64_t secs = 0;
      for (char c : f[4]) {
        if (c < '0' || c > '9' || secs > (int64_t{1} << 40)) {
          return foreign();
        }
        secs = secs * 10 + (c - '0');
      }
      if (secs > 0) {
        e.expires = now + absl::Seconds(secs);
      }
    } else if (f.size() != 3) {
      return foreign();
    }
    out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<FirewallEntry>> IpsetFirewall::ListEnforced() {
  std::vector<FirewallEntry> out;
  absl::MutexLock lock(&mu_);
  for (const std::string& set : {options_.set_v4, options_.set_v6}) {
    absl::StatusOr<CommandResult> r = RunCommand(
        {options_.ipset, "save", set},
        {.timeout = options_.command_timeout, .max_output = size_t{256} << 20});
    if (!r.ok()) {
      return r.status();
    }
    if (r->exit_code != 0) {
      return absl::FailedPreconditionError(
          absl::StrFormat("ipset save %s: %s", set,
                          Abbreviate(StripWhitespace(r->output), 256)));
    }
    absl::StatusOr<std::vector<FirewallEntry>> entries =
        ParseSave(r->output, set, clock_.Now());
    if (!entries.ok()) {
      return entries.status();
    }
    out.insert(out.end(), entries->begin(), entries->end());
  }
  return out;
}

absl::Status IpsetFirewall::RemoveAll() {
  absl::MutexLock lock(&mu_);
  const CommandOptions opts{.timeout = options_.command_timeout};
  for (const std::string& iptables : {options_.iptables, options_.ip6tables}) {
    // Delete every jump (at most a few; bounded in case of a failing -D).
    for (int i = 0; i < 16; ++i) {
      absl::StatusOr<CommandResult> r = RunCommand(
          {iptables, "-w", "10", "-D", "INPUT", "-j", options_.chain}, opts);
      if (!r.ok()) {
        return r.status();
      }
      if (r->exit_code != 0) {
        break;
      }
    }
    // Absent chains make these fail; that is fine.
    (void)RunCommand({iptables, "-w", "10", "-F", options_.chain}, opts);
    (void)RunCommand({iptables, "-w", "10", "-X", options_.chain}, opts);
  }
  for (const std::string& set : {options_.set_v4, options_.set_v6}) {
    (void)RunCommand({options_.ipset, "destroy", set}, opts);
    (void)RunCommand({options_.ipset, "destroy", set + "-new"}, opts);
  }
  absl::StatusOr<CommandResult> left =
      RunCommand({options_.ipset, "list", "-n"}, opts);
  if (!left.ok()) {
    return left.status();
  }
  std::string_view names = left->output;
  while (!names.empty()) {
    const size_t nl = names.find('\n');
    const std::string_view name = StripWhitespace(names.substr(0, nl));
    names = nl == std::string_view::npos ? std::string_view()
                                         : names.substr(nl + 1);
    if (name == options_.set_v4 || name == options_.set_v6) {
      return absl::UnavailableError(absl::StrFormat(
          "ipset %s could not be destroyed (still referenced?)", name));
    }
  }
  return absl::OkStatus();
}

}  // namespace rampart::agent
