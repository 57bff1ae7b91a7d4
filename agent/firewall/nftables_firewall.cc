#include "agent/firewall/nftables_firewall.h"

#include <nftables/libnftables.h>

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/strings.h"

namespace rampart::agent {
namespace {

enum SetId { kBan4 = 0, kBan4Net, kBan6, kBan6By64, kBan6Net, kSetCount };

struct SetInfo {
  const char* name;
  bool v4;
  bool interval;
  // Prefix length of every element of a hash set (the element is the
  // network address); 0 for interval sets.
  int fixed_length;
};
constexpr std::array<SetInfo, kSetCount> kSets = {{
    {"ban4", true, false, 32},
    {"ban4_net", true, true, 0},
    {"ban6", false, false, 128},
    {"ban6_64", false, false, 64},
    {"ban6_net", false, true, 0},
}};

SetId SetFor(const IpPrefix& p) {
  if (p.address().is_v4()) {
    return p.length() == 32 ? kBan4 : kBan4Net;
  }
  if (p.length() == 128) {
    return kBan6;
  }
  return p.length() == 64 ? kBan6By64 : kBan6Net;
}

// Longest element timeout written; bans beyond it are removed by the
// Enforcer at their expiry (or re-added by drift repair if the kernel drops
// them first, after ten years).
constexpr absl::Duration kMaxTimeout = absl::Hours(24 * 3650);

bool ValidTableName(std::string_view name) {
  if (name.empty() || name.size() > 32 || !(name[0] >= 'a' && name[0] <= 'z')) {
    return false;
  }
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return false;
    }
  }
  return true;
}

void AppendElement(std::string* out, const IpPrefix& p, SetId set) {
  p.address().AppendTo(out);
  if (kSets[set].interval) {
    out->push_back('/');
    out->append(std::to_string(p.length()));
  }
}

// Appends "<elem>[ timeout <ms>ms]"; false (nothing appended) if already
// expired.
bool AppendTimedElement(std::string* out, const FirewallEntry& e, SetId set,
                        absl::Time now) {
  int64_t ms = 0;
  if (e.expires.has_value()) {
    const absl::Duration left = std::min(*e.expires - now, kMaxTimeout);
    ms = absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1)));
    if (ms <= 0) {
      return false;
    }
  }
  AppendElement(out, e.prefix, set);
  if (ms > 0) {
    out->append(" timeout ");
    out->append(std::to_string(ms));
    out->append("ms");
  }
  return true;
}

absl::Status ErrorStatus(std::string_view what, std::string_view nft_error) {
  std::string msg(StripWhitespace(nft_error));
  // nft quotes the offending input line, which can hold 100k elements.
  const std::string text =
      absl::StrFormat("nftables %s failed: %s", what, Abbreviate(msg, 1024));
  if (msg.find("Operation not permitted") != std::string::npos) {
    return absl::PermissionDeniedError(text);
  }
  return absl::UnavailableError(text);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NftablesFirewall>> NftablesFirewall::Create(
    const NftablesOptions& options, Clock& clock) {
  if (!ValidTableName(options.table)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "nftables table name \"%s\" must match [a-z][a-z0-9_]{0,31}",
        Abbreviate(options.table)));
  }
  if (absl::Status s = options.ports.Validate(); !s.ok()) {
    return s;
  }
  if (options.priority < -1000 || options.priority > 1000) {
    return absl::InvalidArgumentError("nftables priority must be -1000..1000");
  }
  nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
  if (ctx == nullptr) {
    return absl::InternalError("nft_ctx_new failed");
  }
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  return std::unique_ptr<NftablesFirewall>(
      new NftablesFirewall(options, clock, ctx));
}

NftablesFirewall::NftablesFirewall(const NftablesOptions& options, Clock& clock,
                                   nft_ctx* ctx)
    : options_(options), clock_(clock), ctx_(ctx) {}

NftablesFirewall::~NftablesFirewall() { nft_ctx_free(ctx_); }

absl::StatusOr<std::string> NftablesFirewall::Run(const std::string& script,
                                                  bool json_output) {
  nft_ctx_output_set_flags(ctx_, json_output ? NFT_CTX_OUTPUT_JSON : 0);
  const int rc = nft_run_cmd_from_buffer(ctx_, script.c_str());
  // Reading a buffer also resets it for the next command.
  std::string output = nft_ctx_get_output_buffer(ctx_);
  const std::string error = nft_ctx_get_error_buffer(ctx_);
  if (rc != 0) {
    return ErrorStatus(json_output ? "listing" : "transaction", error);
  }
  return output;
}

std::string NftablesFirewall::RenderInstall() const {
  const std::string& t = options_.table;
  std::string s = absl::StrFormat("add table inet %s\n", t);
  for (const SetInfo& set : kSets) {
    absl::StrAppendFormat(&s, "add set inet %s %s { type %s; flags %s; }\n", t,
                          set.name, set.v4 ? "ipv4_addr" : "ipv6_addr",
                          set.interval ? "interval, timeout" : "timeout");
  }
  absl::StrAppendFormat(&s,
                        "add chain inet %s input { type filter hook input "
                        "priority %d; policy accept; }\n"
                        "flush chain inet %s input\n",
                        t, options_.priority, t);
  std::string match;
  if (!options_.ports.all_ports) {
    match = "tcp dport { ";
    for (size_t i = 0; i < options_.ports.tcp_ports.size(); ++i) {
      absl::StrAppendFormat(&match, "%s%d", i == 0 ? "" : ", ",
                            options_.ports.tcp_ports[i]);
    }
    match += " } ";
  }
  for (const SetInfo& set : kSets) {
    const char* key = set.v4 ? "ip saddr" : "ip6 saddr";
    const char* mask = set.fixed_length == 64 ? " & ffff:ffff:ffff:ffff::" : "";
    absl::StrAppendFormat(&s,
                          "add rule inet %s input %s%s%s @%s counter drop\n", t,
                          match, key, mask, set.name);
  }
  return s;
}

std::string NftablesFirewall::RenderSnapshot(
    const std::vector<FirewallEntry>& entries, absl::Time now) const {
  // Re-create the table from scratch in the same transaction: old elements,
  // rules and even sets of an older layout go, atomically.
  std::string s = RenderRecreate();
  std::array<std::string, kSetCount> elems;
  for (std::string& e : elems) {
    e.reserve(entries.size() * 24);
  }
  for (const FirewallEntry& e : entries) {
    const SetId set = SetFor(e.prefix);
    std::string& out = elems[set];
    const size_t mark = out.size();
    if (!out.empty()) {
      out.append(", ");
    }
    if (!AppendTimedElement(&out, e, set, now)) {
      out.resize(mark);
    }
  }
  for (int i = 0; i < kSetCount; ++i) {
    if (!elems[i].empty()) {
      absl::StrAppendFormat(&s, "add element inet %s %s { ", options_.table,
                            kSets[i].name);
      s += elems[i];
      s += " }\n";
    }
  }
  return s;
}

std::string NftablesFirewall::RenderDelta(
    const std::vector<FirewallEntry>& adds,
    const std::vector<IpPrefix>& removes, absl::Time now) const {
  std::array<std::string, kSetCount> rem, add;
  for (const IpPrefix& p : removes) {
    const SetId set = SetFor(p);
    if (!rem[set].empty()) {
      rem[set].append(", ");
    }
    AppendElement(&rem[set], p, set);
  }
  for (const FirewallEntry& e : adds) {
    const SetId set = SetFor(e.prefix);
    std::string& out = add[set];
    const size_t mark = out.size();
    if (!out.empty()) {
      out.append(", ");
    }
    if (!AppendTimedElement(&out, e, set, now)) {
      out.resize(mark);
    }
  }
  std::string s;
  const std::string& t = options_.table;
  // Removals first: `add` makes each present (a no-op if it is), so the
  // `delete` cannot fail on an element the kernel already expired.
  for (int i = 0; i < kSetCount; ++i) {
    if (!rem[i].empty()) {
      absl::StrAppendFormat(&s, "add element inet %s %s { %s }\n", t,
                            kSets[i].name, rem[i]);
      absl::StrAppendFormat(&s, "delete element inet %s %s { %s }\n", t,
                            kSets[i].name, rem[i]);
    }
  }
  for (int i = 0; i < kSetCount; ++i) {
    if (!add[i].empty()) {
      absl::StrAppendFormat(&s, "add element inet %s %s { %s }\n", t,
                            kSets[i].name, add[i]);
    }
  }
  return s;
}

std::string NftablesFirewall::RenderRecreate() const {
  return absl::StrFormat("add table inet %s\ndelete table inet %s\n",
                         options_.table, options_.table) +
         RenderInstall();
}

absl::Status NftablesFirewall::Install() {
  absl::MutexLock lock(&mu_);
  absl::Status s = Run(RenderInstall(), false).status();
  if (s.ok() || absl::IsPermissionDenied(s)) {
    return s;
  }
  // Most likely a set of another definition (an older layout): start over
  // with an empty table; the next snapshot or repair fills it.
  RAMPART_LOG(Warning) << "nftables: cannot update table " << options_.table
                       << " in place (" << std::string(s.message())
                       << "); re-creating it empty";
  return Run(RenderRecreate(), false).status();
}

absl::Status NftablesFirewall::ApplySnapshot(
    const std::vector<FirewallEntry>& entries) {
  const std::string script = RenderSnapshot(entries, clock_.Now());
  absl::MutexLock lock(&mu_);
  return Run(script, false).status();
}

absl::Status NftablesFirewall::ApplyDelta(
    const std::vector<FirewallEntry>& adds,
    const std::vector<IpPrefix>& removes) {
  const std::string script = RenderDelta(adds, removes, clock_.Now());
  if (script.empty()) {
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  return Run(script, false).status();
}

absl::StatusOr<std::vector<FirewallEntry>> NftablesFirewall::ListEnforced() {
  absl::StatusOr<std::string> json;
  {
    absl::MutexLock lock(&mu_);
    json = Run(absl::StrFormat("list table inet %s", options_.table), true);
  }
  if (!json.ok()) {
    return absl::FailedPreconditionError(json.status().message());
  }
  return ParseListing(*json, clock_.Now());
}

absl::StatusOr<std::vector<FirewallEntry>> NftablesFirewall::ParseListing(
    std::string_view json_text, absl::Time now) const {
  using nlohmann::json;
  const json doc = json::parse(json_text.begin(), json_text.end(), nullptr,
                               /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("nftables") ||
      !doc["nftables"].is_array()) {
    return absl::DataLossError("nft listing is not the expected JSON");
  }
  std::vector<FirewallEntry> out;
  std::array<bool, kSetCount> seen{};
  try {
    for (const json& item : doc.at("nftables")) {
      if (!item.contains("set")) {
        continue;
      }
      const json& set = item.at("set");
      const std::string name = set.at("name").get<std::string>();
      int id = -1;
      for (int i = 0; i < kSetCount; ++i) {
        if (name == kSets[i].name) {
          id = i;
        }
      }
      if (id < 0) {
        continue;  // not ours; left alone
      }
      seen[id] = true;
      const SetInfo& info = kSets[id];
      if (!set.contains("elem")) {
        continue;
      }
      for (const json& elem : set.at("elem")) {
        // Shapes: "addr" | {"prefix": {...}} | {"range": [...]} |
        // {"elem": {"val": <one of those>, "timeout": s, "expires": s}}.
        const json* val = &elem;
        std::optional<absl::Time> expires;
        if (elem.is_object() && elem.contains("elem")) {
          const json& inner = elem.at("elem");
          val = &inner.at("val");
          if (inner.contains("expires")) {
            expires = now + absl::Seconds(inner.at("expires").get<int64_t>());
          }
        }
        absl::StatusOr<IpPrefix> prefix =
            absl::FailedPreconditionError("unknown element");
        if (val->is_string()) {
          absl::StatusOr<IpAddress> addr =
              IpAddress::FromString(val->get<std::string>());
          if (addr.ok()) {
            prefix = info.interval ? IpPrefix::Host(*addr)
                                   : IpPrefix::Of(*addr, info.fixed_length);
            if (prefix->address() != *addr) {
              prefix = absl::FailedPreconditionError("host bits set");
            }
          }
        } else if (val->is_object() && val->contains("prefix")) {
          const json& p = val->at("prefix");
          prefix = IpPrefix::FromString(
              absl::StrFormat("%s/%d", p.at("addr").get<std::string>(),
                              p.at("len").get<int>()));
        }
        if (!prefix.ok() || prefix->address().is_v4() != info.v4 ||
            SetFor(*prefix) != id) {
          return absl::FailedPreconditionError(absl::StrFormat(
              "set %s holds an element Rampart did not write: %s", name,
              Abbreviate(val->dump(), 100)));
        }
        out.push_back({*prefix, expires});
      }
    }
  } catch (const json::exception& e) {
    return absl::DataLossError(
        absl::StrFormat("unexpected nft listing: %s", e.what()));
  }
  for (int i = 0; i < kSetCount; ++i) {
    if (!seen[i]) {
      return absl::FailedPreconditionError(
          absl::StrFormat("set %s is missing", kSets[i].name));
    }
  }
  return out;
}

absl::Status NftablesFirewall::RemoveAll() {
  absl::MutexLock lock(&mu_);
  // `add` first so that deleting an absent table is not an error.
  return Run(absl::StrFormat("add table inet %s\ndelete table inet %s\n",
                             options_.table, options_.table),
             false)
      .status();
}

absl::Status NftablesFirewall::RunScriptForTest(const std::string& script) {
  absl::MutexLock lock(&mu_);
  return Run(script, false).status();
}

}  // namespace rampart::agent
